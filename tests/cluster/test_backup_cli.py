"""The backup ceremony through the CLI against a running three-node cluster (real processes):
make a recovery key, back up 2-of-3 keys, verify the file WITHOUT the recovery key, reconstruct
offline (the emergency path) and check the result against the cluster's own public key and
signatures with independent verifiers (cryptography / OpenSSL, libsodium)."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_processes import cluster_processes, running_cluster
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl import bindings as sodium

from keyshard.cli.main import main
from keyshard.dev.cluster import Cluster
from wire import cbor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster("ksb-", 3) as running:
        yield running


def _json(capsysbinary: pytest.CaptureFixture[bytes]) -> dict[str, object]:
    value = json.loads(capsysbinary.readouterr().out.decode())
    assert isinstance(value, dict)
    return value


def _recovery_key(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> tuple[Path, Path]:
    private, public = tmp_path / "recovery.pem", tmp_path / "recovery.pub"
    argv = ["recovery-key", "generate", "--private", str(private), "--public", str(public)]
    assert main([*argv, "--format", "json"]) == 0
    assert _json(capsysbinary)["private_key_file"] == str(private)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert main(argv) == 1  # never overwritten
    capsysbinary.readouterr()
    return private, public


def _create_and_back_up(
    name: str,
    d: list[str],
    public: Path,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    *create: str,
) -> tuple[dict[str, object], Path]:
    """``key create NAME`` (2-of-3) then ``key backup NAME``: the key's record and the file."""
    assert main(["key", "create", name, *d, "--threshold", "1", *create, "--format", "json"]) == 0
    created = _json(capsysbinary)
    backup_file = tmp_path / f"{name}.backup"
    argv = ["key", "backup", name, *d, "--recovery-key", str(public), "--out", str(backup_file)]
    assert main([*argv, "--format", "json"]) == 0
    made = _json(capsysbinary)
    assert made["holders"] == ["node-1", "node-2", "node-3"]
    assert made["public_key"] == created["public_key"]
    return created, backup_file


