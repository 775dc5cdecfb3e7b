"""Launchers at their system boundary: a fake ``nitro-cli`` on PATH, and real child processes."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import marshal
import os
import signal
import stat
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from parent.errors import LaunchError
from parent.launcher import (
    DEFAULT_INHERIT,
    ChildProcessLauncher,
    EnclaveExit,
    NitroCliLauncher,
    parse_nitro_json,
)

ENCLAVE_ID = "i-05f6ed443ad428ea3-enc18212664d5c9d11"

# A stand-in for nitro-cli: records its argv, prints what the real tool prints (shapes taken from
# aws-nitro-enclaves-cli's json_output.rs and the AWS docs), and keeps enclave state in a file.
FAKE_NITRO = f"""#!{sys.executable}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "argv.jsonl"), "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
state_file = os.path.join(here, "state")
state = open(state_file).read() if os.path.exists(state_file) else "none"
cmd = sys.argv[1]
fail = os.environ.get("FAKE_NITRO_FAIL", "")
if cmd == fail:
    print("[ E26 ] Insufficient memory requested. User provided `memory` is 64 MB", file=sys.stderr)
    sys.exit(1)
if cmd == "run-enclave":
    cid = int(sys.argv[sys.argv.index("--enclave-cid") + 1]) + int(os.environ.get("FAKE_CID_SHIFT", "0"))
    open(state_file, "w").write("RUNNING")
    print("Start allocating memory...")
    print(f"Started enclave with enclave-cid: {{cid}}, memory: 512 MiB, cpu-ids: [1, 3]")
    print(json.dumps({{"EnclaveName": "keyshard", "EnclaveID": "{ENCLAVE_ID}", "ProcessID": 4242,
        "EnclaveCID": cid, "NumberOfCPUs": 2, "CPUIDs": [1, 3], "MemoryMiB": 512}}, indent=2))
elif cmd == "describe-enclaves":
    listing = []
    if state in ("RUNNING", "TERMINATING"):
        listing.append({{"EnclaveName": "keyshard", "EnclaveID": "{ENCLAVE_ID}", "ProcessID": 4242,
            "EnclaveCID": 16, "NumberOfCPUs": 2, "CPUIDs": [1, 3], "MemoryMiB": 512,
            "State": state, "Flags": os.environ.get("FAKE_NITRO_FLAGS", "NONE")}})
    print(json.dumps(listing, indent=2))
    if os.environ.get("FAKE_DIE_AFTER_DESCRIBE"):
        open(state_file, "w").write("gone")
elif cmd == "terminate-enclave":
    open(state_file, "w").write("gone")
    print("Successfully terminated enclave " + sys.argv[3] + ".")
    print(json.dumps({{"EnclaveName": "keyshard", "EnclaveID": sys.argv[3], "Terminated": True}}, indent=2))
