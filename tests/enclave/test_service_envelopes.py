"""Enclave-to-enclave envelopes and the DKG driven over them, in memory (no client, no sockets).

The relay between the sessions below plays the untrusted client: it sees, and may tamper with,
replay or misaddress, every envelope.
"""

from __future__ import annotations

import cbor2
import pytest
from nacl.public import Box, PrivateKey

from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.keys import KeyShare
from enclave.mpc.suites import suite_of_group
from enclave.service.dkg import KeyCreation, KeyCreationPhase
from enclave.service.envelope import EnvelopeHeader, Envelopes
from enclave.service.errors import EnvelopeError, SessionError
from enclave.service.handlers import OsRandom
from wire import cbor

NODES = ("node-1", "node-2", "node-3")
SESSION = b"k" * 32


def box_keys() -> dict[str, PrivateKey]:
    return {n: PrivateKey.generate() for n in NODES}


def endpoints(keys: dict[str, PrivateKey]) -> dict[str, Envelopes]:
    return {
        me: Envelopes(me, keys[me], {p: bytes(keys[p].public_key) for p in NODES if p != me})
        for me in NODES
    }


def header(sender: str, recipient: str, round_: int = 2, key: str = "k") -> EnvelopeHeader:
    return EnvelopeHeader(key, SESSION, round_, sender, recipient)


def raw_envelope(
    by: PrivateKey, to_key: PrivateKey, *, sender: str, to: str, plaintext: bytes | None = None
) -> bytes:
    """An envelope sealed by hand, with whatever header (or plaintext) a misbehaving peer chooses."""
    if plaintext is None:
        plaintext = cbor.dumps(
            {
                "v": 1,
                "key": "k",
                "session": SESSION,
                "round": 2,
                "from": sender,
                "to": to,
                "body": b"x",
            }
        )
    return bytes(Box(by, to_key.public_key).encrypt(plaintext))


def test_an_envelope_opens_only_at_its_recipient_and_names_its_true_sender() -> None:
    ends = endpoints(box_keys())
    envelope = ends["node-1"].seal(header("node-1", "node-2"), b"share for 2")
    assert ends["node-2"].open(envelope, header("", "node-2")) == ("node-1", b"share for 2")
    with pytest.raises(EnvelopeError, match="no participant's key opens"):
        ends["node-3"].open(envelope, header("", "node-3"))


def test_tampered_envelope_is_refused() -> None:
    ends = endpoints(box_keys())
    envelope = bytearray(ends["node-1"].seal(header("node-1", "node-2"), b"x"))
    envelope[-1] ^= 1
    with pytest.raises(EnvelopeError, match="no participant's key opens"):
        ends["node-2"].open(bytes(envelope), header("", "node-2"))


@pytest.mark.parametrize(
    ("expected", "reason"),
    [
        (header("", "node-2", round_=3), "for round 2"),
        (header("", "node-2", key="other"), "another key or session"),
        (EnvelopeHeader("k", b"o" * 32, 2, "", "node-2"), "another key or session"),
    ],
)
def test_replay_into_another_round_key_or_session_is_refused(
    expected: EnvelopeHeader, reason: str
) -> None:
    ends = endpoints(box_keys())
    envelope = ends["node-1"].seal(header("node-1", "node-2"), b"x")
    with pytest.raises(EnvelopeError, match=reason):
        ends["node-2"].open(envelope, expected)


def test_misaddressed_envelope_is_refused() -> None:
    keys = box_keys()
    # node-1 seals to node-2's key but addresses node-3 inside: node-2 must not accept it.
    box_end = Envelopes("node-1", keys["node-1"], {"node-2": bytes(keys["node-2"].public_key)})
    forged = header("node-1", "node-3")
    with pytest.raises(EnvelopeError):
        box_end.seal(forged, b"x")  # the API refuses to seal to an unknown recipient
    envelope = raw_envelope(keys["node-1"], keys["node-2"], sender="node-1", to="node-3")
    with pytest.raises(EnvelopeError, match="addressed to another node"):
        endpoints(keys)["node-2"].open(envelope, header("", "node-2"))


def test_a_sender_claiming_another_identity_is_refused() -> None:
    keys = box_keys()
    envelope = raw_envelope(keys["node-1"], keys["node-2"], sender="node-3", to="node-2")
    with pytest.raises(EnvelopeError, match="opened with node-1's key claims another sender"):
        endpoints(keys)["node-2"].open(envelope, header("", "node-2"))


@pytest.mark.parametrize(
    ("plaintext", "reason"),
    [
        # the right header, encoded non-canonically (keys unsorted): one encoding per header
        (
            cbor2.dumps(
                {
                    "v": 1,
                    "to": "node-2",
                    "from": "node-1",
                    "key": "k",
                    "session": SESSION,
                    "round": 2,
                    "body": b"x",
                }
            ),
            "has a malformed header",
        ),
        (cbor.dumps({"v": 2, "key": "k"}), "has a malformed header"),
        (b"\xff", "has a malformed header"),
        (
            cbor.dumps(
                {
                    "v": 1,
                    "key": "k",
                    "session": SESSION,
                    "round": 2,
                    "from": "node-1",
                    "to": "node-2",
                    "body": "text",
                }
            ),
            "has no body",
        ),
    ],
    ids=["non-canonical", "other-version", "not-cbor", "text-body"],
)
def test_a_malformed_sealed_header_is_refused(plaintext: bytes, reason: str) -> None:
    keys = box_keys()
    envelope = raw_envelope(
        keys["node-1"], keys["node-2"], sender="node-1", to="node-2", plaintext=plaintext
    )
    with pytest.raises(EnvelopeError, match=f"from node-1 {reason}"):
        endpoints(keys)["node-2"].open(envelope, header("", "node-2"))


