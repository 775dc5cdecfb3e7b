"""``python -m parent`` as a real process, launching a tiny emulated enclave as its child."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from parent.main import EXIT_LOCAL_ERROR, EXIT_OK, main
from transport.hostproto import PutBlob, decode_request, encode_request

# The "enclave": serves an echo on vsock (16, 5000), fetches credentials and stores a blob through
# host services, then waits to be stopped. Its only channel is the transport.
ENCLAVE = r"""
import asyncio, sys
from pathlib import Path
from transport.address import VsockAddress
from transport.hostclient import HostClient
from transport.unix import UnixSocketTransport

async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()

async def main():
    transport = UnixSocketTransport(Path(sys.argv[1]), local_cid=16)
    server = await transport.listen(VsockAddress(16, 5000), echo)
    if sys.argv[2] == "die":
        sys.exit(3)
    client = HostClient(transport)
    creds = await client.get_credentials()
    await client.put_blob("ready", creds.access_key_id.encode())
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _config(runtime: Path, mode: str) -> dict[str, Any]:
    return {
        "mode": "emulated",
        "runtime_dir": str(runtime),
        "enclave_cid": 16,
        "inbound": [{"name": "api", "listen": "127.0.0.1:0", "enclave_port": 5000}],
        "blob_store": {"kind": "local", "dir": str(runtime / "blobs")},
        "credentials": {
            "kind": "static",
            "access_key_id": "AKIDEMU",
            "secret_access_key": "emulated",
            "session_token": "emulated",
            "expiration": "2099-01-01T00:00:00Z",
        },
        "launcher": {
            "kind": "child",
            "argv": [sys.executable, "-c", ENCLAVE, str(runtime), mode],
            "workdir": str(runtime / "enclave"),
        },
    }


async def _start(runtime: Path, mode: str, *extra: str) -> asyncio.subprocess.Process:
    path = runtime / "node.json"
    path.write_text(json.dumps(_config(runtime, mode)))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "parent",
        "--config",
        str(path),
        "--metrics-interval",
        "0",
        *extra,
        stderr=asyncio.subprocess.PIPE,
    )


async def _until(proc: asyncio.subprocess.Process, **wanted: object) -> dict[str, Any]:
    """The first JSON log line whose fields include ``wanted`` (every line must be JSON)."""
    assert proc.stderr is not None
    while line := (await proc.stderr.readline()).decode():
        entry = json.loads(line)
        assert {"ts", "level", "source", "logger", "msg"} <= set(entry)
        if all(entry.get(key) == value for key, value in wanted.items()):
            return dict(entry)
    raise AssertionError(f"parent exited before logging {wanted!r}")


def test_parent_process_end_to_end(runtime_dir: Path) -> None:
    async def scenario() -> tuple[int, int]:
        ports_file = runtime_dir / "ports.json"
        proc = await _start(
            runtime_dir,
            "serve",
            "--record",
            str(runtime_dir / "seen"),
            "--ports-file",
            str(ports_file),
            "--log-level",
            "DEBUG",
        )
        try:
            started = await _until(proc, event="enclave_started", source="parent")
            pid = int(re.fullmatch(r"child-(\d+)", started["id"])[1])  # type: ignore[index]
            port = json.loads((await _until(proc, event="parent_ready"))["inbound"])["api"]
            # Port 0 in the configuration: the ports file says what was bound, as the log does.
            assert json.loads(ports_file.read_text()) == {
                "inbound": {"api": port},
                "operations": None,
            }
            await _until(
                proc, event="host_request", type="PutBlob", name="ready", size=7, result="Ok"
            )
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"through the parent")
            writer.write_eof()
            assert await reader.read() == b"through the parent"
            writer.close()
            proc.send_signal(signal.SIGTERM)
            await _until(proc, event="enclave_stopped")
            return await proc.wait(), pid
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    code, enclave_pid = asyncio.run(scenario())
    assert code == EXIT_OK
    assert (runtime_dir / "blobs" / "ready").read_bytes() == b"AKIDEMU"
    # The recording is the parent's whole view: both directions of each route, and host services.
    seen = runtime_dir / "seen"
    assert (seen / "api-in.bin").read_bytes() == b"through the parent"
    assert (seen / "api-out.bin").read_bytes() == b"through the parent"
    requests = decode_request((seen / "hostservices-in.bin").read_bytes()[-len(_put_ready()) :])
    assert requests == PutBlob("ready", b"AKIDEMU")
    assert b"AKIDEMU" in (seen / "hostservices-out.bin").read_bytes()  # the Credentials answer
    with pytest.raises(ProcessLookupError):
        os.kill(enclave_pid, 0)


def _put_ready() -> bytes:
    return encode_request(PutBlob("ready", b"AKIDEMU"))


def test_parent_exits_2_when_the_enclave_dies(runtime_dir: Path) -> None:
    async def scenario() -> int:
        proc = await _start(runtime_dir, "die")
        try:
            await _until(proc, event="enclave_ended", exit="exited with code 3")
            return await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    assert asyncio.run(scenario()) == 2


def test_check_and_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "node.json"
    path.write_text(json.dumps(_config(tmp_path, "serve")))
    assert main(["--config", str(path), "--check"]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "emulated"
    assert summary["inbound"] == ["127.0.0.1:0->5000"]
    path.write_text(json.dumps({**_config(tmp_path, "serve"), "mode": "debug"}))
    assert main(["--config", str(path)]) == EXIT_LOCAL_ERROR
    assert "invalid configuration: mode:" in capsys.readouterr().err
