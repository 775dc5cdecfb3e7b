"""``keyshard key ...`` through the CLI entry point, against a running three-node cluster.

Exit codes are the contract (Vault's): 1 for what this machine refuses (a truncated ciphertext, a
wrong context, a hardened BIP-32 path, missing credentials), 2 for what the cluster refuses or
cannot do (an existing name, approvals short of the quorum, no such key, every node down).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import coincurve
import pytest
from cluster_processes import running_cluster
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from enclave.mpc.decryption.ecies import MAX_PLAINTEXT
from keyshard.cli.main import main
from keyshard.client.credentials import ClientCredentials
from keyshard.dev.cluster import Cluster

pytestmark = pytest.mark.slow

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster("ksk-", 3) as running:
        yield running


def _out(capsysbinary: pytest.CaptureFixture[bytes]) -> str:
    return capsysbinary.readouterr().out.decode()


def _base58check(text: str) -> bytes:
    """Test-only Base58Check decoder (the checksum proves the decoding right)."""
    value = 0
    for ch in text:
        value = value * 58 + _B58.index(ch)
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    raw = b"\x00" * (len(text) - len(text.lstrip("1"))) + raw
    payload, checksum = raw[:-4], raw[-4:]
    assert hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] == checksum
    return payload


def test_create_info_list_sign_encrypt_decrypt(
    directory: Path,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    d = ["--dir", str(directory)]
    assert main(["key", "create", "treasury", *d, "--format", "json"]) == 0
    created = json.loads(_out(capsysbinary))
    assert created["suite"] == "ed25519"
    assert created["signers_needed"] == 2
    assert "xpub" not in created  # FROST keys derive no BIP-32 children
    assert main(["key", "info", "treasury", *d, "--format", "json"]) == 0
    assert json.loads(_out(capsysbinary)) == created
    assert main(["key", "info", "treasury", *d]) == 0
    shown = _out(capsysbinary)
    assert created["public_key"] in shown
    assert "-----BEGIN PUBLIC KEY-----" in shown

    # the PEM/SPKI form loads with cryptography and is the same key
    assert main(["key", "info", "treasury", *d, "--field", "public_key_pem"]) == 0
    loaded = serialization.load_pem_public_key(capsysbinary.readouterr().out)
    assert isinstance(loaded, Ed25519PublicKey)
    raw = loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw.hex() == created["public_key"]

    assert main(["key", "list", *d]) == 0
    assert "treasury" in _out(capsysbinary).splitlines()
    assert main(["key", "list", *d, "--format", "json"]) == 0
    assert {"name": "treasury"} in json.loads(_out(capsysbinary))

    message = tmp_path / "message"
    message.write_bytes(b"wire 5 to 42")
    assert main(["key", "sign", "treasury", *d, "--file", str(message)]) == 0
    signature = bytes.fromhex(_out(capsysbinary).strip())
    loaded.verify(signature, b"wire 5 to 42")
    assert main(["key", "sign", "treasury", *d, "--file", str(message), "--format", "json"]) == 0
    rendered = json.loads(_out(capsysbinary))
    assert rendered["public_key"] == created["public_key"]
    loaded.verify(bytes.fromhex(rendered["signature"]), b"wire 5 to 42")
    # a BIP-32 path is for ECDSA keys: refused here, before any node signs
    assert main(["key", "sign", "treasury", *d, "--file", str(message), "--path", "m/1"]) == 1

    sealed = tmp_path / "sealed"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the payroll")))
    assert main(["key", "encrypt", "treasury", *d, "--out", str(sealed), "--context", "q3"]) == 0
    assert capsysbinary.readouterr().out == b""
    assert b"the payroll" not in sealed.read_bytes()
    decrypt = ["key", "decrypt", "treasury", *d, "--file", str(sealed)]
    assert main([*decrypt, "--context", "q3"]) == 0
    assert capsysbinary.readouterr().out == b"the payroll"
    assert main([*decrypt, "--context", "q3", "--format", "json"]) == 0
    assert json.loads(_out(capsysbinary)) == {
        "key": "treasury",
        "context": "q3",
        "length": 11,
        "out": None,
        "plaintext": b"the payroll".hex(),
    }

    # refused on this machine: exit 1, with nothing on stdout
    assert main(decrypt) == 1  # a wrong context fails the combined AEAD check here
    shown_err = capsysbinary.readouterr()
    assert (shown_err.out, b"wrong context" in shown_err.err) == (b"", True)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(sealed.read_bytes()[:-20])
    assert (
        main(["key", "decrypt", "treasury", *d, "--file", str(truncated), "--context", "q3"]) == 1
    )
    assert capsysbinary.readouterr().out == b""
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a ciphertext at all")
    assert main(["key", "decrypt", "treasury", *d, "--file", str(garbage)]) == 1
    # refused by the nodes: exit 2
    assert main(["key", "create", "treasury", *d]) == 2
    assert b"key_exists" in capsysbinary.readouterr().err


def test_whatever_encrypt_accepts_decrypt_accepts(
    directory: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Issue 9 item 11: a plaintext just under the old 65,536-byte input cap, and the largest
    plaintext encryption takes, both decrypt; one byte more is refused at encryption (exit 1,
    naming the limit); a key that cannot decrypt is not encrypted to."""
    d = ["--dir", str(directory)]
    assert main(["key", "create", "sizes", *d]) == 0
    plain, sealed, opened = tmp_path / "plain", tmp_path / "sealed", tmp_path / "opened"
    for size in (65_500, MAX_PLAINTEXT):
        plain.write_bytes(os.urandom(size))
        encrypt = ["key", "encrypt", "sizes", *d, "--file", str(plain), "--out", str(sealed)]
        assert main(encrypt) == 0, size
        assert (
            main(["key", "decrypt", "sizes", *d, "--file", str(sealed), "--out", str(opened)]) == 0
        )
        assert opened.read_bytes() == plain.read_bytes()
    capsysbinary.readouterr()
    plain.write_bytes(bytes(MAX_PLAINTEXT + 1))
    assert main(encrypt) == 1
    assert f"longer than {MAX_PLAINTEXT} bytes".encode() in capsysbinary.readouterr().err
    assert main(["key", "create", "sizes-ecdsa", *d, "--suite", "ecdsa-secp256k1"]) == 0
    plain.write_bytes(b"m")
    capsysbinary.readouterr()
    assert main(["key", "encrypt", "sizes-ecdsa", *d, "--file", str(plain)]) == 1
    assert b"does not decrypt" in capsysbinary.readouterr().err


