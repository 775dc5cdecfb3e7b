"""Starting, watching and stopping the enclave: ``nitro-cli`` in real mode, a child process emulated.

The launcher is one of the four seams where the modes differ (architecture invariant 5). Both
implementations give the same three verbs — :meth:`start`, :meth:`wait`, :meth:`stop` — so the rest of
the parent runs unchanged.

Real mode (:class:`NitroCliLauncher`) never passes ``--debug-mode``: a debug enclave's attestation has
zeroed PCRs and KMS must refuse it anyway, but we refuse even to start one, and after launch we check
``describe-enclaves`` reports ``Flags: NONE`` (terminating it otherwise). ``nitro-cli`` prints one JSON
document per command (``run-enclave``: ``EnclaveName``, ``EnclaveID``, ``ProcessID``, ``EnclaveCID``,
``NumberOfCPUs``, ``CPUIDs``, ``MemoryMiB``; ``describe-enclaves``: a list of those plus ``State`` and
``Flags``; ``terminate-enclave``: ``EnclaveID`` and ``Terminated``), possibly after progress lines,
so the parser skips to the first ``{`` or ``[`` that starts a line.

Emulated mode (:class:`ChildProcessLauncher`) starts the enclave entry point as a child with an
environment built only from an explicit allow-list, its own fresh empty working directory, stdin
closed, no inherited descriptors, and its own process group (so a stop reaches any grandchild). This
is not an isolation boundary — same user, same kernel — but it removes every *accidental* channel, so
the emulated enclave, like the real one, talks to the world only through the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from parent.errors import LaunchError
from transport.address import FIRST_ENCLAVE_CID, U32_MAX

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LaunchInfo:
    """What a launch produced: an identifier, the enclave's CID, and a host PID when there is one."""

    enclave_id: str
    cid: int
    pid: int | None


@dataclass(frozen=True, slots=True)
class EnclaveExit:
    """How the enclave ended: an exit code or a signal number (child), or a description (nitro)."""

    returncode: int | None
    signal: int | None
    description: str


class Launcher(Protocol):
    async def start(self) -> LaunchInfo: ...

    async def wait(self) -> EnclaveExit:
        """Return once the enclave has stopped, however it stopped."""
        ...

    async def stop(self) -> EnclaveExit:
        """Stop the enclave (idempotent) and report how it ended."""
        ...


# ------------------------------------------------------------------------------- nitro-cli ----


def parse_nitro_json(stdout: str) -> Any:
    """The JSON document in ``nitro-cli`` output, skipping any progress lines before it."""
    offset = 0
    for line in stdout.splitlines(keepends=True):
        if line.lstrip().startswith(("{", "[")):
            try:
                value, _ = json.JSONDecoder().raw_decode(stdout[offset:].lstrip())
            except ValueError:
                break
            return value
        offset += len(line)
    raise LaunchError("nitro-cli printed no JSON document")


@dataclass(frozen=True, slots=True)
class NitroEnclaveInfo:
    """One entry of ``nitro-cli describe-enclaves``."""

    enclave_id: str
    cid: int
    state: str
    flags: str


