"""``keyshard key ...`` through the CLI entry point, against a running three-node cluster."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_processes import cluster_processes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keyshard.cli.main import main
from keyshard.dev.cluster import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def directory() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ksk-", dir="/tmp"))
    try:
        with Cluster(path, 3) as cluster:
            cluster.up(timeout=90)
            yield path
        assert cluster_processes(path) == []
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_create_info_sign_encrypt_decrypt(
    directory: Path,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = ["--dir", str(directory)]
    assert main(["key", "create", "treasury", *d, "--format", "json"]) == 0
    created = json.loads(capsysbinary.readouterr().out)
    assert created["suite"] == "ed25519"
    assert created["signers_needed"] == 2
    assert main(["key", "info", "treasury", *d, "--format", "json"]) == 0
    assert json.loads(capsysbinary.readouterr().out) == created

    message = tmp_path / "message"
    message.write_bytes(b"wire 5 to 42")
    assert main(["key", "sign", "treasury", *d, "--file", str(message)]) == 0
    signature = bytes.fromhex(capsysbinary.readouterr().out.decode().strip())
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(created["public_key"])).verify(
        signature, b"wire 5 to 42"
    )

    sealed = tmp_path / "sealed"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the payroll")))
    assert main(["key", "encrypt", "treasury", *d, "--out", str(sealed), "--context", "q3"]) == 0
    assert b"the payroll" not in sealed.read_bytes()
    assert main(["key", "decrypt", "treasury", *d, "--file", str(sealed), "--context", "q3"]) == 0
    assert capsysbinary.readouterr().out == b"the payroll"

    # a wrong context fails the combined decryption: a remote-side check, exit 2
    assert main(["key", "decrypt", "treasury", *d, "--file", str(sealed)]) == 2
    # an existing name is refused by the nodes
    assert main(["key", "create", "treasury", *d]) == 2
    assert b"KeyExistsError" in capsysbinary.readouterr().err


def test_unknown_key_and_missing_cluster(
    directory: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert main(["key", "info", "nothing-here", "--dir", str(directory)]) == 2
    assert b"no reachable node holds key" in capsysbinary.readouterr().err
    assert main(["key", "info", "k", "--dir", str(tmp_path / "none")]) == 1
    assert b"keyshard dev up" in capsysbinary.readouterr().err
