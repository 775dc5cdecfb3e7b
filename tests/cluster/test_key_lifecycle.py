"""A key's life on real processes (issue 10), through the CLI entry point: a dev cluster keeps
its keys (and their state) across ``dev down`` / ``dev up``; disable and scheduled deletion are
enforced by every node; a refreshed key signs again under the same public key. Every signature is
checked by an independent verifier (cryptography's Ed25519)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import coincurve
import pytest
from cluster_processes import CLUSTER_ENV, cli_json, cluster_processes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keyshard.cli.main import main
from keyshard.client.sdk import AsyncClient
from keyshard.dev.cluster import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture
def directory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in CLUSTER_ENV:
        monkeypatch.delenv(name, raising=False)
    path = Path(tempfile.mkdtemp(prefix="ksl-", dir="/tmp"))
    try:
        yield path
    finally:
        if (path / "cluster.json").exists():
            Cluster.attach(path).down()
        assert cluster_processes(path) == []
        shutil.rmtree(path, ignore_errors=True)


def _sign(d: list[str], name: str, message: Path, capsys: pytest.CaptureFixture[str]) -> bytes:
    assert main(["key", "sign", name, *d, "--file", str(message), "--format", "json"]) == 0
    return bytes.fromhex(str(cli_json(capsys)["signature"]))


def test_keys_and_their_state_survive_dev_down_and_up(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--dir", str(directory)]
    message = tmp_path / "message"
    message.write_bytes(b"wire 5 to 42")
    with Cluster(directory, 3) as cluster:
        cluster.up(timeout=120)
        assert main(["key", "create", "kept", *d, "--threshold", "1", "--format", "json"]) == 0
        public = bytes.fromhex(str(cli_json(capsys)["public_key"]))
        assert main(["key", "create", "paused", *d, "--threshold", "1", "--format", "json"]) == 0
        capsys.readouterr()
        assert main(["key", "disable", "paused", *d, "--format", "json"]) == 0
        assert cli_json(capsys)["state"] == "disabled"
        assert main(["key", "sign", "paused", *d, "--file", str(message)]) == 2
        assert "disabled" in capsys.readouterr().err
    assert cluster_processes(directory) == []

    with Cluster(directory, 3) as cluster:
        cluster.up(timeout=120)
        assert main(["key", "list", *d]) == 0
        assert capsys.readouterr().out.split() == ["kept", "paused"]
        assert main(["key", "info", "kept", *d, "--format", "json"]) == 0
        info = cli_json(capsys)
        assert bytes.fromhex(str(info["public_key"])) == public
        assert (info["state"], info["epoch"], info["committee"]) == (
            "enabled",
            0,
            ["node-1", "node-2", "node-3"],
        )
        signature = _sign(d, "kept", message, capsys)
        Ed25519PublicKey.from_public_bytes(public).verify(signature, b"wire 5 to 42")
        assert main(["key", "info", "paused", *d, "--format", "json"]) == 0
        assert cli_json(capsys)["state"] == "disabled"

        assert (
            main(["key", "schedule-deletion", "kept", *d, "--days", "7", "--format", "json"]) == 0
        )
        pending = cli_json(capsys)
        assert pending["state"] == "pending_deletion"
        assert isinstance(pending["delete_at"], int)
        assert main(["key", "sign", "kept", *d, "--file", str(message)]) == 2
        assert "pending deletion" in capsys.readouterr().err
        assert main(["key", "cancel-deletion", "kept", *d, "--format", "json"]) == 0
        assert cli_json(capsys)["state"] == "disabled"
        assert main(["key", "enable", "kept", *d, "--format", "json"]) == 0
        assert cli_json(capsys)["state"] == "enabled"

    # --fresh forgets them
    with Cluster(directory, 3) as cluster:
        cluster.up(timeout=120, fresh=True)
        assert main(["key", "list", *d]) == 0
        assert capsys.readouterr().out.split() == []


def test_create_sign_refresh_sign_again_on_real_processes(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's acceptance: 2-of-3, sign, refresh, sign again — the same public key, and each
    signature verified by an independent verifier (cryptography for Ed25519, libsecp256k1
    through coincurve for ECDSA)."""
    d = ["--dir", str(directory)]
    message = tmp_path / "message"
    message.write_bytes(b"wire 5 to 42")
    with Cluster(directory, 3) as cluster:
        cluster.up(timeout=120)
        assert main(["key", "create", "acct", *d, "--threshold", "1", "--format", "json"]) == 0
        created = cli_json(capsys)
        public = bytes.fromhex(str(created["public_key"]))
        verifier = Ed25519PublicKey.from_public_bytes(public)
        verifier.verify(_sign(d, "acct", message, capsys), b"wire 5 to 42")
        create_ecdsa = ["key", "create", "wallet", *d, "--suite", "ecdsa-secp256k1"]
        assert main([*create_ecdsa, "--threshold", "1", "--format", "json"]) == 0
        wallet = coincurve.PublicKey(bytes.fromhex(str(cli_json(capsys)["public_key"])))
        assert wallet.verify(_sign(d, "wallet", message, capsys), b"wire 5 to 42")

        # BIP-340 over the network: the Taproot output key, computed by libsecp256k1 here
        assert main(["key", "create", "btc", *d, "--suite", "bip340", "--threshold", "1"]) == 0
        capsys.readouterr()
        assert main(["key", "info", "btc", *d, "--field", "xonly_public_key"]) == 0
        internal = bytes.fromhex(capsys.readouterr().out.strip())
        output = coincurve.PublicKeyXOnly(internal)
        tag = hashlib.sha256(b"TapTweak").digest()
        output.tweak_add(hashlib.sha256(tag + tag + internal).digest())
        sign_btc = ["key", "sign", "btc", *d, "--file", str(message), "--taproot"]
        assert main([*sign_btc, "--format", "json"]) == 0
        signed = cli_json(capsys)
        assert signed["public_key"] == output.format().hex()
        assert output.verify(bytes.fromhex(str(signed["signature"])), b"wire 5 to 42")

        assert main(["key", "refresh", "acct", *d, "--format", "json"]) == 0
        refreshed = cli_json(capsys)
        assert refreshed["public_key"] == created["public_key"]
        assert (refreshed["epoch"], refreshed["state"]) == (1, "enabled")
        verifier.verify(_sign(d, "acct", message, capsys), b"wire 5 to 42")

        # a refresh needs every holder: with node-3 down it is refused and changes nothing
        cluster.stop_node(3)
        try:
            assert main(["key", "refresh", "acct", *d]) == 2
            assert "every holder" in capsys.readouterr().err
            verifier.verify(_sign(d, "acct", message, capsys), b"wire 5 to 42")
        finally:
            cluster.start_node(3)
            cluster.wait_ready(nodes=[3], timeout=60)

        assert main(["key", "refresh", "--all", *d, "--format", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert rows == [
            {"name": "acct", "epoch": 2, "error": None},
            {"name": "btc", "epoch": 1, "error": None},
            {"name": "wallet", "epoch": 1, "error": None},
        ]
        assert main([*sign_btc, "--format", "json"]) == 0  # the same output key after refresh
        assert output.verify(bytes.fromhex(str(cli_json(capsys)["signature"])), b"wire 5 to 42")
        verifier.verify(_sign(d, "acct", message, capsys), b"wire 5 to 42")
        assert wallet.verify(_sign(d, "wallet", message, capsys), b"wire 5 to 42")
        assert main(["key", "info", "acct", *d]) == 0
        shown = capsys.readouterr().out
        assert "epoch" in shown
        assert "enabled" in shown

        # node-3 loses its share (the sealed blob deleted on its parent's disk) and is repaired
        (cluster.node_layout(3).blob_dir / "key-acct").unlink()
        cluster.restart_node(3)
        cluster.wait_ready(nodes=[3], timeout=60)
        assert main(["key", "info", "acct", *d, "--format", "json"]) == 0
        assert cli_json(capsys)["missing"] == ["node-3"]
        assert main(["key", "repair", "acct", *d, "--node", "node-3", "--format", "json"]) == 0
        repaired = cli_json(capsys)
        assert (repaired["missing"], repaired["public_key"]) == ([], created["public_key"])

        async def with_node_3() -> bytes:
            async with AsyncClient.from_profile(directory / "profile.json") as client:
                return await client.coordinator.sign(
                    "acct", b"wire 5 to 42", signers=["node-1", "node-3"]
                )

        verifier.verify(asyncio.run(with_node_3()), b"wire 5 to 42")


def test_add_node_keeps_every_key_and_new_keys_use_the_new_node(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--dir", str(directory)]
    message = tmp_path / "message"
    message.write_bytes(b"wire 5 to 42")
    with Cluster(directory, 3) as cluster:
        cluster.up(timeout=120)
        assert main(["key", "create", "old", *d, "--threshold", "1", "--format", "json"]) == 0
        old = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(cli_json(capsys)["public_key"])))
    assert main(["dev", "add-node", *d, "--timeout", "120"]) == 0
    assert "node-4" in capsys.readouterr().out
    try:
        assert main(["key", "info", "old", *d, "--format", "json"]) == 0
        info = cli_json(capsys)
        assert (info["committee"], info["missing"]) == (["node-1", "node-2", "node-3"], [])
        old.verify(_sign(d, "old", message, capsys), b"wire 5 to 42")
        assert main(["key", "create", "new", *d, "--threshold", "1", "--format", "json"]) == 0
        new = cli_json(capsys)
        assert new["committee"] == ["node-1", "node-2", "node-3", "node-4"]
        verifier = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(new["public_key"])))
        verifier.verify(_sign(d, "new", message, capsys), b"wire 5 to 42")
    finally:
        Cluster.attach(directory).down()
