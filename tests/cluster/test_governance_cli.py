"""Governance (issue 11) end to end on real processes: approver groups through the CLI, a
mandatory participant, and a policy update that only the current policy's approvers can apply,
checked on every node."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_processes import running_cluster
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keyshard.cli.main import main
from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.errors import RemoteError
from keyshard.client.sdk import AsyncClient
from keyshard.dev.cluster import Cluster
from wire.approvals import ApprovalPolicy, Operation, message_digest, policy_update_digest
from wire.errors import ErrorCode
from wire.messages import PolicyHistory, PolicyShow

pytestmark = pytest.mark.slow

NODES = ("node-1", "node-2", "node-3")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster("ksg-", 3) as running:
        yield running


def _cli(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsysbinary.readouterr()
    return code, captured.out.decode(), captured.err.decode()


def _approvers(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path, names: list[str]
) -> dict[str, str]:
    public = {}
    for name in names:
        code, out, _ = _cli(capsysbinary, "approver", "keygen", "--out", str(tmp_path / name))
        assert code == 0
        public[name] = out.strip()
    return public


def _approve(
    capsysbinary: pytest.CaptureFixture[bytes],
    d: list[str],
    tmp_path: Path,
    key: str,
    who: str,
    *extra: str,
) -> str:
    path = tmp_path / f"{who}-{len(list(tmp_path.iterdir()))}.json"
    code, out, err = _cli(
        capsysbinary, "key", "approve", key, *d, "--approver-key", str(tmp_path / who), *extra
    )
    assert code == 0, err
    path.write_text(out)
    return str(path)


def test_groups_refuse_three_treasurers_and_accept_two_plus_compliance(
    cluster: Cluster, capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    d = ["--dir", str(cluster.directory)]
    keys = _approvers(capsysbinary, tmp_path, ["t1", "t2", "t3", "c1"])
    policy = {
        "groups": {
            "treasury": {"approvers": [keys["t1"], keys["t2"], keys["t3"]], "quorum": 2},
            "compliance": {"approvers": [keys["c1"]], "quorum": 1},
        },
        "require": ["sign"],
    }
    policy_file = tmp_path / "vault.json"
    policy_file.write_text(json.dumps(policy))
    code, out, err = _cli(
        capsysbinary, "key", "create", "vault", *d, "--threshold", "1",
        "--policy-file", str(policy_file), "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    created = json.loads(out)
    assert sorted(created["policy"]["groups"]) == ["compliance", "treasury"]
    message = tmp_path / "msg"
    message.write_bytes(b"pay 100 to alice")
    signed = [
        _approve(capsysbinary, d, tmp_path, "vault", who, "--file", str(message))
        for who in ("t1", "t2", "t3", "c1")
    ]
    sign = ["key", "sign", "vault", *d, "--file", str(message)]
    code, _, err = _cli(capsysbinary, *sign, *(a for s in signed[:3] for a in ("--approval", s)))
    assert code == 2
    assert "quorum_not_met" in err
    assert "group 'compliance'" in err
    approvals = (signed[0], signed[1], signed[3])
    code, out, err = _cli(
        capsysbinary, *sign, *(a for s in approvals for a in ("--approval", s)), "--format", "json"
    )
    assert code == 0, err
    signature = bytes.fromhex(json.loads(out)["signature"])
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(created["public_key"])).verify(
        signature, message.read_bytes()
    )


def test_mandatory_participant_and_policy_updates_on_every_node(cluster: Cluster) -> None:
    profile = cluster.directory / "profile.json"

    async def run() -> None:
        alice = Ed25519PrivateKey.generate()
        bob = Ed25519PrivateKey.generate()
        first = ApprovalPolicy(
            (public_key_bytes(alice),),
            1,
            frozenset({Operation.DECRYPT}),
            mandatory_nodes=("node-3",),
        )
        async with AsyncClient.from_profile(profile) as client:
            c = client.coordinator
            key = await client.create_key("held", threshold=1, policy=first)
            # chosen signing sets always include node-3 ...
            await client.sign("held", b"with node-3")
            # ... and a set without it is refused by the nodes
            with pytest.raises(RemoteError) as refused:
                await c.sign("held", b"without node-3", signers=["node-1", "node-2"])
            assert refused.value.error_code is ErrorCode.MANDATORY_PARTICIPANT

            second = ApprovalPolicy((public_key_bytes(bob),), 1, frozenset({Operation.SIGN}))
            digest = policy_update_digest(0, second.encode())

            def sign_update(signer: Ed25519PrivateKey) -> bytes:
                return sign_approval(
                    signer,
                    key_name="held",
                    group_public_key=key.public_key,
                    operation=Operation.UPDATE_POLICY,
                    digest=digest,
                    not_after=int(time.time()) + 600,
                ).encode()

            # the new policy's approver cannot install it: every node refuses
            with pytest.raises(RemoteError) as by_newcomer:
                await client.update_policy("held", second, approvals=[sign_update(bob)])
            assert by_newcomer.value.error_code is ErrorCode.APPROVAL_UNLISTED
            for node in NODES:
                history = await c._call(node, PolicyShow("held"), PolicyHistory)
                assert history.current == first.encode(), node
            # the current policy's approver can: it takes effect on every node
            updated = await client.update_policy("held", second, approvals=[sign_update(alice)])
            assert updated.policy == second
            for node in NODES:
                history = await c._call(node, PolicyShow("held"), PolicyHistory)
                assert history.current == second.encode(), node
                assert history.previous == (first.encode(),), node
            # the new policy now governs signing
            with pytest.raises(RemoteError) as unapproved:
                await client.sign("held", b"needs bob now")
            assert unapproved.value.error_code is ErrorCode.QUORUM_NOT_MET
            sign_digest = message_digest(b"bob approved")
            bob_says = sign_approval(
                bob,
                key_name="held",
                group_public_key=key.public_key,
                operation=Operation.SIGN,
                digest=sign_digest,
                not_after=int(time.time()) + 600,
            ).encode()
            await client.sign("held", b"bob approved", approvals=[bob_says])

    asyncio.run(run())


def test_a_mandatory_participant_is_in_every_decryption_set(
    cluster: Cluster, capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    """Decryption gathers independent partials, so the mandatory node's presence is enforced by
    its endorsement: with node-3 up, ``key decrypt`` works unchanged and a set without node-3 is
    refused by the other nodes; with node-3 stopped (t+1 others up) it fails naming node-3."""
    d = ["--dir", str(cluster.directory)]
    keys = _approvers(capsysbinary, tmp_path, ["c2"])
    policy_file = tmp_path / "held.json"
    policy_file.write_text(
        json.dumps({"approvers": [keys["c2"]], "require": ["sign"], "mandatory_nodes": ["node-3"]})
    )
    code, _, err = _cli(
        capsysbinary, "key", "create", "sealed", *d, "--threshold", "1",
        "--policy-file", str(policy_file),
    )  # fmt: skip
    assert code == 0, err
    plain, sealed = tmp_path / "plain", tmp_path / "sealed.bin"
    plain.write_bytes(b"q3 salaries")
    code, _, err = _cli(
        capsysbinary, "key", "encrypt", "sealed", *d, "--file", str(plain),
        "--out", str(sealed), "--context", "q3",
    )  # fmt: skip
    assert code == 0, err
    decrypt = ["key", "decrypt", "sealed", *d, "--file", str(sealed), "--context", "q3"]
    code, out, err = _cli(capsysbinary, *decrypt)
    assert code == 0, err
    assert out.encode() == b"q3 salaries"

    async def without_node_3() -> None:
        async with AsyncClient.from_profile(cluster.directory / "profile.json") as client:
            await client.coordinator.decrypt(
                "sealed", sealed.read_bytes(), b"q3", nodes=["node-1", "node-2"]
            )

    with pytest.raises(RemoteError) as refused:
        asyncio.run(without_node_3())
    assert refused.value.error_code is ErrorCode.MANDATORY_PARTICIPANT
    assert "node-3" in refused.value.message

    cluster.stop_node(3)
    try:
        code, out, err = _cli(capsysbinary, *decrypt)
        assert code == 2
        assert out == ""
        assert "node-3" in err
        assert "mandatory" in err
    finally:
        cluster.start_node(3)
        cluster.wait_ready(nodes=[3], timeout=60)
    code, out, err = _cli(capsysbinary, *decrypt)
    assert code == 0, err
    assert out.encode() == b"q3 salaries"


def test_the_policy_update_ceremony_through_the_cli(
    cluster: Cluster, capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    """`key approve --op update-policy` (offline), `key policy update --file` and `key policy
    show`: the newcomer's approval is refused, the current approver's applies the update, and
    the history shows both policies."""
    d = ["--dir", str(cluster.directory)]
    keys = _approvers(capsysbinary, tmp_path, ["old", "new"])
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps({"approvers": [keys["old"]], "require": ["sign"]}))
    second.write_text(json.dumps({"approvers": [keys["new"]], "require": ["sign", "decrypt"]}))
    code, _, err = _cli(
        capsysbinary, "key", "create", "ledger", *d, "--threshold", "1",
        "--policy-file", str(first),
    )  # fmt: skip
    assert code == 0, err
    update = ["key", "policy", "update", "ledger", *d, "--file", str(second)]
    by_newcomer = _approve(
        capsysbinary, d, tmp_path, "ledger", "new", "--op", "update-policy", "--policy-file",
        str(second),
    )  # fmt: skip
    code, _, err = _cli(capsysbinary, *update, "--approval", by_newcomer)
    assert code == 2
    assert "approval_unlisted" in err
    by_owner = _approve(
        capsysbinary, d, tmp_path, "ledger", "old", "--op", "update-policy", "--policy-file",
        str(second),
    )  # fmt: skip
    code, _, err = _cli(capsysbinary, *update, "--approval", by_owner)
    assert code == 0, err
    code, out, err = _cli(capsysbinary, "key", "policy", "show", "ledger", *d, "--format", "json")
    assert code == 0, err
    shown = json.loads(out)
    assert keys["new"] in json.dumps(shown["current"])
    assert keys["old"] not in json.dumps(shown["current"])
    [replaced] = shown["history"]  # the first policy, and when it was replaced
    assert keys["old"] in json.dumps(replaced["policy"])
    assert replaced["replaced_at"] > 0
