"""``keyshard recovery-key generate`` and ``keyshard backup verify|reconstruct`` offline (no
cluster): files and modes, exit codes, the confirmation the emergency path asks for, and that
nothing is written when anything is refused. The same ceremony against real nodes is
tests/cluster/test_backup_cli.py."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from enclave.mpc.suites import KEY_SUITES
from keyshard.cli.main import main
from keyshard.client.backup import Backup
from tests.client.test_backup_file import RECOVERY, make_backup
from wire import cbor
from wire.approvals import restore_digest


@pytest.fixture(scope="module")
def backup_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    backup, _ = make_backup(KEY_SUITES["secp256k1"])
    path = tmp_path_factory.mktemp("backup") / "payroll.backup"
    path.write_bytes(backup.encode())
    return path


@pytest.fixture(scope="module")
def recovery_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recovery") / "recovery.pem"
    path.write_bytes(
        RECOVERY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def test_generate_writes_a_0600_private_key_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = tmp_path / "r.pem", tmp_path / "r.pub"
    argv = ["recovery-key", "generate", "--private", str(private), "--public", str(public)]
    assert main([*argv, "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert len(bytes.fromhex(record["recovery_key"])) == 32
    before = private.read_bytes()
    assert main(argv) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert private.read_bytes() == before


def test_verify_needs_only_the_file(backup_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backup", "verify", str(backup_file), "--field", "verified"]) == 0
    assert capsys.readouterr().out.strip() == "true"


def test_verify_refuses_a_truncated_or_altered_file(
    backup_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    value = cbor.loads(backup_file.read_bytes())
    value["epoch"] += 1  # a backup claimed for another epoch: no proof holds
    for name, data in (
        ("altered", cbor.dumps(value)),
        ("truncated", backup_file.read_bytes()[:-10]),
    ):
        bad = tmp_path / name
        bad.write_bytes(data)
        assert main(["backup", "verify", str(bad)]) == 1
        assert "keyshard backup verify:" in capsys.readouterr().err


def test_reconstruct_asks_unless_yes_and_writes_nothing_when_refused(
    backup_file: Path,
    recovery_pem: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "key.pem"
    argv = ["backup", "reconstruct", str(backup_file), "--recovery-key", str(recovery_pem)]
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: --yes is required
    assert main([*argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "EMERGENCY PATH" in err
    assert "--yes" in err
    assert not out.exists()
    assert main([*argv, "--out", str(out), "--yes", "--format", "json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["emergency"] is True
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(out.read_bytes(), password=None)
    point = key.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    assert point.hex() == record["public_key"]


def test_approve_restore_names_the_backups_key_and_package_offline(
    backup_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    approver = tmp_path / "alice.pem"
    assert main(["approver", "keygen", "--out", str(approver)]) == 0
    capsys.readouterr()
    argv = ["key", "approve", "payroll", "--approver-key", str(approver), "--op", "restore"]
    # no cluster is asked: the key is not on one yet, the backup says which key it is
    assert main([*argv, "--file", str(backup_file), "--dir", str(tmp_path / "none")]) == 0
    approval = json.loads(capsys.readouterr().out)
    backup = Backup.decode(backup_file.read_bytes())
    assert approval["operation"] == "restore"
    assert approval["digest"] == restore_digest(backup.public.to_bytes()).hex()
    assert approval["group_public_key"] == backup.public.group_public_key.to_bytes().hex()
