"""Key export and import (issue 11) on real processes, through the CLI entry point.

Export: a key created without --exportable is refused (not_exportable) whatever the approvals;
an exportable key is refused without its quorum's export approvals; with them the recipient
reconstructs the key from the bundle, the PEM is 0600, signs a message that verifies under the
cluster's public key (an independent verifier: cryptography), and ``key info`` shows "exported".
Import: an Ed25519 PEM imported into the cluster signs, through the cluster, messages that verify
under the PEM's own public key; ``key info`` shows "imported".
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_processes import cli_json, running_cluster
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from keyshard.cli.main import main
from keyshard.client.custody import load_private_key
from keyshard.dev.cluster import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster("ksc-", 3) as running:
        yield running


def _recipient(tmp_path: Path) -> tuple[Path, Path]:
    key = X25519PrivateKey.generate()
    private, public = tmp_path / "recipient.key", tmp_path / "recipient.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.mark.parametrize("suite", ["ed25519", "ecdsa-secp256k1"])
def test_an_exportable_key_leaves_only_with_its_approvals_and_reads_exported(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], suite: str
) -> None:
    d = ["--dir", str(directory)]
    publics = []
    for who in ("alice", "bob"):
        assert main(["approver", "keygen", "--out", str(tmp_path / who)]) == 0
        publics.append(capsys.readouterr().out.strip())
    approvers = [arg for key in publics for arg in ("--approver", key)]
    private, public = _recipient(tmp_path)
    name = f"vault-{suite}"
    create = ["key", "create", name, *d, "--suite", suite, *approvers, "--quorum", "2"]

    # not created exportable: never, whatever the approvals
    assert main([*create[:2], f"{name}-kept", *create[3:], "--format", "json"]) == 0
    capsys.readouterr()
    kept_approvals = []
    for who in ("alice", "bob"):
        approve = ["key", "approve", f"{name}-kept", *d, "--approver-key", str(tmp_path / who)]
        assert main([*approve, "--op", "export", "--to", str(public)]) == 0
        kept_approvals += ["--approval", str(tmp_path / f"kept-{who}.json")]
        (tmp_path / f"kept-{who}.json").write_text(capsys.readouterr().out)
    out = tmp_path / "kept.export"
    assert main(["key", "export", f"{name}-kept", *d, "--to", str(public), "--out", str(out),
                 *kept_approvals]) == 2  # fmt: skip
    assert "not_exportable" in capsys.readouterr().err
    assert not out.exists()

    assert main([*create, "--exportable", "--format", "json"]) == 0
    created = cli_json(capsys)
    assert (created["exportable"], created["exported"]) == (True, False)
    export = ["key", "export", name, *d, "--to", str(public)]
    assert main([*export, "--out", str(tmp_path / "none.export")]) == 2
    assert "quorum_not_met" in capsys.readouterr().err

    approvals = []
    for who in ("alice", "bob"):
        approve = ["key", "approve", name, *d, "--approver-key", str(tmp_path / who)]
        assert main([*approve, "--op", "export", "--to", str(public)]) == 0
        approvals += ["--approval", str(tmp_path / f"{who}.json")]
        (tmp_path / f"{who}.json").write_text(capsys.readouterr().out)
    bundle = tmp_path / "vault.export"
    assert main([*export, "--out", str(bundle), *approvals, "--format", "json"]) == 0
    assert cli_json(capsys)["holders"] == ["node-1", "node-2", "node-3"]
    assert bundle.stat().st_mode & 0o777 == 0o600

    pem = tmp_path / "vault.pem"
    unwrap = ["key", "unwrap", "--bundle", str(bundle), "--recipient-key", str(private)]
    assert main([*unwrap, "--out", str(pem)]) == 0
    capsys.readouterr()
    assert pem.stat().st_mode & 0o777 == 0o600
    message = b"signed with the exported key"
    cluster_key = bytes.fromhex(str(created["public_key"]))
    if suite == "ed25519":
        signature = load_private_key(pem.read_bytes()).sign(message)
        Ed25519PublicKey.from_public_bytes(cluster_key).verify(signature, message)
    else:
        key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
        point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), cluster_key)
        point.verify(signature, message, ec.ECDSA(hashes.SHA256()))

    assert main(["key", "info", name, *d, "--format", "json"]) == 0
    assert cli_json(capsys)["exported"] is True
    assert main(["key", "info", name, *d]) == 0
    assert "exportable, exported" in capsys.readouterr().out
    # the approvals were spent by the export they approved
    assert main([*export, "--out", str(tmp_path / "again.export"), *approvals]) == 2
    assert "approval_reused" in capsys.readouterr().err


def test_an_imported_pem_signs_under_its_own_public_key(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--dir", str(directory)]
    outside = Ed25519PrivateKey.generate()
    pem = tmp_path / "outside.pem"
    pem.write_bytes(
        outside.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert main(["key", "import", "legacy", *d, "--file", str(pem), "--format", "json"]) == 0
    imported = cli_json(capsys)
    raw = outside.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert (imported["imported"], imported["public_key"]) == (True, raw.hex())
    message = tmp_path / "message"
    message.write_bytes(b"signed by the cluster")
    assert main(["key", "sign", "legacy", *d, "--file", str(message)]) == 0
    outside.public_key().verify(
        bytes.fromhex(capsys.readouterr().out.strip()), b"signed by the cluster"
    )
    # the name is taken now; a key file that is not a private key is refused here
    assert main(["key", "import", "legacy", *d, "--file", str(pem)]) == 2
    assert "key_exists" in capsys.readouterr().err
    assert main(["key", "import", "other", *d, "--file", str(message)]) == 1


def test_an_offline_holder_signs_through_files_and_refuses_a_replay(
    cluster: Cluster, directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 2-of-3 key with node-3 offline: package -> file -> partial -> combined signature; the
    same package a second time is refused; after a reboot node-3 is witnessed by file."""
    d = ["--dir", str(directory)]
    assert main(["key", "create", "cold", *d, "--threshold", "1", "--format", "json"]) == 0
    public = bytes.fromhex(str(cli_json(capsys)["public_key"]))
    commitments = tmp_path / "cold.commitments"
    offline = ["offline", "commit", "cold", *d, "--node", "node-3", "--count", "4"]
    assert main([*offline, "--out", str(commitments)]) == 0
    capsys.readouterr()
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    inbox.mkdir()
    outbox.mkdir()
    message = tmp_path / "tx"
    message.write_bytes(b"move 3 BTC to cold storage")
    prepare = ["offline", "prepare", "cold", *d, "--commitments", str(commitments)]
    assert main([*prepare, "--file", str(message), "--out", str(inbox / "tx.package")]) == 0
    capsys.readouterr()
    sign = ["offline", "sign", *d, "--node", "node-3", "--inbox", str(inbox)]
    assert main([*sign, "--outbox", str(outbox), "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["error"] is None
    combine = ["offline", "combine", *d, "--package", str(inbox / "tx.package")]
    assert main([*combine, "--partial", str(outbox / "tx.partial")]) == 0
    signature = bytes.fromhex(capsys.readouterr().out.strip())
    Ed25519PublicKey.from_public_bytes(public).verify(signature, b"move 3 BTC to cold storage")

    # the same package carried in again (under another name): refused, nothing written
    shutil.copy(inbox / "tx.package", inbox / "replay.package")
    assert main([*sign, "--outbox", str(outbox)]) == 2
    assert "nonce_unknown" in capsys.readouterr().out
    assert not (outbox / "replay.partial").exists()

    # node-3 reboots: its nonces are gone (the old commitments are refused), and its peers'
    # witness reports reach it by file before it serves again
    cluster.restart_node(3)
    cluster.wait_ready(nodes=[3], timeout=60)
    request, reports = tmp_path / "n3.request", tmp_path / "n3.reports"
    assert main(["offline", "witness-request", *d, "--node", "node-3", "--out", str(request)]) == 0
    assert (
        main(["offline", "witness-reports", *d, "--request", str(request), "--out", str(reports)])
        == 0
    )
    capsys.readouterr()
    check = ["offline", "witness-check", *d, "--node", "node-3", "--reports", str(reports)]
    assert main([*check, "--format", "json"]) == 0
    assert cli_json(capsys)["state"] == "witnessed"
    message.write_bytes(b"after the reboot")
    prepare_next = [*prepare, "--index", "1", "--file", str(message)]
    assert main([*prepare_next, "--out", str(inbox / "next.package")]) == 0
    capsys.readouterr()
    assert main([*sign, "--outbox", str(outbox)]) == 2  # replay and a commitment of the last boot
    assert not (outbox / "next.partial").exists()


def test_a_dev_node_taken_offline_is_reached_only_through_its_own_profile(
    cluster: Cluster, directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`keyshard dev offline node-3`: online clients no longer list it, the air-gapped side's
    profile lists it alone (so after a reboot only files bring its witnesses), and a 2-of-3
    signature still goes through the inbox and outbox it was given."""
    d = ["--dir", str(directory)]
    assert main(["key", "create", "cold2", *d, "--threshold", "1", "--format", "json"]) == 0
    public = bytes.fromhex(str(cli_json(capsys)["public_key"]))
    assert main(["dev", "offline", "node-3", *d]) == 0
    gap = Path(capsys.readouterr().out.strip())
    air = ["--profile", str(gap / "profile.json")]
    try:
        assert main(["key", "info", "cold2", *d, "--format", "json"]) == 0
        assert "node-3" not in cli_json(capsys)["holders"]  # type: ignore[operator]
        cluster.restart_node(3)
        cluster.wait_ready(nodes=[3], timeout=60)
        commitments = tmp_path / "c"
        commit = ["offline", "commit", "cold2", *air, "--node", "node-3", "--out", str(commitments)]
        assert main(commit) == 2  # unwitnessed, and no peer is reachable from the air gap
        capsys.readouterr()
        request, reports = tmp_path / "request", tmp_path / "reports"
        assert (
            main(["offline", "witness-request", *air, "--node", "node-3", "--out", str(request)])
            == 0
        )
        assert (
            main(
                ["offline", "witness-reports", *d, "--request", str(request), "--out", str(reports)]
            )
            == 0
        )
        assert (
            main(["offline", "witness-check", *air, "--node", "node-3", "--reports", str(reports)])
            == 0
        )
        assert main(commit) == 0
        message = tmp_path / "m"
        message.write_bytes(b"through the air gap")
        package = gap / "inbox" / "m.package"
        prepare = ["offline", "prepare", "cold2", *d, "--commitments", str(commitments)]
        assert main([*prepare, "--file", str(message), "--out", str(package)]) == 0
        boxes = ["--inbox", str(gap / "inbox"), "--outbox", str(gap / "outbox")]
        assert main(["offline", "sign", *air, "--node", "node-3", *boxes]) == 0
        capsys.readouterr()
        partial = gap / "outbox" / "m.partial"
        assert (
            main(["offline", "combine", *d, "--package", str(package), "--partial", str(partial)])
            == 0
        )
        signature = bytes.fromhex(capsys.readouterr().out.strip())
        Ed25519PublicKey.from_public_bytes(public).verify(signature, b"through the air gap")
    finally:
        assert main(["dev", "online", "node-3", *d]) == 0
    assert main(["dev", "online", "node-3", *d]) == 1  # online already