"""


@pytest.fixture
def fake_nitro(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "nitro-cli"
    script.write_text(FAKE_NITRO)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "enclave.eif").write_bytes(b"EIF")
    return bindir


def _calls(bindir: Path) -> list[list[str]]:
    return [json.loads(line) for line in (bindir / "argv.jsonl").read_text().splitlines()]


def _launcher(tmp_path: Path) -> NitroCliLauncher:
    return NitroCliLauncher(
        tmp_path / "enclave.eif", cpu_count=2, memory_mib=512, cid=16, poll_interval=0.01
    )


def test_nitro_start_watch_stop(fake_nitro: Path, tmp_path: Path) -> None:
    launcher = _launcher(tmp_path)

    async def main() -> None:
        info = await launcher.start()
        assert (info.enclave_id, info.cid, info.pid) == (ENCLAVE_ID, 16, 4242)
        described = await launcher.describe()
        assert described is not None
        assert (described.state, described.flags) == ("RUNNING", "NONE")
        assert await launcher.stop() == EnclaveExit(None, None, "terminated")
        assert await launcher.wait() == EnclaveExit(None, None, "terminated")

    asyncio.run(main())
    calls = _calls(fake_nitro)
    eif = str(tmp_path / "enclave.eif")
    assert calls == [
        [
            "run-enclave",
            "--eif-path",
            eif,
            "--cpu-count",
            "2",
            "--memory",
            "512",
            "--enclave-cid",
            "16",
        ],
        ["describe-enclaves"],
        ["describe-enclaves"],
        ["terminate-enclave", "--enclave-id", ENCLAVE_ID],
    ]
    assert all("--debug-mode" not in call for call in calls)


def test_nitro_wait_notices_the_enclave_is_gone(
    fake_nitro: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = _launcher(tmp_path)

    async def main() -> EnclaveExit:
        await launcher.start()
        monkeypatch.setenv("FAKE_DIE_AFTER_DESCRIBE", "1")
        return await launcher.wait()

    assert asyncio.run(main()).description == "enclave state gone"


def test_nitro_debug_mode_enclave_is_terminated(
    fake_nitro: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NITRO_FLAGS", "DEBUG_MODE")
    with pytest.raises(LaunchError, match="not running in production mode"):
        asyncio.run(_launcher(tmp_path).start())
    assert _calls(fake_nitro)[-1][0] == "terminate-enclave"


def test_nitro_wrong_cid_is_terminated(
    fake_nitro: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CID_SHIFT", "1")
    with pytest.raises(LaunchError, match="got CID 17, expected 16"):
        asyncio.run(_launcher(tmp_path).start())
    assert _calls(fake_nitro)[-1][0] == "terminate-enclave"


def test_nitro_failure_carries_its_message(
    fake_nitro: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NITRO_FAIL", "run-enclave")
    with pytest.raises(LaunchError, match=r"failed \(1\): \[ E26 \] Insufficient memory"):
        asyncio.run(_launcher(tmp_path).start())


def test_nitro_argument_checks(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="CID"):
        NitroCliLauncher(tmp_path / "x.eif", cpu_count=2, memory_mib=512, cid=3)
    with pytest.raises(LaunchError, match="cpu_count"):
        NitroCliLauncher(tmp_path / "x.eif", cpu_count=0, memory_mib=512, cid=16)
    with pytest.raises(LaunchError, match="EIF not found"):
        asyncio.run(
            NitroCliLauncher(tmp_path / "x.eif", cpu_count=2, memory_mib=512, cid=16).start()
        )
    missing = NitroCliLauncher(
        tmp_path / "x.eif", cpu_count=2, memory_mib=512, cid=16, nitro_cli=str(tmp_path / "none")
    )
    (tmp_path / "x.eif").write_bytes(b"")
    with pytest.raises(LaunchError, match="cannot run"):
        asyncio.run(missing.start())


def test_parse_nitro_json() -> None:
    assert parse_nitro_json('Start allocating memory...\n{"EnclaveID": "x"}\n') == {
        "EnclaveID": "x"
    }
    assert parse_nitro_json("[]") == []
    with pytest.raises(LaunchError):
        parse_nitro_json("Start allocating memory...\n")
    with pytest.raises(LaunchError):
        parse_nitro_json("{not json")


# A tiny "enclave": reports what it can see over a Unix socket (its only channel), then waits.
CHILD = r"""
import json, os, signal, socket, sys
mode = sys.argv[1]
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
if mode == "exit-3":
    sys.exit(3)
