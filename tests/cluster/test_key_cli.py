"""``keyshard key ...`` through the CLI entry point, against a running three-node cluster."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import coincurve
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


def test_approvers_approve_and_the_nodes_enforce_the_quorum(
    directory: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    d = ["--dir", str(directory)]
    publics = []
    for who in ("alice", "bob"):
        assert main(["approver", "keygen", "--out", str(tmp_path / who)]) == 0
        publics.append(capsysbinary.readouterr().out.decode().strip())
        assert (tmp_path / who).stat().st_mode & 0o777 == 0o600
    assert main(["approver", "keygen", "--out", str(tmp_path / "alice")]) == 1  # never overwritten
    assert b"refusing to overwrite" in capsysbinary.readouterr().err

    approvers = [arg for key in publics for arg in ("--approver", key)]
    create = ["key", "create", "payouts", *d, *approvers, "--quorum", "2", "--require", "sign"]
    assert main([*create, "--format", "json"]) == 0
    created = json.loads(capsysbinary.readouterr().out)
    assert created["policy"] == {"approvers": sorted(publics), "quorum": 2, "require": ["sign"]}

    message = tmp_path / "message"
    message.write_bytes(b"pay 7 to 9")
    approvals = []
    for who in ("alice", "bob"):
        approve = ["key", "approve", "payouts", *d, "--key", str(tmp_path / who)]
        assert main([*approve, "--file", str(message), "--ttl", "120"]) == 0
        approvals.append(tmp_path / f"{who}.json")
        approvals[-1].write_bytes(capsysbinary.readouterr().out)
        assert json.loads(approvals[-1].read_text())["operation"] == "sign"

    sign = ["key", "sign", "payouts", *d, "--file", str(message)]
    assert main([*sign, "--approval", str(approvals[0])]) == 2
    assert b"QuorumNotMetError" in capsysbinary.readouterr().err
    assert main([*sign, *(a for p in approvals for a in ("--approval", str(p)))]) == 0
    signature = bytes.fromhex(capsysbinary.readouterr().out.decode().strip())
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(created["public_key"])).verify(
        signature, b"pay 7 to 9"
    )
    # decryption is outside this policy: no approvals needed
    sealed = tmp_path / "sealed"
    assert (
        main(["key", "encrypt", "payouts", *d, "--file", str(message), "--out", str(sealed)]) == 0
    )
    assert main(["key", "decrypt", "payouts", *d, "--file", str(sealed)]) == 0
    assert capsysbinary.readouterr().out == b"pay 7 to 9"
    # bad flags are local errors
    assert main(["key", "create", "p2", *d, "--approver", "zz"]) == 1
    assert main(["key", "create", "p2", *d, *approvers, "--quorum", "3"]) == 1


def test_ecdsa_key_signs_in_der_json_and_compact(
    directory: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    d = ["--dir", str(directory)]
    assert (
        main(["key", "create", "wallet", *d, "--suite", "ecdsa-secp256k1", "--format", "json"]) == 0
    )
    created = json.loads(capsysbinary.readouterr().out)
    assert (created["suite"], created["threshold"]) == ("ecdsa-secp256k1", 1)
    public = coincurve.PublicKey(bytes.fromhex(created["public_key"]))
    message = tmp_path / "tx"
    message.write_bytes(b"send 3 sat")
    digest = hashlib.sha256(b"send 3 sat").digest()

    assert main(["key", "sign", "wallet", *d, "--file", str(message)]) == 0
    der = bytes.fromhex(capsysbinary.readouterr().out.decode().strip())
    assert public.verify(der, digest, hasher=None)
    assert main(["key", "sign", "wallet", *d, "--file", str(message), "--format", "json"]) == 0
    rendered = json.loads(capsysbinary.readouterr().out)
    recoverable = bytes.fromhex(rendered["compact"]) + bytes([rendered["recovery_id"]])
    recovered = coincurve.PublicKey.from_signature_and_message(recoverable, digest, hasher=None)
    assert recovered.format() == public.format()
    assert main(["key", "sign", "wallet", *d, "--file", str(message), "--format", "compact"]) == 0
    compact, recovery_id = capsysbinary.readouterr().out.decode().split()
    assert len(bytes.fromhex(compact)) == 64
    assert recovery_id in {"0", "1", "2", "3"}
    # a BIP-32 child (m/5): the signature verifies under CKDpub of the key, computed here by hand
    root = bytes.fromhex(created["public_key"])
    chain_code = hashlib.sha256(b"keyshard/bip32/chain-code/v1" + root).digest()
    tweak = hmac.new(chain_code, root + (5).to_bytes(4, "big"), hashlib.sha512).digest()[:32]
    child = coincurve.PublicKey(root).add(tweak)
    sign = [
        "key",
        "sign",
        "wallet",
        *d,
        "--file",
        str(message),
        "--path",
        "m/5",
        "--format",
        "json",
    ]
    assert main(sign) == 0
    rendered = json.loads(capsysbinary.readouterr().out)
    assert rendered["public_key"] == child.format().hex()
    assert child.verify(bytes.fromhex(rendered["signature"]), digest, hasher=None)
    # t=1 of 3 is the most an honest-majority ECDSA key allows on three nodes
    assert main(["key", "create", "w2", *d, "--suite", "ecdsa-secp256k1", "--threshold", "2"]) == 1
    assert b"n >= 2t+1" in capsysbinary.readouterr().err
