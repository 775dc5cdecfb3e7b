"""Reshare on real processes (issue 10's acceptance), through the CLI entry point: a 2-of-3 key
signs; the dev cluster grows by two nodes (``dev add-node`` twice); ``key reshare`` moves the key
to node-1, node-2, node-4, node-5 with threshold 2 (an ECDSA key to all five, n >= 2t+1); the
joining nodes then sign, named explicitly among the signers, under the same public key. Every
signature is checked by an independent verifier (cryptography's Ed25519, libsecp256k1 through
coincurve)."""

from __future__ import annotations

import asyncio
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

MESSAGE = b"wire 5 to 42"


@pytest.fixture
def directory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in CLUSTER_ENV:
        monkeypatch.delenv(name, raising=False)
    path = Path(tempfile.mkdtemp(prefix="ksr-", dir="/tmp"))
    try:
        yield path
    finally:
        if (path / "cluster.json").exists():
            Cluster.attach(path).down()
        assert cluster_processes(path) == []
        shutil.rmtree(path, ignore_errors=True)


def _signed(directory: Path, signers: list[str]) -> tuple[bytes, bytes]:
    """An Ed25519 signature of ``acct`` by exactly ``signers`` and a DER ECDSA signature of
    ``wallet`` presigned by exactly the five nodes (both through the SDK, which lets a caller
    name the signing set)."""

    async def work() -> tuple[bytes, bytes]:
        async with AsyncClient.from_profile(directory / "profile.json") as client:
            c = client.coordinator
            ed = await c.sign("acct", MESSAGE, signers=signers)
            nodes = ["node-1", "node-2", "node-3", "node-4", "node-5"]
            [presignature] = await c.presign("wallet", signers=nodes)
            ecdsa = await c.sign_ecdsa("wallet", MESSAGE, presignature=presignature)
            return ed, ecdsa.to_der()

    return asyncio.run(work())


def test_create_sign_add_two_nodes_reshare_and_the_new_nodes_sign(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--dir", str(directory)]
    message = tmp_path / "message"
    message.write_bytes(MESSAGE)
    with Cluster(directory, 3) as cluster:
        cluster.up(timeout=120)
        assert main(["key", "create", "acct", *d, "--threshold", "1", "--format", "json"]) == 0
        created = cli_json(capsys)
        verifier = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(created["public_key"])))
        assert main(["key", "sign", "acct", *d, "--file", str(message), "--format", "json"]) == 0
        verifier.verify(bytes.fromhex(str(cli_json(capsys)["signature"])), MESSAGE)
        create_ecdsa = ["key", "create", "wallet", *d, "--suite", "ecdsa-secp256k1"]
        assert main([*create_ecdsa, "--threshold", "1", "--format", "json"]) == 0
        wallet_public = bytes.fromhex(str(cli_json(capsys)["public_key"]))
        wallet = coincurve.PublicKey(wallet_public)
    for _ in range(2):
        assert main(["dev", "add-node", *d, "--timeout", "120"]) == 0
        capsys.readouterr()
    try:
        to = ["--to", "node-1,node-2,node-4,node-5", "--threshold", "2", "--format", "json"]
        assert main(["key", "reshare", "acct", *d, *to]) == 0
        reshared = cli_json(capsys)
        assert reshared["public_key"] == created["public_key"]
        assert (reshared["committee"], reshared["threshold"], reshared["epoch"]) == (
            ["node-1", "node-2", "node-4", "node-5"],
            2,
            1,
        )
        # ECDSA: 4 nodes cannot serve t=2 (n >= 2t+1); all five can
        assert main(["key", "reshare", "wallet", *d, *to]) != 0
        assert "needs n >= 5" in capsys.readouterr().err
        every = ["--to", "node-1,node-2,node-3,node-4,node-5", "--threshold", "2"]
        assert main(["key", "reshare", "wallet", *d, *every, "--format", "json"]) == 0
        assert bytes.fromhex(str(cli_json(capsys)["public_key"])) == wallet_public

        for signers in (["node-1", "node-4", "node-5"], ["node-2", "node-4", "node-5"]):
            ed, ecdsa = _signed(directory, signers)
            verifier.verify(ed, MESSAGE)
            assert wallet.verify(ecdsa, MESSAGE)
        # node-3 left acct's committee: its share is gone, the key info no longer names it
        assert main(["key", "info", "acct", *d, "--format", "json"]) == 0
        info = cli_json(capsys)
        assert (info["missing"], info["epoch"]) == ([], 1)
        assert "node-3" not in info["committee"]  # type: ignore[operator]
    finally:
        Cluster.attach(directory).down()