report = {
    "env": sorted(os.environ),
    "cwd": os.getcwd(),
    "cwd_entries": os.listdir("."),
    "stdin": os.read(0, 1).decode(),
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    "pgid_is_pid": os.getpgid(0) == os.getpid(),
    "sid_is_pid": os.getsid(0) == os.getpid(),
}
sock = socket.socket(socket.AF_UNIX)
sock.connect(os.environ["REPORT_SOCKET"])
sock.sendall(json.dumps(report).encode())
sock.shutdown(socket.SHUT_WR)
sock.recv(1)  # block until told to stop
signal.pause()
"""


async def _launch_and_report(
    tmp_path: Path, mode: str, grace: float = 5.0
) -> tuple[dict[str, Any], ChildProcessLauncher]:
    reports: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_report(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reports.put(await reader.read())
        writer.close()

    path = tmp_path / "r.sock"
    server = await asyncio.start_unix_server(on_report, path=path)
    launcher = ChildProcessLauncher(
        [sys.executable, "-c", CHILD, mode],
        cid=16,
        workdir=tmp_path / "enclave-cwd",
        env={"REPORT_SOCKET": str(path)},
        grace=grace,
    )
    await launcher.start()
    async with server:
        report = json.loads(await reports.get())
    return report, launcher


def test_child_sees_only_what_it_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "parent-only")
    leaked = os.open(tmp_path / "parent-file", os.O_CREAT | os.O_RDWR)
    os.set_inheritable(leaked, True)  # even an inheritable descriptor must not cross

    async def main() -> tuple[dict[str, Any], EnclaveExit, int]:
        report, launcher = await _launch_and_report(tmp_path, "report")
        assert launcher._proc is not None
        pid = launcher._proc.pid
        return report, await launcher.stop(), pid

    try:
        report, ended, pid = asyncio.run(main())
    finally:
        os.close(leaked)
    allowed = {name for name in DEFAULT_INHERIT if name in os.environ} | {
        "REPORT_SOCKET",
        "PYTHONPYCACHEPREFIX",  # the child's private bytecode directory
    }
    assert set(report["env"]) - {"LC_CTYPE"} == allowed
    assert report["cwd"] == str(tmp_path / "enclave-cwd")
    assert report["cwd_entries"] == []
    assert report["stdin"] == ""
    assert leaked not in report["fds"]
    assert max(report["fds"]) <= 4  # stdio, the socket, the listing
    assert report["pgid_is_pid"]
    assert report["sid_is_pid"]
    assert ended == EnclaveExit(0, None, "exited with code 0")  # SIGTERM handled cleanly
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing of the group survives
    assert stat.S_IMODE((tmp_path / "enclave-cwd").stat().st_mode) == 0o700


def test_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    async def main() -> EnclaveExit:
        _, launcher = await _launch_and_report(tmp_path, "ignore-term", grace=0.2)
        return await launcher.stop()

    assert asyncio.run(main()) == EnclaveExit(None, signal.SIGKILL, "killed by SIGKILL")


def test_child_exit_is_reported(tmp_path: Path) -> None:
    launcher = ChildProcessLauncher(
        [sys.executable, "-c", CHILD, "exit-3"], cid=16, workdir=tmp_path / "w"
    )

    async def main() -> tuple[EnclaveExit, EnclaveExit]:
        await launcher.start()
        return await launcher.wait(), await launcher.stop()

    exited, stopped = asyncio.run(main())
    assert exited == stopped == EnclaveExit(3, None, "exited with code 3")


def test_child_refusals(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "leftover").write_text("x")
    with pytest.raises(LaunchError, match="not empty"):
        asyncio.run(ChildProcessLauncher([sys.executable], cid=16, workdir=busy).start())
    with pytest.raises(LaunchError, match="cannot start"):
        asyncio.run(
            ChildProcessLauncher([str(tmp_path / "nope")], cid=16, workdir=tmp_path / "w").start()
        )
    with pytest.raises(LaunchError, match="argv"):
        ChildProcessLauncher([], cid=16, workdir=tmp_path)


def _forge_bytecode(source: Path, code: str) -> None:
    """Plant a .pyc for ``source`` that runs ``code`` but carries the source's mtime and size,
    so a plain interpreter takes it for a valid cache of the measured file."""
    stat_result = source.stat()
    header = importlib.util.MAGIC_NUMBER + struct.pack(
        "<III", 0, int(stat_result.st_mtime) & 0xFFFFFFFF, stat_result.st_size & 0xFFFFFFFF
    )
    cached = Path(importlib.util.cache_from_source(str(source)))
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(header + marshal.dumps(compile(code, str(source), "exec")))


def test_child_ignores_bytecode_planted_in_the_image(tmp_path: Path) -> None:
    image = tmp_path / "image"
    (image / "pkg").mkdir(parents=True)
    (image / "pkg" / "__init__.py").write_text("")
    module = image / "pkg" / "mod.py"
    module.write_text('WHO = "measured source"\n')
    _forge_bytecode(module, 'WHO = "planted bytecode"')
    plain = subprocess.run(
        [sys.executable, "-c", "import pkg.mod; print(pkg.mod.WHO)"],
        env={"PYTHONPATH": str(image)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert plain.stdout.strip() == "planted bytecode"  # the attack works on a plain interpreter

    output = tmp_path / "child.out"
    program = "import os, pkg.mod; print(pkg.mod.WHO); print(os.environ['PYTHONPYCACHEPREFIX'])"
    launcher = ChildProcessLauncher(
        [sys.executable, "-c", program],
        cid=16,
        workdir=tmp_path / "w",
        env={"PYTHONPATH": str(image)},
        output=output,
    )

    async def main() -> EnclaveExit:
        await launcher.start()
        return await launcher.wait()

    assert asyncio.run(main()) == EnclaveExit(0, None, "exited with code 0")
    who, bytecode_dir = output.read_text().splitlines()
    assert who == "measured source"
    assert not Path(bytecode_dir).exists()  # private to that boot, removed once the child is gone