def creations(group: Group, keys: dict[str, PrivateKey]) -> dict[str, KeyCreation]:
    return {
        me: KeyCreation(
            key_name="k",
            suite=suite_of_group(group).name,
            group=group,
            threshold=1,
            session_id=SESSION,
            me=me,
            box_key=keys[me],
            peer_box_keys={p: bytes(keys[p].public_key) for p in NODES if p != me},
        )
        for me in NODES
    }


def relay(outboxes: dict[str, dict[str, bytes]]) -> dict[str, list[bytes]]:
    return {me: [outboxes[s][me] for s in NODES if s != me] for me in NODES}


@pytest.mark.parametrize("group", [ED25519, SECP256K1], ids=lambda g: g.name)
def test_dkg_over_envelopes_agrees_on_one_key(group: Group) -> None:
    sessions = creations(group, box_keys())
    outboxes = {me: s.start(OsRandom()) for me, s in sessions.items()}
    for _ in range(2):
        inboxes = relay(outboxes)
        outboxes = {me: s.step(inboxes[me]) for me, s in sessions.items()}  # type: ignore[misc]
    inboxes = relay(outboxes)
    shares = {me: s.step(inboxes[me]) for me, s in sessions.items()}
    assert all(isinstance(share, KeyShare) for share in shares.values())
    publics = {share.public.to_bytes() for share in shares.values()}  # type: ignore[union-attr]
    assert len(publics) == 1
    assert all(s.phase is KeyCreationPhase.SEALED for s in sessions.values())
    package = publics.pop()
    acks = relay({me: s.acknowledge(package) for me, s in sessions.items()})
    for me, session in sessions.items():
        session.commit(acks[me])
    assert all(s.phase is KeyCreationPhase.DONE for s in sessions.values())
    # positions in the sorted node list are the party identifiers
    assert [int(shares[n].identifier) for n in NODES] == [1, 2, 3]  # type: ignore[union-attr]


def test_duplicate_envelope_from_one_peer_fails_the_creation_for_good() -> None:
    sessions = creations(ED25519, box_keys())
    outboxes = {me: s.start(OsRandom()) for me, s in sessions.items()}
    inbox = [outboxes["node-2"]["node-1"], outboxes["node-2"]["node-1"]]
    with pytest.raises(EnvelopeError, match="a second round-1 envelope from node-2"):
        sessions["node-1"].step(inbox)
    assert sessions["node-1"].phase is KeyCreationPhase.FAILED
    with pytest.raises(SessionError, match="failed"):
        sessions["node-1"].step(relay(outboxes)["node-1"])


def test_missing_peer_and_replayed_round_are_refused() -> None:
    sessions = creations(ED25519, box_keys())
    outboxes = {me: s.start(OsRandom()) for me, s in sessions.items()}
    with pytest.raises(EnvelopeError, match="lacks envelopes from node-3"):
        sessions["node-1"].step([outboxes["node-2"]["node-1"]])
    # node-2 moves to round 2; a round-1 envelope replayed there is refused
    round2 = sessions["node-2"].step(relay(outboxes)["node-2"])
    assert isinstance(round2, dict)
    with pytest.raises(EnvelopeError, match="for round 1"):
        sessions["node-2"].step(relay(outboxes)["node-2"])


def test_repr_shows_no_secret() -> None:
    keys = box_keys()
    session = creations(ED25519, keys)["node-1"]
    assert bytes(keys["node-1"]).hex() not in repr(session)


def test_a_node_commits_only_on_every_peers_acknowledgement_of_the_same_key() -> None:
    """Issue 9 item 10: the second phase of creation. A missing acknowledgement, or one for
    another key, fails the commit for good; nothing is committed."""
    sessions = creations(ED25519, box_keys())
    outboxes = {me: s.start(OsRandom()) for me, s in sessions.items()}
    for _ in range(3):
        inboxes = relay(outboxes)
        outboxes = {me: s.step(inboxes[me]) for me, s in sessions.items()}  # type: ignore[misc]
    package = next(iter(outboxes.values())).public.to_bytes()  # type: ignore[attr-defined]
    acks = {me: s.acknowledge(package) for me, s in sessions.items()}
    acks["node-3"] = sessions["node-3"].acknowledge(b"another key")
    with pytest.raises(EnvelopeError, match="node-3 sealed another key"):
        sessions["node-1"].commit(relay(acks)["node-1"])
    assert sessions["node-1"].phase is KeyCreationPhase.FAILED
    with pytest.raises(EnvelopeError, match="lacks envelopes from node-3"):
        sessions["node-2"].commit([acks["node-1"]["node-2"]])
    with pytest.raises(SessionError):
        sessions["node-2"].commit(relay(acks)["node-2"])  # failed for good