def test_no_such_key_and_no_profile_say_different_things(
    directory: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert main(["key", "info", "nothing-here", "--dir", str(directory)]) == 2
    err = capsysbinary.readouterr().err.decode()
    assert err.startswith("keyshard key info: no such key")
    assert "unreachable" not in err
    assert (
        main(["key", "sign", "nothing-here", "--dir", str(directory), "--file", "/dev/null"]) == 2
    )
    assert b"no such key" in capsysbinary.readouterr().err

    assert main(["key", "info", "k", "--dir", str(tmp_path / "none")]) == 1
    err = capsysbinary.readouterr().err.decode()
    assert "keyshard dev up" in err
    assert "Terraform" in err


def test_profile_and_credentials_by_flag_and_by_environment(
    directory: Path,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A profile with no client/ beside it, as a Terraform-rendered one would be.
    profile = tmp_path / "rendered" / "profile.json"
    profile.parent.mkdir()
    shutil.copy(directory / "profile.json", profile)
    credentials = tmp_path / "admin"
    shutil.copytree(directory / "client", credentials)
    cert, key = credentials / "client-cert.pem", credentials / "client-key.pem"

    assert main(["key", "create", "by-flag", "--profile", str(profile)]) == 1
    assert b"no client credentials at" in capsysbinary.readouterr().err
    by_flag = ["--profile", str(profile), "--cert", str(cert), "--key", str(key)]
    assert main(["key", "create", "by-flag", *by_flag, "--field", "name"]) == 0
    assert _out(capsysbinary) == "by-flag\n"

    monkeypatch.setenv("KEYSHARD_PROFILE", str(profile))
    monkeypatch.setenv("KEYSHARD_CLIENT_CERT", str(cert))
    monkeypatch.setenv("KEYSHARD_CLIENT_KEY", str(key))
    assert main(["key", "info", "by-flag", "--field", "public_key"]) == 0
    from_env = _out(capsysbinary).strip()
    assert main(["key", "info", "by-flag", *by_flag, "--field", "public_key"]) == 0
    assert _out(capsysbinary).strip() == from_env
    assert main(["key", "list"]) == 0
    assert "by-flag" in _out(capsysbinary).split()

    # a certificate the nodes do not list: every node refuses the channel, a remote error
    stranger = ClientCredentials.load_or_create(tmp_path / "stranger")
    monkeypatch.setenv("KEYSHARD_CLIENT_CERT", str(stranger.cert_path))
    monkeypatch.setenv("KEYSHARD_CLIENT_KEY", str(stranger.key_path))
    assert main(["key", "info", "by-flag"]) == 2
    assert b"no such key" not in capsysbinary.readouterr().err


def test_approvers_approve_and_the_nodes_enforce_the_quorum(
    directory: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    d = ["--dir", str(directory)]
    publics = []
    for who in ("alice", "bob"):
        assert main(["approver", "keygen", "--out", str(tmp_path / who)]) == 0
        publics.append(_out(capsysbinary).strip())
        assert (tmp_path / who).stat().st_mode & 0o777 == 0o600
    assert main(["approver", "keygen", "--out", str(tmp_path / "alice")]) == 1  # never overwritten
    assert b"refusing to overwrite" in capsysbinary.readouterr().err

    approvers = [arg for key in publics for arg in ("--approver", key)]
    create = ["key", "create", "payouts", *d, *approvers, "--quorum", "2", "--require", "sign"]
    assert main([*create, "--format", "json"]) == 0
    created = json.loads(_out(capsysbinary))
    assert created["policy"] == {
        "approvers": sorted(publics),
        "quorum": 2,
        "require": ["sign"],
        "summary": "2 of 2 approvers for sign; approvals live at most 604800 s",
    }

    message = tmp_path / "message"
    message.write_bytes(b"pay 7 to 9")
    approvals = []
    for who in ("alice", "bob"):
        approve = ["key", "approve", "payouts", *d, "--approver-key", str(tmp_path / who)]
        assert main([*approve, "--file", str(message), "--ttl", "120"]) == 0
        approvals.append(tmp_path / f"{who}.json")
        approvals[-1].write_bytes(capsysbinary.readouterr().out)
        approval = json.loads(approvals[-1].read_text())
        assert (approval["operation"], approval["group_public_key"]) == (
            "sign",
            created["public_key"],
        )

    sign = ["key", "sign", "payouts", *d, "--file", str(message)]
    assert main([*sign, "--approval", str(approvals[0])]) == 2
    assert b"quorum_not_met" in capsysbinary.readouterr().err
    assert main([*sign, *(a for p in approvals for a in ("--approval", str(p)))]) == 0
    signature = bytes.fromhex(_out(capsysbinary).strip())
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
    created = json.loads(_out(capsysbinary))
    assert (created["suite"], created["threshold"], created["signers_needed"]) == (
        "ecdsa-secp256k1",
        1,
        3,
    )
    root = bytes.fromhex(created["public_key"])
    public = coincurve.PublicKey(root)

    # PEM/SPKI: a secp256k1 key cryptography loads, the same point
    assert main(["key", "info", "wallet", *d, "--field", "public_key_pem"]) == 0
    loaded = serialization.load_pem_public_key(capsysbinary.readouterr().out)
    assert isinstance(loaded, ec.EllipticCurvePublicKey)
    assert isinstance(loaded.curve, ec.SECP256K1)
    point = serialization.PublicFormat.CompressedPoint
    assert loaded.public_bytes(serialization.Encoding.X962, point) == root

    # the xpub: mainnet version, depth 0, no parent, child 0, Keyshard's chain code, the key
    assert main(["key", "info", "wallet", *d, "--field", "xpub"]) == 0
    xpub = _base58check(_out(capsysbinary).strip())
    chain_code = hashlib.sha256(b"keyshard/bip32/chain-code/v1" + root).digest()
    assert len(xpub) == 78
    assert xpub[:4] == bytes.fromhex("0488b21e")
    assert (xpub[4], xpub[5:9], xpub[9:13]) == (0, bytes(4), bytes(4))
    assert (xpub[13:45], xpub[45:]) == (chain_code, root)

    message = tmp_path / "tx"
    message.write_bytes(b"send 3 sat")
    digest = hashlib.sha256(b"send 3 sat").digest()
    assert main(["key", "sign", "wallet", *d, "--file", str(message)]) == 0
    der = bytes.fromhex(_out(capsysbinary).strip())
    assert public.verify(der, digest, hasher=None)
    assert main(["key", "sign", "wallet", *d, "--file", str(message), "--format", "json"]) == 0
    rendered = json.loads(_out(capsysbinary))
    assert rendered["compact"] == rendered["r"] + rendered["s"]
    recoverable = bytes.fromhex(rendered["compact"]) + bytes([rendered["recovery_id"]])
    recovered = coincurve.PublicKey.from_signature_and_message(recoverable, digest, hasher=None)
    assert recovered.format() == public.format()
    assert main(["key", "sign", "wallet", *d, "--file", str(message), "--field", "compact"]) == 0
    assert len(bytes.fromhex(_out(capsysbinary).strip())) == 64
    sign = ["key", "sign", "wallet", *d, "--file", str(message)]
    assert main([*sign, "--field", "recovery_id"]) == 0
    assert _out(capsysbinary).strip() in {"0", "1", "2", "3"}

    # a BIP-32 child (m/5), derived here by hand from what the xpub carries (CKDpub)
    tweak = hmac.new(xpub[13:45], xpub[45:] + (5).to_bytes(4, "big"), hashlib.sha512).digest()
    child = coincurve.PublicKey(xpub[45:]).add(tweak[:32])
    assert main([*sign, "--path", "m/5", "--format", "json"]) == 0
    rendered = json.loads(_out(capsysbinary))
    assert (rendered["path"], rendered["public_key"]) == ("m/5", child.format().hex())
    assert child.verify(bytes.fromhex(rendered["signature"]), digest, hasher=None)

    # hardened or malformed paths need the whole private key: refused here, exit 1
    for path in ("m/0'", "m/0h", f"m/{2**31}", "m/x"):
        assert main([*sign, "--path", path]) == 1
        shown = capsysbinary.readouterr()
        assert (shown.out, shown.err.count(b"\n")) == (b"", 1)
    # t=1 of 3 is the most an honest-majority ECDSA key allows on three nodes
    assert main(["key", "create", "w2", *d, "--suite", "ecdsa-secp256k1", "--threshold", "2"]) == 1
    assert b"needs n >= 5 nodes for t=2" in capsysbinary.readouterr().err
    assert main(["key", "create", "w3", *d, "--suite", "no-such-suite"]) == 1
    assert b"ecdsa-secp256k1" in capsysbinary.readouterr().err  # the known suites are listed
    # an ECDSA key does not decrypt: refused before any node is asked
    assert main(["key", "encrypt", "wallet", *d, "--file", str(message)]) == 1


def test_a_stopped_cluster_is_a_remote_error_distinct_from_no_such_key(
    cluster: Cluster,
    directory: Path,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    d = ["--dir", str(directory)]
    message = tmp_path / "message"
    message.write_bytes(b"m")
    assert main(["key", "create", "before-stop", *d]) == 0
    capsysbinary.readouterr()
    for index in range(1, cluster.nodes + 1):
        cluster.stop_node(index)
    try:
        for argv in (
            ["info", "before-stop"],
            ["list"],
            ["sign", "before-stop", "--file", str(message)],
            ["encrypt", "before-stop", "--file", str(message)],
            ["create", "after-stop"],
        ):
            assert main(["key", *argv, *d]) == 2, argv
            shown = capsysbinary.readouterr()
            assert shown.out == b""
            assert b"unreachable" in shown.err, shown.err
            assert b"no such key" not in shown.err
    finally:
        for index in range(1, cluster.nodes + 1):
            cluster.start_node(index)
        cluster.wait_ready(timeout=90)
    assert main(["key", "info", "before-stop", *d, "--field", "name"]) == 0
    assert _out(capsysbinary) == "before-stop\n"
