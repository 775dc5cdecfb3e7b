"""Offline partial signatures for threshold ECDSA (issue 11) on real processes, through the CLI
entry point: a 2-of-3 ``ecdsa-secp256k1`` key (t = 1, so 2t+1 = 3 presign and sign) under a
2-approver policy, with node-3 offline.

First node-3 holds presignatures made while it was reachable (``offline presign``, then
``dev offline node-3``): package -> file -> partial -> combined signature, which verifies under
the key's public key with an independent verifier (cryptography); the same package a second
time is refused (nonce_unknown) and writes nothing. Then the cluster comes up again with node-3
offline from boot (``dev up --offline node-3``): what it held is gone, it is witnessed by file,
presigns by files (five carryings) and signs again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_processes import cli_json, running_cluster
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from keyshard.cli.main import main
from keyshard.dev.cluster import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster("kse-", 3) as running:
        yield running


def _verify(public_key: str, der: str, message: bytes) -> None:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), bytes.fromhex(public_key))
    key.verify(bytes.fromhex(der), message, ec.ECDSA(hashes.SHA256()))


class Ceremony:
    """The approvers of the key and the files of one signature, in ``tmp_path``."""

    def __init__(
        self, key: str, d: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.key, self.d, self.tmp, self.capsys = key, d, tmp_path, capsys

    def approvers(self) -> list[str]:
        flags = []
        for who in ("alice", "bob"):
            assert main(["approver", "keygen", "--out", str(self.tmp / who)]) == 0
            flags += ["--approver", self.capsys.readouterr().out.strip()]
        return flags

    def approvals(self, message: Path) -> list[str]:
        flags = []
        for who in ("alice", "bob"):
            approve = ["key", "approve", self.key, *self.d, "--approver-key", str(self.tmp / who)]
            assert main([*approve, "--file", str(message), "--ttl", "600"]) == 0
            path = self.tmp / f"{message.name}.{who}.json"
            path.write_text(self.capsys.readouterr().out)
            flags += ["--approval", str(path)]
        return flags

    def sign(
        self,
        presignatures: Path,
        index: int,
        text: bytes,
        gap: Path,
        air: list[str],
        *,
        approved: bool = True,
    ) -> tuple[Path, dict[str, object]]:
        """prepare (online) -> sign (air gap) -> combine (online); the package and the output."""
        message = self.tmp / f"{self.key}-m{index}"
        message.write_bytes(text)
        package = gap / "inbox" / f"{self.key}-m{index}.package"
        prepare = ["offline", "prepare", self.key, *self.d, "--presignatures", str(presignatures)]
        prepare += ["--index", str(index), "--file", str(message), "--out", str(package)]
        assert main([*prepare, *(self.approvals(message) if approved else [])]) == 0
        self.capsys.readouterr()
        boxes = ["--inbox", str(gap / "inbox"), "--outbox", str(gap / "outbox")]
        assert main(["offline", "sign", *air, "--node", "node-3", *boxes, "--format", "json"]) == 0
        rows = json.loads(self.capsys.readouterr().out)
        assert [r["error"] for r in rows] == [None]
        partial = gap / "outbox" / f"{self.key}-m{index}.partial"
        combine = ["offline", "combine", *self.d, "--package", str(package)]
        assert main([*combine, "--partial", str(partial), "--format", "json"]) == 0
        return package, cli_json(self.capsys)


def test_an_offline_ecdsa_holder_signs_through_files_and_refuses_a_replay(
    cluster: Cluster, directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--dir", str(directory)]
    ceremony = Ceremony("vault", d, tmp_path, capsys)
    create = ["key", "create", "vault", *d, "--suite", "ecdsa-secp256k1", "--threshold", "1"]
    policy = [*ceremony.approvers(), "--quorum", "2", "--require", "sign"]
    assert main([*create, *policy, "--format", "json"]) == 0
    public = str(cli_json(capsys)["public_key"])

    # while node-3 is reachable: presignatures made with it, then it goes offline
    presignatures = tmp_path / "vault.presignatures"
    presign = ["offline", "presign", "vault", *d, "--node", "node-3", "--count", "4"]
    assert main([*presign, "--out", str(presignatures), "--format", "json"]) == 0
    assert cli_json(capsys)["count"] == 4
    assert main(["dev", "offline", "node-3", *d]) == 0
    gap = Path(capsys.readouterr().out.strip())
    air = ["--profile", str(gap / "profile.json")]
    try:
        text = b"move 3 BTC to cold storage"
        package, signed = ceremony.sign(presignatures, 0, text, gap, air)
        assert signed["public_key"] == public
        _verify(public, str(signed["signature"]), text)
        assert len(bytes.fromhex(str(signed["compact"]))) == 64

        # the same package carried in again (under another name): refused, nothing written
        shutil.copy(package, gap / "inbox" / "replay.package")
        boxes = ["--inbox", str(gap / "inbox"), "--outbox", str(gap / "outbox")]
        assert main(["offline", "sign", *air, "--node", "node-3", *boxes]) == 2
        assert "nonce_unknown" in capsys.readouterr().out
        assert not (gap / "outbox" / "replay.partial").exists()
        (gap / "inbox" / "replay.package").unlink()

        # without the approvals node-3 refuses (the online holders refuse first)
        message = tmp_path / "unapproved"
        message.write_bytes(b"pay mallory")
        prepare = ["offline", "prepare", "vault", *d, "--presignatures", str(presignatures)]
        out = ["--out", str(gap / "inbox" / "x.package")]
        assert main([*prepare, "--index", "1", "--file", str(message), *out]) == 2
        assert "quorum_not_met" in capsys.readouterr().err
    finally:
        assert main(["dev", "online", "node-3", *d]) == 0


def test_a_node_offline_from_boot_presigns_by_files_and_signs(
    cluster: Cluster, directory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dev up --offline node-3`: the keys survive; node-3 just booted and is reachable only
    from its own side, so it is witnessed and presigns by files."""
    d = ["--dir", str(directory)]
    ceremony = Ceremony("vault2", d, tmp_path, capsys)
    create = ["key", "create", "vault2", *d, "--suite", "ecdsa-secp256k1", "--threshold", "1"]
    assert main([*create, "--format", "json"]) == 0
    public = str(cli_json(capsys)["public_key"])
    assert main(["dev", "down", *d]) == 0
    assert main(["dev", "up", *d, "--offline", "node-9"]) == 1  # not a node of the cluster
    every = [flag for n in (1, 2, 3) for flag in ("--offline", f"node-{n}")]
    assert main(["dev", "up", *d, *every]) == 1  # someone must stay online
    capsys.readouterr()
    assert main(["dev", "up", *d, "--offline", "node-3"]) == 0
    gap = directory / "offline" / "node-3"
    assert f"offline node-3: {gap}" in capsys.readouterr().out
    air = ["--profile", str(gap / "profile.json")]
    try:
        assert main(["key", "info", "vault2", *d, "--format", "json"]) == 0
        assert "node-3" not in cli_json(capsys)["holders"]  # type: ignore[operator]
        request, reports = tmp_path / "request", tmp_path / "reports"
        witness = ["offline", "witness-request", *air, "--node", "node-3"]
        assert main([*witness, "--out", str(request)]) == 0
        collect = ["offline", "witness-reports", *d, "--request", str(request)]
        assert main([*collect, "--out", str(reports)]) == 0
        check = ["offline", "witness-check", *air, "--node", "node-3", "--reports", str(reports)]
        assert main(check) == 0

        runs = [tmp_path / f"run-{k}.presign" for k in range(1, 6)]
        opening = ["offline", "presign-open", "vault2", *d, "--node", "node-3", "--count", "2"]
        assert main([*opening, "--out", str(runs[0])]) == 0
        capsys.readouterr()
        presignatures = tmp_path / "vault2.presignatures"
        for k, (here, there) in enumerate(zip(runs, [*runs[1:], presignatures], strict=True)):
            side = [*air, "--node", "node-3"] if k % 2 == 0 else d
            step = ["offline", "presign-step", *side, "--file", str(here), "--out", str(there)]
            assert main([*step, "--format", "json"]) == 0
            assert cli_json(capsys)["stage"] == k + 2
        # a stage answered on the wrong side is refused locally
        wrong = ["offline", "presign-step", *d, "--file", str(runs[0])]
        assert main([*wrong, "--out", str(tmp_path / "x")]) == 1
        capsys.readouterr()

        text = b"signed by a node that never came online"
        for index in (0, 1):
            _, signed = ceremony.sign(presignatures, index, text, gap, air, approved=False)
            _verify(public, str(signed["signature"]), text)
    finally:
        assert main(["dev", "online", "node-3", *d]) == 0