def test_ecdsa_key_backup_verify_reconstruct(
    directory: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    d = ["--dir", str(directory)]
    private, public = _recovery_key(tmp_path, capsysbinary)
    suite = ("--suite", "ecdsa-secp256k1")
    created, backup_file = _create_and_back_up("wallet", d, public, tmp_path, capsysbinary, *suite)

    # anyone, with the file alone: no recovery key, no cluster
    assert main(["backup", "verify", str(backup_file), "--format", "json"]) == 0
    verified = _json(capsysbinary)
    assert verified["verified"] is True
    assert verified["public_key"] == created["public_key"]

    # a file whose verification share was swapped for another point is refused (exit 1)
    value = cbor.loads(backup_file.read_bytes())
    shares = value["verification_shares"]
    shares[0]["share"], shares[1]["share"] = shares[1]["share"], shares[0]["share"]
    bent = tmp_path / "bent.backup"
    bent.write_bytes(cbor.dumps(value))
    assert main(["backup", "verify", str(bent)]) == 1
    assert b"do not match the group key" in capsysbinary.readouterr().err

    # the emergency path: a PEM (0600) whose key is the cluster's, signing verifiably
    key_pem = tmp_path / "wallet.pem"
    reconstruct = ["backup", "reconstruct", str(backup_file), "--recovery-key", str(private)]
    assert main([*reconstruct, "--out", str(key_pem), "--yes"]) == 0
    shown = capsysbinary.readouterr()
    assert b"EMERGENCY PATH" in shown.err
    assert stat.S_IMODE(key_pem.stat().st_mode) == 0o600
    restored = serialization.load_pem_private_key(key_pem.read_bytes(), password=None)
    assert isinstance(restored, ec.EllipticCurvePrivateKey)
    point = restored.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    assert point.hex() == created["public_key"]
    cluster_public = serialization.load_pem_public_key(str(created["public_key_pem"]).encode())
    assert isinstance(cluster_public, ec.EllipticCurvePublicKey)
    cluster_public.verify(
        restored.sign(b"restored", ec.ECDSA(hashes.SHA256())),
        b"restored",
        ec.ECDSA(hashes.SHA256()),
    )
    message = tmp_path / "message"
    message.write_bytes(b"wire 5 to 42")  # and the cluster's signature verifies under it
    assert main(["key", "sign", "wallet", *d, "--file", str(message), "--format", "json"]) == 0
    signature = bytes.fromhex(str(_json(capsysbinary)["signature"]))
    restored.public_key().verify(signature, b"wire 5 to 42", ec.ECDSA(hashes.SHA256()))

    # refused: an existing output, and another recovery key (nothing written)
    assert main([*reconstruct, "--out", str(key_pem), "--yes"]) == 1
    (tmp_path / "other").mkdir()
    other, _ = _recovery_key(tmp_path / "other", capsysbinary)
    elsewhere = tmp_path / "elsewhere.pem"
    argv = ["backup", "reconstruct", str(backup_file), "--recovery-key", str(other)]
    assert main([*argv, "--out", str(elsewhere), "--yes"]) == 1
    assert b"not the one the backup is encrypted to" in capsysbinary.readouterr().err
    assert not elsewhere.exists()


def test_ed25519_key_backup_reconstructs_the_signing_scalar(
    directory: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    d = ["--dir", str(directory)]
    private, public = _recovery_key(tmp_path, capsysbinary)
    created, backup_file = _create_and_back_up("treasury", d, public, tmp_path, capsysbinary)
    assert main(["backup", "verify", str(backup_file)]) == 0
    capsysbinary.readouterr()
    key_pem = tmp_path / "treasury.pem"
    argv = ["backup", "reconstruct", str(backup_file), "--recovery-key", str(private)]
    assert main([*argv, "--out", str(key_pem), "--yes"]) == 0
    capsysbinary.readouterr()
    lines = key_pem.read_text().splitlines()
    assert lines[0] == "-----BEGIN KEYSHARD ED25519 SECRET SCALAR-----"
    scalar = base64.b64decode("".join(lines[1:-1]))
    public_key = sodium.crypto_scalarmult_ed25519_base_noclamp(scalar)
    assert public_key.hex() == created["public_key"]  # libsodium, not Keyshard's arithmetic
    message = tmp_path / "message"
    message.write_bytes(b"pay 7")
    assert main(["key", "sign", "treasury", *d, "--file", str(message)]) == 0
    signature = bytes.fromhex(capsysbinary.readouterr().out.decode().strip())
    Ed25519PublicKey.from_public_bytes(public_key).verify(signature, b"pay 7")


def test_restore_into_a_fresh_cluster(
    directory: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Back up on the running cluster; a new cluster that shares nothing with it (other
    enclaves, boots, sealing keys and KMS) receives the shares and signs under the same key."""
    d = ["--dir", str(directory)]
    private, public = _recovery_key(tmp_path, capsysbinary)
    created, backup_file = _create_and_back_up("vault", d, public, tmp_path, capsysbinary)

    fresh_dir = Path(tempfile.mkdtemp(prefix="ksr-", dir="/tmp"))
    try:
        with Cluster(fresh_dir, 3) as fresh:
            fresh.up(timeout=90)
            f = ["--dir", str(fresh.directory)]
            assert main(["key", "info", "vault", *f]) == 2  # not there yet
            capsysbinary.readouterr()
            argv = ["key", "restore", str(backup_file), *f, "--recovery-key", str(private)]
            assert main([*argv, "--format", "json"]) == 0
            restored = _json(capsysbinary)
            assert restored["public_key"] == created["public_key"]
            message = tmp_path / "message"
            message.write_bytes(b"after the restore")
            assert main(["key", "sign", "vault", *f, "--file", str(message)]) == 0
            signature = bytes.fromhex(capsysbinary.readouterr().out.decode().strip())
            verifier = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(created["public_key"])))
            verifier.verify(signature, b"after the restore")  # OpenSSL's Ed25519
        assert cluster_processes(fresh_dir) == []
    finally:
        shutil.rmtree(fresh_dir, ignore_errors=True)
