"""The audit trail and receipts on real processes (issue 12 items 1-2): on a dev cluster a
signature, a decryption and a refusal are records in each participating node's log, stored by its
parent; ``keyshard audit verify`` accepts the stored logs and the receipts the SDK collected, and
names the record when a stored record has a flipped byte, a middle record is deleted, two are
reordered or the tail is cut; a receipt from another cluster is refused; no record holds the
plaintext."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_processes import CLUSTER_ENV, cluster_processes

from keyshard.cli.main import main
from keyshard.client.errors import KeyNotFoundError
from keyshard.client.receipts import Receipt, dumps
from keyshard.client.sdk import Client
from keyshard.dev.cluster import Cluster
from wire.approvals import decryption_digest, message_digest

pytestmark = pytest.mark.slow

STORE_DEADLINE = 30.0
PLAINTEXT = b"the audit canary plaintext"
MESSAGE = b"wire 5 to 42"


def _cluster(nodes: int, prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        assert main(["dev", "up", "--nodes", str(nodes), "--dir", str(path)]) == 0
        yield path
    finally:
        if (path / "cluster.json").exists():
            Cluster.attach(path).down()
        assert cluster_processes(path) == []
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def directory() -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        for name in CLUSTER_ENV:
            patch.delenv(name, raising=False)
        yield from _cluster(3, "ksa-")


def _use(directory: Path, key: str) -> tuple[list[Receipt], bytes]:
    """Sign, decrypt and be refused once, through the SDK; the receipts of the two operations
    and the ciphertext."""
    with Client.from_profile(directory / "profile.json") as sdk:
        sdk.create_key(key, threshold=1)
        sdk.sign(key, MESSAGE)
        ciphertext = sdk.encrypt(key, PLAINTEXT, context=b"q3")
        assert sdk.decrypt(key, ciphertext, context=b"q3") == PLAINTEXT
        with pytest.raises(KeyNotFoundError):  # every node refused: unknown_key
            sdk.sign("no-such-key", MESSAGE)
        receipts = sdk.signature_receipts(MESSAGE) + sdk.decryption_receipts(
            ciphertext, context=b"q3"
        )
    return receipts, ciphertext


def _stored(directory: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    capsys.readouterr()
    assert main(["audit", "export", "--dir", str(directory)]) == 0
    by_node: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for line in capsys.readouterr().out.splitlines():
        entry = json.loads(line)
        by_node.setdefault(entry["node_id"], []).append(entry)
    return by_node


def _blob_dir(directory: Path, node_id: str) -> Path:
    for blobs in sorted((directory / "nodes").glob("*/blobs")):
        segments = list(blobs.glob("audit-log.*"))
        if segments and f'"node_id": "{node_id}"' in segments[0].read_text():
            return blobs
    raise AssertionError(f"no stored log of {node_id}")


def _verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", "verify", *args])
    return code, capsys.readouterr().out


def test_operations_and_refusals_are_stored_signed_and_verifiable(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receipts, ciphertext = _use(directory, "audited")
    signers = {r.node_id for r in receipts if r.record.record().op == "frost_sign"}
    # the SDK asks for partial decryptions as a batch (one item here): one record per item
    decrypters = {r.node_id for r in receipts if r.record.record().op == "decrypt_partials"}
    assert len(signers) == 2
    assert len(decrypters) == 2
    sign_digest = message_digest(MESSAGE).hex()
    decrypt_digest = decryption_digest(ciphertext, b"q3").hex()

    deadline = time.monotonic() + STORE_DEADLINE
    while True:  # the enclaves hand records over as they come; wait for them, bounded
        stored = _stored(directory, capsys)
        ops = {
            node: {(e["op"], e["outcome"], e["digest"]) for e in entries}
            for node, entries in stored.items()
        }
        wanted = {
            node: {("frost_sign", "ok", sign_digest)} if node in signers else set()
            for node in signers | decrypters
        }
        for node in decrypters:
            wanted[node].add(("decrypt_partials", "ok", decrypt_digest))
        complete = all(
            want <= ops.get(node, set())
            and any(op == "key_info" and outcome == "unknown_key" for op, outcome, _ in ops[node])
            for node, want in wanted.items()
        )
        if complete or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert complete, ops
    assert all(
        e["client"] and e["key"] in ("audited", "no-such-key")
        for entries in stored.values()
        for e in entries
        if e["op"] in ("frost_sign", "decrypt_partials", "key_info")
    )
    # no record holds the plaintext (records carry digests, never what was signed or opened)
    text = json.dumps(stored)
    assert PLAINTEXT.hex() not in text
    assert MESSAGE.hex() not in text

    receipts_file = tmp_path / "receipts.jsonl"
    receipts_file.write_text(dumps(receipts))
    # the CLI fetches the same receipts (same client certificate)
    message = tmp_path / "message"
    message.write_bytes(MESSAGE)
    capsys.readouterr()
    assert main(["audit", "receipts", "--message", str(message), "--dir", str(directory)]) == 0
    fetched = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(f["node_id"], f["seq"]) for f in fetched} == {
        (r.node_id, r.checkpoint[0]) for r in receipts if r.record.record().op == "frost_sign"
    }
    assert main(["audit", "tail", "-n", "1", "--dir", str(directory)]) == 0
    newest = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(e["node_id"] for e in newest) == sorted(stored)
    logs = [str(_blob_dir(directory, node)) for node in sorted(signers | decrypters)]
    code, out = _verify(capsys, str(receipts_file), *logs, "--dir", str(directory))
    assert code == 0, out
    assert out.count("receipt ok:") == len(receipts) == 4
    assert out.count("log ok:") == len(logs)
    code, out = _verify(capsys, str(receipts_file), "--dir", str(directory))  # every log
    assert code == 0, out
    assert out.count("log ok:") == 3

    # tampering with a stored log: each is refused, naming the record
    node = sorted(signers)[0]
    blobs = _blob_dir(directory, node)
    lines = [json.dumps(e) for e in stored[node]]
    assert len(lines) >= 4
    document = tmp_path / "doc.cbor"
    document.write_bytes((blobs / "audit-attestation.cbor").read_bytes())
    flipped = json.loads(lines[2])  # one bit of the stored client fingerprint
    client = flipped["client"]
    altered = f"{int(client[0], 16) ^ 1:x}{client[1:]}"
    flipped["body"] = flipped["body"].replace(client, altered)
    cases = {
        "flipped": ([*lines[:2], json.dumps(flipped), *lines[3:]], "record 2 (seq 2)"),
        "deleted": (lines[:1] + lines[2:], "record 1 (seq 2): expected seq 1"),
        "reordered": ([lines[0], lines[2], lines[1], *lines[3:]], "record 1 (seq 2)"),
    }
    for name, (tampered, named) in cases.items():
        log = tmp_path / f"{name}.jsonl"
        log.write_text("\n".join(tampered) + "\n")
        code, out = _verify(capsys, str(log), "--document", str(document), "--dir", str(directory))
        assert code == 1, (name, out)
        assert named in out, (name, out)

    # a log cut before the record a receipt witnessed: the receipt catches it
    witnessed = max(r.checkpoint[0] for r in receipts if r.node_id == node)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:witnessed]) + "\n")
    code, out = _verify(
        capsys,
        str(cut),
        str(receipts_file),
        "--document",
        str(document),
        "--dir",
        str(directory),
    )
    assert code == 1, out
    assert f"ends before seq {witnessed}" in out


def test_a_receipt_from_another_cluster_is_refused(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _cluster(2, "ksb-")
    other_dir = next(other)
    try:
        receipts, _ = _use(other_dir, "elsewhere")
        assert receipts
        foreign = tmp_path / "foreign.jsonl"
        foreign.write_text(dumps(receipts))
        profile = str(other_dir / "profile.json")
        code, out = _verify(capsys, str(foreign), "--profile", profile)
        assert code == 0, out  # genuine for its own cluster
    finally:
        next(other, None)  # down, and removed
    code, out = _verify(capsys, str(foreign), "--profile", str(directory / "profile.json"))
    assert code == 1
    assert out.count("receipt refused:") == len(receipts)
    assert "attestation document refused" in out


def test_a_restarted_node_continues_its_chain(
    directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After ``dev restart`` the node's next record follows its last one (the sealed head), and
    the whole stored log, documents of both boots, still verifies."""
    before = _stored(directory, capsys)["node-1"]
    assert main(["dev", "restart", "node-1", "--dir", str(directory)]) == 0
    with (
        Client.from_profile(directory / "profile.json") as sdk,
        pytest.raises(KeyNotFoundError),
    ):
        sdk.sign("still-no-such-key", MESSAGE)
    deadline = time.monotonic() + STORE_DEADLINE
    while True:
        after = _stored(directory, capsys)["node-1"]
        if any(e["key"] == "still-no-such-key" for e in after) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [e["seq"] for e in after] == list(range(len(after)))
    assert len(after) > len(before)
    assert after[: len(before)] == before
    code, out = _verify(capsys, "--dir", str(directory))
    assert code == 0, out
    assert out.count("log ok:") == 3