class NitroCliLauncher:
    """Runs an EIF with ``nitro-cli run-enclave`` (debug mode off), watches and terminates it."""

    def __init__(
        self,
        eif_path: Path,
        *,
        cpu_count: int,
        memory_mib: int,
        cid: int,
        enclave_name: str | None = None,
        nitro_cli: str = "nitro-cli",
        poll_interval: float = 5.0,
        command_timeout: float = 300.0,
    ) -> None:
        if cpu_count < 1:
            raise LaunchError("cpu_count must be at least 1")
        if memory_mib < 64:
            raise LaunchError("memory_mib must be at least 64")
        if not FIRST_ENCLAVE_CID <= cid < U32_MAX:
            raise LaunchError(f"enclave CID must be in {FIRST_ENCLAVE_CID}..{U32_MAX - 1}")
        self.eif_path = Path(eif_path)
        self.cpu_count = cpu_count
        self.memory_mib = memory_mib
        self.cid = cid
        self.enclave_name = enclave_name
        self._nitro_cli = nitro_cli
        self._poll = poll_interval
        self._timeout = command_timeout
        self._enclave_id: str | None = None
        self._exit: EnclaveExit | None = None

    def run_argv(self) -> list[str]:
        """The exact ``run-enclave`` command line (no ``--debug-mode``, ever)."""
        argv = [
            self._nitro_cli,
            "run-enclave",
            "--eif-path",
            str(self.eif_path),
            "--cpu-count",
            str(self.cpu_count),
            "--memory",
            str(self.memory_mib),
            "--enclave-cid",
            str(self.cid),
        ]
        if self.enclave_name is not None:
            argv += ["--enclave-name", self.enclave_name]
        return argv

    async def _run(self, argv: list[str]) -> Any:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise LaunchError(f"cannot run {argv[0]}: {exc.strerror}") from None
        try:
            async with asyncio.timeout(self._timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise LaunchError(f"nitro-cli {argv[1]} timed out") from None
        if proc.returncode != 0:
            detail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise LaunchError(f"nitro-cli {argv[1]} failed ({proc.returncode}): {detail[0]}")
        return parse_nitro_json(out.decode(errors="replace"))

    async def start(self) -> LaunchInfo:
        if self._enclave_id is not None:
            raise LaunchError("this launcher already started an enclave")
        if not self.eif_path.is_file():
            raise LaunchError(f"EIF not found: {self.eif_path}")
        info = await self._run(self.run_argv())
        if not isinstance(info, dict):
            raise LaunchError("run-enclave output is not an object")
        enclave_id, cid, pid = info.get("EnclaveID"), info.get("EnclaveCID"), info.get("ProcessID")
        if not isinstance(enclave_id, str) or not enclave_id:
            raise LaunchError("run-enclave output lacks EnclaveID")
        self._enclave_id = enclave_id
        # From here an enclave runs: any failure (a check, describe-enclaves itself, a
        # cancellation) terminates it, since the caller only stops enclaves whose start returned.
        try:
            if cid != self.cid:
                raise LaunchError(f"enclave got CID {cid!r}, expected {self.cid}")
            described = await self.describe()
            if described is None or described.flags != "NONE":
                raise LaunchError(
                    "enclave is not running in production mode "
                    f"(flags {described.flags if described else 'unknown'!r}); terminated"
                )
        except BaseException:
            with contextlib.suppress(LaunchError):
                await self.stop()
            raise
        log.info(
            "enclave started",
            extra={"fields": {"event": "enclave_started", "id": enclave_id, "cid": cid}},
        )
        return LaunchInfo(enclave_id, cid, pid if isinstance(pid, int) else None)

    async def describe(self) -> NitroEnclaveInfo | None:
        """Our enclave's entry in ``describe-enclaves``, or None once it is gone."""
        listing = await self._run([self._nitro_cli, "describe-enclaves"])
        if not isinstance(listing, list):
            raise LaunchError("describe-enclaves output is not a list")
        for entry in listing:
            if isinstance(entry, dict) and entry.get("EnclaveID") == self._enclave_id:
                try:
                    return NitroEnclaveInfo(
                        str(entry["EnclaveID"]),
                        int(entry["EnclaveCID"]),
                        str(entry["State"]),
                        str(entry["Flags"]),
                    )
                except (KeyError, TypeError, ValueError):
                    raise LaunchError("describe-enclaves entry is malformed") from None
        return None

    async def wait(self) -> EnclaveExit:
        if self._enclave_id is None:
            raise LaunchError("no enclave was started")
        while self._exit is None:
            info = await self.describe()
            if info is None or info.state.upper() != "RUNNING":
                state = info.state if info else "gone"
                self._exit = EnclaveExit(None, None, f"enclave state {state}")
                break
            await asyncio.sleep(self._poll)
        return self._exit

    async def stop(self) -> EnclaveExit:
        if self._enclave_id is None:
            raise LaunchError("no enclave was started")
        if self._exit is None:
            result = await self._run(
                [self._nitro_cli, "terminate-enclave", "--enclave-id", self._enclave_id]
            )
            if not isinstance(result, dict) or result.get("Terminated") is not True:
                raise LaunchError("terminate-enclave did not confirm termination")
            self._exit = EnclaveExit(None, None, "terminated")
            log.info(
                "enclave stopped",
                extra={"fields": {"event": "enclave_stopped", "id": self._enclave_id}},
            )
        return self._exit


# ------------------------------------------------------------------------- child process ----

DEFAULT_INHERIT = ("PATH", "LANG", "LC_ALL", "TZ")
"""Harmless variables an emulated enclave may inherit; nothing else crosses unless listed."""


class ChildProcessLauncher:
    """Emulated mode: the enclave entry point as a child process with nothing it was not given.

    A Python child gets a fresh, private bytecode directory per start (``PYTHONPYCACHEPREFIX``):
    Python then ignores every ``__pycache__`` in the image and compiles what it imports from the
    measured sources. Without it, a ``.pyc`` planted next to a source file (with the source's mtime
    and size in its header) would run instead of the code the emulated PCR0 measured.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cid: int,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        inherit: Sequence[str] = DEFAULT_INHERIT,
        output: Path | None = None,
        grace: float = 5.0,
    ) -> None:
        if not argv:
            raise LaunchError("argv must name a program")
        self.argv = list(argv)
        self.cid = cid
        self.workdir = Path(workdir)
        self.env = {name: os.environ[name] for name in inherit if name in os.environ}
        self.env.update(env or {})
        self.output = output
        self.grace = grace
        self._proc: asyncio.subprocess.Process | None = None
        self._exit: EnclaveExit | None = None
        self._bytecode_dir: Path | None = None

    def _prepare_workdir(self) -> None:
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if any(self.workdir.iterdir()):
            raise LaunchError(f"working directory {self.workdir} is not empty")

    async def start(self) -> LaunchInfo:
        if self._proc is not None:
            raise LaunchError("this launcher already started an enclave")
        self._prepare_workdir()
        self._bytecode_dir = Path(tempfile.mkdtemp(prefix="keyshard-bytecode-"))
        env = {**self.env, "PYTHONPYCACHEPREFIX": str(self._bytecode_dir)}
        out = open(self.output, "ab") if self.output is not None else None  # noqa: SIM115
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out if out is not None else None,
                stderr=subprocess.STDOUT if out is not None else None,
                cwd=self.workdir,
                env=env,
                close_fds=True,
                start_new_session=True,  # own session and process group
            )
        except OSError as exc:
            self._remove_bytecode_dir()
            raise LaunchError(f"cannot start {self.argv[0]}: {exc.strerror}") from None
        finally:
            if out is not None:
                out.close()
        log.info(
            "enclave started",
            extra={
                "fields": {
                    "event": "enclave_started",
                    "id": f"child-{self._proc.pid}",
                    "cid": self.cid,
                }
            },
        )
        return LaunchInfo(f"child-{self._proc.pid}", self.cid, self._proc.pid)

    async def wait(self) -> EnclaveExit:
        if self._proc is None:
            raise LaunchError("no enclave was started")
        code = await self._proc.wait()
        self._remove_bytecode_dir()
        if self._exit is None:
            self._exit = _describe_exit(code)
            log.info(
                "enclave exited",
                extra={"fields": {"event": "enclave_exited", "exit": self._exit.description}},
            )
        return self._exit

    def _remove_bytecode_dir(self) -> None:
        if self._bytecode_dir is not None:
            shutil.rmtree(self._bytecode_dir, ignore_errors=True)
            self._bytecode_dir = None

    async def stop(self) -> EnclaveExit:
        """SIGTERM the process group, then SIGKILL it after ``grace`` seconds."""
        if self._proc is None:
            raise LaunchError("no enclave was started")
        if self._proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                async with asyncio.timeout(self.grace):
                    await self._proc.wait()
            except TimeoutError:
                log.warning(
                    "enclave killed",
                    extra={
                        "fields": {
                            "event": "enclave_kill",
                            "pid": self._proc.pid,
                            "grace": self.grace,
                        }
                    },
                )
                self._signal_group(signal.SIGKILL)
        # Reap any straggler in the group too (a grandchild that ignored SIGTERM).
        self._signal_group(signal.SIGKILL)
        return await self.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None  # callers check
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)


def _describe_exit(code: int) -> EnclaveExit:
    if code < 0:
        name = signal.Signals(-code).name
        return EnclaveExit(None, -code, f"killed by {name}")
    return EnclaveExit(code, None, f"exited with code {code}")
