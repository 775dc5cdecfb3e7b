"""Mandatory participants in threshold decryption and the PRF's decrypt mode (issue 11), on
real in-process nodes: every node refuses a partial without each mandatory node's endorsement
of the exact request (missing, forged, made for another ciphertext, by a non-mandatory node),
changing nothing; the coordinator orchestrates the endorsements; keys without mandatory nodes
are served in one round as before."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Awaitable, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from inprocess import InProcessCluster

from enclave.mpc.decryption.combine import combine
from enclave.mpc.decryption.ecies import Ciphertext
from enclave.mpc.decryption.partial import PartialDecryption
from enclave.mpc.prf import PrfMode
from enclave.node_state import NodeIdentity
from enclave.service.endorsement import EndorsedOperation, EndorsedRequest
from enclave.service.errors import EndorsementError, MandatoryParticipantError
from keyshard.client.approvals import public_key_bytes, sign_approval
from keyshard.client.coordinator import Coordinator
from keyshard.client.errors import RemoteError, UnavailableError
from keyshard.client.keys import KeyDescription
from wire.approvals import ApprovalPolicy, Operation, decryption_digest
from wire.binding import ChannelBinding
from wire.errors import ErrorCode
from wire.messages import (
    Bip340Sign,
    DecryptPartial,
    DecryptPartials,
    Endorsed,
    Partial,
    PrfEvaluate,
    PrfPartials,
    Reply,
    Request,
)

ALICE = Ed25519PrivateKey.generate()
SESSION = b"s" * 32
CONTEXT = b"payroll 2026-12"


def _policy(*mandatory: str, decrypt_approvals: bool = True) -> ApprovalPolicy:
    operations = {Operation.DECRYPT} if decrypt_approvals else {Operation.SIGN}
    return ApprovalPolicy(
        (public_key_bytes(ALICE),), 1, frozenset(operations), mandatory_nodes=mandatory
    )


def _approvals(key: KeyDescription, ciphertext: bytes, context: bytes = CONTEXT) -> tuple[bytes]:
    return (
        sign_approval(
            ALICE,
            key_name=key.name,
            group_public_key=key.public_key,
            operation=Operation.DECRYPT,
            digest=decryption_digest(ciphertext, context),
            not_after=int(time.time()) + 600,
        ).encode(),
    )


def drive(cluster: InProcessCluster, work: Callable[[Coordinator], Awaitable[None]]) -> None:
    async def main() -> None:
        async with cluster.coordinator() as coordinator:
            await work(coordinator)

    asyncio.run(main())


def sent(cluster: InProcessCluster, kind: type[Request]) -> list[tuple[str, Request]]:
    return [(link.node_id, r) for link in cluster.links for r in link.requests if type(r) is kind]


async def _refused(c: Coordinator, node_id: str, request: Request, code: ErrorCode) -> str:
    with pytest.raises(RemoteError) as refused:
        await c._call(node_id, request, Reply)
    assert refused.value.error_code is code, refused.value
    return refused.value.message


@pytest.fixture
def cluster() -> InProcessCluster:
    return InProcessCluster()


def test_every_other_node_refuses_a_partial_without_a_valid_endorsement(
    cluster: InProcessCluster,
) -> None:
    """Missing, forged, for another ciphertext, by a non-mandatory node, with another node's
    document: each refused, and the approvals are not spent (they still open the decryption
    once the real endorsement comes)."""

    async def work(c: Coordinator) -> None:
        key = await c.create_key("held", threshold=1, policy=_policy("node-3"))
        ciphertext = await c.encrypt("held", b"salaries", CONTEXT)
        other = await c.encrypt("held", b"bonuses", CONTEXT)
        approvals = _approvals(key, ciphertext)

        def ask(endorsers: dict[str, bytes], endorsements: dict[str, bytes]) -> DecryptPartial:
            return DecryptPartial(
                "held", ciphertext, SESSION, CONTEXT, approvals, endorsers, endorsements
            )

        message = await _refused(c, "node-1", ask({}, {}), ErrorCode.MANDATORY_PARTICIPANT)
        assert "node-3" in message
        assert "decryption set" in message
        # node-3, the mandatory node, answers first: its partial and its endorsement
        mine = await c._call("node-3", ask({}, {}), Partial)
        assert len(mine.endorsement) == 64
        docs = {n: (await c.link(n)).document for n in ("node-1", "node-2", "node-3")}
        for_other = await c._call(
            "node-3",
            DecryptPartial("held", other, SESSION, CONTEXT, _approvals(key, other)),
            Partial,
        )
        forged = bytes([mine.endorsement[0] ^ 1]) + mine.endorsement[1:]
        statement = EndorsedRequest(
            "held",
            key.public_key,
            key.epoch,
            EndorsedOperation.DECRYPT,
            decryption_digest(ciphertext, CONTEXT),
        )
        by_node_1 = statement.endorse("node-3", cluster.services["node-1"].identity.node_identity)
        by_node_2 = statement.endorse("node-2", cluster.services["node-2"].identity.node_identity)
        refusals = [
            (ask({"node-3": docs["node-3"]}, {"node-3": forged}), "node-3"),
            (ask({"node-3": docs["node-3"]}, {"node-3": for_other.endorsement}), "node-3"),
            (ask({"node-3": docs["node-3"]}, {"node-3": by_node_1}), "node-3"),
            (ask({"node-2": docs["node-2"]}, {"node-2": by_node_2}), "node-2"),
        ]
        for request, named in refusals:
            message = await _refused(c, "node-1", request, ErrorCode.MANDATORY_PARTICIPANT)
            assert named in message
        # the right endorsement under another node's document: that document is refused
        swapped = ask({"node-3": docs["node-1"]}, {"node-3": mine.endorsement})
        message = await _refused(c, "node-1", swapped, ErrorCode.PEER_REFUSED)
        assert "node-3" in message
        # nothing was spent by the refusals: the same approvals, with node-3's endorsement
        theirs = await c._call(
            "node-1", ask({"node-3": docs["node-3"]}, {"node-3": mine.endorsement}), Partial
        )
        assert theirs.endorsement == b""  # node-1 is not mandatory: it endorses nothing
        parsed = Ciphertext.from_bytes(ciphertext, key.public.group)
        partials = {
            key.identifier(n): PartialDecryption.from_bytes(r.partial, key.public.group)
            for n, r in (("node-3", mine), ("node-1", theirs))
        }
        assert combine(key.public, parsed, partials, SESSION, CONTEXT) == b"salaries"
        # ... and once spent, they are spent (single use, as before)
        again = ask({"node-3": docs["node-3"]}, {"node-3": mine.endorsement})
        await _refused(c, "node-1", again, ErrorCode.APPROVAL_REUSED)

    drive(cluster, work)


def test_the_coordinator_asks_the_mandatory_node_first_and_names_it_when_it_is_down(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        key = await c.create_key("held", threshold=1, policy=_policy("node-3"))
        ciphertext = await c.encrypt("held", b"salaries", CONTEXT)
        approvals = _approvals(key, ciphertext)
        plain = await c.decrypt("held", ciphertext, CONTEXT, approvals=approvals)
        assert plain == b"salaries"
        asked = {n: set(r.endorsements) for n, r in sent(cluster, DecryptPartial)}  # type: ignore[attr-defined]
        # t+1 requests, as before: node-3 asked bare, then one other node with its endorsement
        assert len(asked) == 2
        assert asked.pop("node-3") == set()
        assert list(asked.values()) == [{"node-3"}]
        # a set without node-3, chosen explicitly: the nodes refuse it
        second = await c.encrypt("held", b"bonuses", CONTEXT)
        with pytest.raises(RemoteError) as refused:
            await c.decrypt(
                "held",
                second,
                CONTEXT,
                approvals=_approvals(key, second),
                nodes=["node-1", "node-2"],
            )
        assert refused.value.error_code is ErrorCode.MANDATORY_PARTICIPANT
        assert "node-3" in str(refused.value)
        # node-3 stopped: t+1 others are up, but nothing is asked and node-3 is named
        cluster.stopped.add("node-3")
        await c.forget("node-3")
        count = len(sent(cluster, DecryptPartial))
        with pytest.raises(UnavailableError) as down:
            await c.decrypt("held", second, CONTEXT, approvals=_approvals(key, second))
        assert "node-3" in str(down.value)
        assert "mandatory" in str(down.value)
        assert len(sent(cluster, DecryptPartial)) == count
        # signing needs node-3 too, and says so the same way
        with pytest.raises(UnavailableError):
            await c.sign("held", b"message")
        cluster.stopped.discard("node-3")
        approvals = _approvals(key, second)
        assert await c.decrypt("held", second, CONTEXT, approvals=approvals) == b"bonuses"

    drive(cluster, work)


def test_several_mandatory_nodes_endorse_before_any_partial_exists(
    cluster: InProcessCluster,
) -> None:
    """With node-2 and node-3 mandatory (t=1: either pair would decrypt), neither answers with
    a partial until the other has endorsed: each first endorses (approvals checked, not spent)."""

    async def work(c: Coordinator) -> None:
        key = await c.create_key("dual", threshold=1, policy=_policy("node-2", "node-3"))
        ciphertext = await c.encrypt("dual", b"minutes", CONTEXT)
        approvals = _approvals(key, ciphertext)
        alone = DecryptPartial("dual", ciphertext, SESSION, CONTEXT, approvals)
        endorsed = await c._call("node-2", alone, Endorsed)
        assert len(endorsed.endorsement) == 64
        message = await _refused(c, "node-1", alone, ErrorCode.MANDATORY_PARTICIPANT)
        assert "node-2, node-3" in message
        assert await c.decrypt("dual", ciphertext, CONTEXT, approvals=approvals) == b"minutes"
        by_node: dict[str, list[set[str]]] = {}
        for node_id, request in sent(cluster, DecryptPartial):
            assert isinstance(request, DecryptPartial)
            if request.session_id != SESSION:  # the coordinator's requests
                by_node.setdefault(node_id, []).append(set(request.endorsements))
        # round 1: each endorses; round 2: each with the other's endorsement (t+1 = both)
        assert by_node == {"node-2": [set(), {"node-3"}], "node-3": [set(), {"node-2"}]}

    drive(cluster, work)


def test_the_prf_decrypt_mode_is_gated_and_encrypt_mode_is_not(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("xks", threshold=1, policy=_policy("node-3", decrypt_approvals=False))
        [(seed, value)] = await c.prf("xks", PrfMode.ENCRYPT, [os.urandom(32)])
        assert await c.prf("xks", PrfMode.DECRYPT, [seed]) == [(seed, value)]
        decrypting = {
            n: set(r.endorsements)  # type: ignore[attr-defined]
            for n, r in sent(cluster, PrfEvaluate)
            if r.mode == "decrypt"  # type: ignore[attr-defined]
        }
        assert decrypting.pop("node-3") == set()
        assert list(decrypting.values()) == [{"node-3"}]
        bare = PrfEvaluate("xks", SESSION, "decrypt", (seed,))
        message = await _refused(c, "node-1", bare, ErrorCode.MANDATORY_PARTICIPANT)
        assert "node-3" in message
        mine = await c._call("node-3", bare, PrfPartials)
        assert len(mine.endorsement) == 64
        other_seed = PrfEvaluate(
            "xks",
            SESSION,
            "decrypt",
            (bytes(16),),
            {"node-3": (await c.link("node-3")).document},
            {"node-3": mine.endorsement},
        )
        await _refused(c, "node-1", other_seed, ErrorCode.MANDATORY_PARTICIPANT)
        cluster.stopped.add("node-3")
        await c.forget("node-3")
        with pytest.raises(UnavailableError) as down:
            await c.prf("xks", PrfMode.DECRYPT, [seed])
        assert "node-3" in str(down.value)
        assert len(await c.prf("xks", PrfMode.ENCRYPT, [os.urandom(32)])) == 1

    drive(cluster, work)


def test_a_key_without_mandatory_nodes_is_decrypted_in_one_round(cluster: InProcessCluster) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("plain", threshold=1)
        ciphertext = await c.encrypt("plain", b"memo")
        assert await c.decrypt("plain", ciphertext) == b"memo"
        # one round to t+1 nodes, as a batch (which carries no endorsements)
        assert len(sent(cluster, DecryptPartials)) == 2
        assert sent(cluster, DecryptPartial) == []
        endorsed = DecryptPartial(
            "plain", ciphertext, SESSION, b"", (), {"node-3": b"doc"}, {"node-3": bytes(64)}
        )
        await _refused(c, "node-1", endorsed, ErrorCode.MANDATORY_PARTICIPANT)

    drive(cluster, work)


def test_a_bip340_signer_list_without_the_mandatory_node_is_refused(
    cluster: InProcessCluster,
) -> None:
    async def work(c: Coordinator) -> None:
        await c.create_key("btc", suite="bip340", threshold=1, policy=_policy("node-3"))
        assert len(await c.sign_bip340("btc", b"tx")) == 64
        with pytest.raises(RemoteError) as refused:
            await c.sign_bip340("btc", b"tx", signers=["node-1", "node-2"])
        assert refused.value.error_code is ErrorCode.MANDATORY_PARTICIPANT
        assert "node-3" in str(refused.value)

    drive(cluster, work)
    assert "node-3" in {n for n, _ in sent(cluster, Bip340Sign)}


def test_an_endorsement_binds_every_field_of_the_request() -> None:
    """Another endorser, key, group key, epoch, operation or digest: the signature does not
    verify (checked through the same identity-signature check witness statements use)."""
    identity = NodeIdentity.generate()
    binding = ChannelBinding("node-3", bytes(32), bytes(32), identity.public_key)
    request = EndorsedRequest(
        "held", b"k" * 32, 4, EndorsedOperation.DECRYPT, decryption_digest(b"ct", b"ctx")
    )
    endorsement = request.endorse("node-3", identity)

    def missing(changed: EndorsedRequest) -> tuple[str, ...]:
        return changed.missing(
            me="node-1",
            mandatory=("node-3",),
            endorsers={"node-3": b"document"},
            endorsements={"node-3": endorsement},
            verify_peer=lambda node_id, document: binding,
        )

    assert missing(request) == ()
    for changed in (
        dataclasses.replace(request, key_name="held2"),
        dataclasses.replace(request, group_public_key=b"j" * 32),
        dataclasses.replace(request, epoch=5),
        dataclasses.replace(request, operation=EndorsedOperation.PRF_DECRYPT),
        dataclasses.replace(request, digest=decryption_digest(b"ct", b"other context")),
    ):
        with pytest.raises(EndorsementError) as refused:
            missing(changed)
        assert refused.value.node_id == "node-3"
    with pytest.raises(MandatoryParticipantError) as refused_set:
        request.require(("node-3",))
    assert refused_set.value.missing == ("node-3",)
