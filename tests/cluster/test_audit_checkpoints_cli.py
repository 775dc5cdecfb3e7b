"""Tail truncation caught through checkpoints the PEERS witness, on real processes (issue 12
item 1): on a dev cluster, ``keyshard audit witness`` has each node's audit head witnessed by its
peers, ``keyshard audit checkpoints`` collects their signed records, and ``keyshard audit verify
--witnessed`` accepts the parents' stored logs — until one parent's stored log of its node is cut
at the tail: then it is refused, naming the node and the seq its peers witnessed, while the chain
alone (no checkpoints) still looks fine. Restored, it passes again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_processes import running_cluster

from keyshard.cli.main import main
from keyshard.client.errors import RemoteError
from keyshard.client.sdk import AsyncClient, Client
from keyshard.dev.cluster import Cluster
from wire.errors import ErrorCode
from wire.messages import KeyInfo, KeyInfoReply

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster("kcp-", 3) as running:
        yield running


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().out


def _stored_log(directory: Path, node_id: str) -> Path:
    """The newest segment of the log the parent of ``node_id`` stored."""
    for blobs in sorted((directory / "nodes").glob("*/blobs")):
        segments = sorted(blobs.glob("audit-log.*"))
        if segments and f'"node_id": "{node_id}"' in segments[0].read_text():
            return segments[-1]
    raise AssertionError(f"no stored log of {node_id}")


def test_a_log_cut_below_a_peer_witnessed_checkpoint_is_refused_naming_the_node(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client.from_profile(directory / "profile.json") as sdk:
        sdk.create_key("witnessed", threshold=1)  # its creation has the checkpoints witnessed
        sdk.sign("witnessed", b"after the creation: only 'audit witness' protects this one")
    code, out = _cli(capsys, "audit", "witness", "--dir", str(directory))
    assert code == 0, out
    assert "audit checkpoints witnessed: 6 (node, peer) records held" in out
    checkpoints = tmp_path / "checkpoints.jsonl"
    code, _ = _cli(
        capsys, "audit", "checkpoints", "--dir", str(directory), "--out", str(checkpoints)
    )
    assert code == 0
    entries = [json.loads(line) for line in checkpoints.read_text().splitlines()]
    assert sorted((e["witness"], e["node_id"]) for e in entries) == sorted(
        (w, n)
        for w in ("node-1", "node-2", "node-3")
        for n in ("node-1", "node-2", "node-3")
        if w != n
    )
    witnessed = {e["node_id"]: e["seq"] for e in entries}
    verify = ("audit", "verify", "--dir", str(directory), "--witnessed", str(checkpoints))
    code, out = _cli(capsys, *verify)
    assert code == 0, out
    assert out.count("log ok:") == 3
    assert out.count("reaches the checkpoints its peers witnessed") == 3

    # the parent of node-2 drops the newest record it stored: one valid chain, one record short
    segment = _stored_log(directory, "node-2")
    original = segment.read_text()
    lines = original.splitlines()
    assert json.loads(lines[-1])["seq"] == witnessed["node-2"]  # the peers saw the very last one
    try:
        if len(lines) > 1:
            segment.write_text("\n".join(lines[:-1]) + "\n")
        else:
            segment.unlink()
        code, out = _cli(capsys, "audit", "verify", "--dir", str(directory))
        assert code == 0, out  # the chain alone cannot tell
        code, out = _cli(capsys, *verify)
        assert code == 1, out
        assert out.count("log ok:") == 2
        seq = witnessed["node-2"]
        refused = [line for line in out.splitlines() if line.startswith("log refused:")]
        assert len(refused) == 1, out
        assert f": node-2: record {seq} (seq {seq}): the log ends at seq {seq - 1}" in refused[0]
        assert f"below seq {seq} that node-" in refused[0]
        assert "witnessed: its tail was cut" in refused[0]
    finally:
        segment.write_text(original)
    code, out = _cli(capsys, *verify)  # the untruncated log passes
    assert code == 0, out
    assert out.count("reaches the checkpoints its peers witnessed") == 3


def test_a_node_rolled_back_to_a_snapshot_of_the_same_epoch_is_caught_by_its_checkpoints(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """The parent keeps a copy of node-1's whole sealed state, lets it sign (no key changes: the
    store epoch its peers witnessed stays the same; its first request after the restart has it
    witnessed), then boots it from the copy. The epoch check
    cannot tell; the audit checkpoints its peers witnessed since can: node-1 serves no key."""
    profile = cluster.directory / "profile.json"
    with Client.from_profile(profile) as sdk:
        sdk.create_key("snapshot", threshold=1)  # witnessed: statements and checkpoints
    blobs = cluster.node_layout(1).blob_dir
    cluster.stop_node(1)  # a consistent copy: no sealed write in flight
    copy = {path.name: path.read_bytes() for path in blobs.iterdir() if path.is_file()}
    cluster.start_node(1)
    cluster.wait_ready(nodes=[1])

    async def sign_with_node_1() -> None:
        async with AsyncClient.from_profile(profile) as client:
            for number in range(3):
                message = b"signed after the copy %d" % number
                await client.coordinator.sign("snapshot", message, signers=["node-1", "node-2"])

    asyncio.run(sign_with_node_1())
    code, out = _cli(capsys, "audit", "witness", "--dir", str(cluster.directory))
    assert code == 0, out

    cluster.stop_node(1)
    for path in blobs.iterdir():
        path.unlink()
    for name, data in copy.items():
        (blobs / name).write_bytes(data)
    cluster.start_node(1)
    cluster.wait_ready(nodes=[1])

    async def ask_node_1() -> None:
        async with AsyncClient.from_profile(profile) as client:
            await client.coordinator._call("node-1", KeyInfo("snapshot"), KeyInfoReply)

    with pytest.raises(RemoteError) as refused:
        asyncio.run(ask_node_1())
    assert refused.value.error_code is ErrorCode.ROLLED_BACK
    assert "witnessed audit record" in refused.value.message
    assert "the sealed state was rolled back" in refused.value.message
