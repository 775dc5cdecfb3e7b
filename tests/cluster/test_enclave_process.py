"""The enclave as a real child process started from a built image, the way a parent launches it:
empty working directory, scrubbed environment, the image on ``PYTHONPATH``.

It runs the image's code (its log names the image root) and refuses to run code from anywhere else:
an image missing a package would silently import the development checkout through the editable
install — the enclave notices and reports it instead of attesting to code it is not running.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from attestation.emulated_ca import EmulatedCa
from enclave.config import ImageConfig
from enclave.status import CLIENT_PORT, MAX_STATUS_FRAME, NodeState, NodeStatus, decode_status
from enclave.status import encode_request as status_request
from keyshard.dev.image import BuiltImage, build_image
from transport.address import VsockAddress
from transport.framing import FramedStream
from transport.unix import UnixSocketTransport

CID = 16
PEM = EmulatedCa.ephemeral().root_certificate.public_bytes(serialization.Encoding.PEM)
ARN = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kse-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def image(workdir: Path) -> BuiltImage:
    return build_image(workdir / "image", ImageConfig(PEM, {"node-1": ARN}))


def launch(workdir: Path, image_dir: Path) -> subprocess.Popen[bytes]:
    home = workdir / "enclave-home"
    home.mkdir()
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "enclave",
            "--mode",
            "emulated",
            "--cid",
            str(CID),
            "--runtime-dir",
            str(workdir / "run"),
        ],
        cwd=home,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(image_dir)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def poll_status(run_dir: Path, process: subprocess.Popen[bytes]) -> NodeStatus:
    transport = UnixSocketTransport(run_dir)

    async def once() -> NodeStatus:
        reader, writer = await transport.connect(VsockAddress(CID, CLIENT_PORT))
        stream = FramedStream(reader, writer, MAX_STATUS_FRAME)
        try:
            await stream.send(status_request())
            return decode_status(await stream.recv())
        finally:
            await stream.close()

    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, "the enclave exited"
        try:
            status = asyncio.run(once())
            if status.state is not NodeState.BOOTING:
                return status
        except OSError:
            pass
        assert time.monotonic() < deadline, "no status within 30 s"
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> list[dict[str, object]]:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0
    return [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]


def test_the_enclave_runs_its_image_code(workdir: Path) -> None:
    built = image(workdir)
    process = launch(workdir, built.root)
    try:
        status = poll_status(workdir / "run", process)
    finally:
        logs = stop(process)
    # No parent serves host services here, so the boot stops when it asks which node it is —
    # after the image check passed.
    assert status.state is NodeState.FAILED
    assert status.reason is not None
    assert status.reason.startswith("launch: ")
    starting = next(entry for entry in logs if entry.get("event") == "starting")
    assert starting["image_root"] == str(built.root)
    assert any(entry.get("event") == "stopped" for entry in logs)


@pytest.mark.parametrize(
    ("removed", "module"),
    [("transport", "transport"), ("enclave/node_state.py", "enclave.node_state")],
)
def test_code_missing_from_the_image_is_never_taken_from_elsewhere(
    workdir: Path, removed: str, module: str
) -> None:
    # Without the guard, the development checkout (editable install) would supply the module.
    built = image(workdir)
    target = built.root / removed
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    process = launch(workdir, built.root)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert f"ModuleNotFoundError: {module} is not part of the enclave image" in stderr.decode()
