"""What a node's document binds (:mod:`wire.binding`), checked by a peer enclave
(:class:`PeerVerifier`, with its cache of verified documents) and by a client
(:func:`verify_document`), with real documents from the emulated NSM."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from service_fixtures import OTHER, RELEASED, boot, peer_verifier, verifier_for

from attestation.document import SignedDocument
from attestation.emulated_ca import EmulatedCa
from attestation.verifier import AttestationVerifier, Instant, VerifiedDocument
from enclave.config import ImageConfig
from enclave.service import binding as service_binding
from enclave.service.binding import PeerVerifier
from enclave.service.errors import PeerRefusedError
from keyshard.client.channel import NodeTrust, verify_document
from keyshard.client.errors import BindingError
from wire.binding import BindingMismatchError, ChannelBinding, check_binding
from wire.errors import MalformedMessageError


def peers(ca: EmulatedCa, *, max_age: float = 300, skew: float = 0) -> PeerVerifier:
    return peer_verifier(
        ca,
        max_age=dt.timedelta(seconds=max_age),
        clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(seconds=skew),
    )


# -- the binding itself (wire) -------------------------------------------------------------------


def test_binding_codec_is_strict() -> None:
    binding = ChannelBinding("node-1", b"h" * 32, b"b" * 32, b"i" * 32)
    assert ChannelBinding.decode(binding.encode()) == binding
    with pytest.raises(MalformedMessageError, match="binds no channel"):
        ChannelBinding.decode(None)
    with pytest.raises(MalformedMessageError, match="32 bytes"):
        ChannelBinding("node-1", b"h" * 31, b"b" * 32, b"i" * 32)
    with pytest.raises(MalformedMessageError, match="trailing"):
        ChannelBinding.decode(binding.encode() + b"\x00")


def test_check_binding_names_the_node_and_the_sessions_tls_key(ca: EmulatedCa) -> None:
    node, other = boot(ca, "node-1"), boot(ca, "node-1")
    user_data = node.identity.binding().encode()
    der = node.identity.certificate_der
    assert check_binding(user_data, node_id="node-1", tls_certificate_der=der).node_id == "node-1"
    with pytest.raises(BindingMismatchError, match="names node 'node-1'"):
        check_binding(user_data, node_id="node-2")
    with pytest.raises(BindingMismatchError, match="another TLS key"):
        check_binding(
            user_data, node_id="node-1", tls_certificate_der=other.identity.certificate_der
        )
    with pytest.raises(BindingMismatchError, match="malformed"):
        check_binding(user_data, node_id="node-1", tls_certificate_der=b"not a certificate")


# -- a peer enclave's check --------------------------------------------------------------------


def test_peer_with_the_same_image_is_accepted(ca: EmulatedCa) -> None:
    node = boot(ca, "node-2")
    binding = peers(ca).verify("node-2", node.document())
    assert binding.box_public_key == bytes(node.box_key.public_key)


def test_peer_with_other_pcrs_is_refused(ca: EmulatedCa) -> None:
    node = boot(ca, "node-2", OTHER)
    with pytest.raises(PeerRefusedError) as caught:
        peers(ca).verify("node-2", node.document())
    assert caught.value.node_id == "node-2"
    assert "no accepted release" in caught.value.reason


def test_a_peer_of_a_release_the_image_lists_is_accepted(ca: EmulatedCa) -> None:
    """Release N+1 lists release N's PCRs in its image: an N node may join its DKG."""
    older = boot(ca, "node-2", OTHER)
    verifier = peer_verifier(ca, peer_releases=(OTHER,))
    binding = verifier.verify("node-2", older.document())
    assert binding.box_public_key == bytes(older.box_key.public_key)
    # Its own release still passes alongside.
    verifier.verify("node-3", boot(ca, "node-3").document())


def test_a_peer_mixing_own_and_listed_release_pcrs_is_refused(ca: EmulatedCa) -> None:
    mixed = boot(ca, "node-2", {**RELEASED, 1: OTHER[1]})
    with pytest.raises(PeerRefusedError, match="no accepted release"):
        peer_verifier(ca, peer_releases=(OTHER,)).verify("node-2", mixed.document())


def test_a_peer_release_without_pcr2_is_refused_at_construction(ca: EmulatedCa) -> None:
    partial = {0: OTHER[0], 1: OTHER[1]}
    with pytest.raises(ValueError, match="PCR0, PCR1 and PCR2"):
        peer_verifier(ca, peer_releases=(partial,))


def test_peer_from_another_root_is_refused(ca: EmulatedCa) -> None:
    foreign = boot(EmulatedCa.ephemeral(), "node-2")
    with pytest.raises(PeerRefusedError, match="UntrustedRoot"):
        peers(ca).verify("node-2", foreign.document())


def test_stale_peer_document_is_refused(ca: EmulatedCa) -> None:
    node = boot(ca, "node-2")
    with pytest.raises(PeerRefusedError, match="PolicyViolation"):
        peers(ca, max_age=60, skew=120).verify("node-2", node.document())


def test_peer_document_naming_another_node_is_refused(ca: EmulatedCa) -> None:
    node = boot(ca, "node-3")
    with pytest.raises(PeerRefusedError, match="names node 'node-3'"):
        peers(ca).verify("node-2", node.document())


# -- the cache of verified documents -----------------------------------------------------------


class CountingVerifier(AttestationVerifier):
    """The real verifier, counting the documents it is asked to verify."""

    def __init__(self, ca: EmulatedCa) -> None:
        super().__init__(verifier_for(ca).roots)
        self.calls = 0

    def verify(self, document: bytes | SignedDocument, *, at: Instant = "now") -> VerifiedDocument:
        self.calls += 1
        return super().verify(document, at=at)


class Clock:
    """A clock the test moves forward by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def test_a_verified_document_is_remembered_while_young_enough(ca: EmulatedCa) -> None:
    counting, clock = CountingVerifier(ca), Clock()
    verifier = peer_verifier(ca, verifier=counting, max_age=dt.timedelta(seconds=60), clock=clock)
    node = boot(ca, "node-2")
    document = node.document()
    first = verifier.verify("node-2", document)
    assert counting.calls == 1
    clock.now += dt.timedelta(seconds=30)
    assert verifier.verify("node-2", document) == first  # a hash and an age check, no chain
    assert counting.calls == 1
    # another node id: refused from the cache, exactly as a full check would refuse it
    with pytest.raises(PeerRefusedError, match="names node 'node-2'") as caught:
        verifier.verify("node-3", document)
    assert caught.value.node_id == "node-3"
    assert counting.calls == 1
    # a byte more is another document: verified in full (and refused)
    with pytest.raises(PeerRefusedError):
        verifier.verify("node-2", document + b"\x00")
    assert counting.calls == 2


def test_a_remembered_document_is_refused_once_older_than_max_age(ca: EmulatedCa) -> None:
    counting, clock = CountingVerifier(ca), Clock()
    verifier = peer_verifier(ca, verifier=counting, max_age=dt.timedelta(seconds=60), clock=clock)
    document = boot(ca, "node-2").document()
    verifier.verify("node-2", document)
    clock.now += dt.timedelta(seconds=120)
    for _ in range(2):  # too old: never served from the cache again
        with pytest.raises(PeerRefusedError, match="PolicyViolation"):
            verifier.verify("node-2", document)
    assert counting.calls == 3


def test_a_refused_document_is_not_remembered(ca: EmulatedCa) -> None:
    counting = CountingVerifier(ca)
    verifier = peer_verifier(ca, verifier=counting)
    document = boot(ca, "node-2", OTHER).document()
    for _ in range(2):
        with pytest.raises(PeerRefusedError, match="no accepted release"):
            verifier.verify("node-2", document)
    assert counting.calls == 2


def test_the_cache_is_bounded(ca: EmulatedCa, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_binding, "VERIFIED_CACHE_SIZE", 2)
    counting = CountingVerifier(ca)
    verifier = peer_verifier(ca, verifier=counting)
    node = boot(ca, "node-2")
    documents = [node.document(os.urandom(32)) for _ in range(3)]
    for document in documents:
        verifier.verify("node-2", document)
    verifier.verify("node-2", documents[2])  # still remembered
    assert counting.calls == 3
    verifier.verify("node-2", documents[0])  # the oldest was dropped
    assert counting.calls == 4


# -- a client's check ----------------------------------------------------------------------------


def trust(ca: EmulatedCa) -> NodeTrust:
    return NodeTrust(verifier_for(ca), (RELEASED,))


def test_client_accepts_a_document_binding_this_sessions_key(ca: EmulatedCa) -> None:
    node = boot(ca, "node-1")
    nonce = os.urandom(32)
    binding = verify_document(
        node.document(nonce),
        trust=trust(ca),
        node_id="node-1",
        nonce=nonce,
        peer_certificate_der=node.identity.certificate_der,
    )
    assert binding == node.identity.binding()


def test_client_refuses_a_document_for_another_tls_key(ca: EmulatedCa) -> None:
    """The man in the middle: its own TLS certificate, a genuine fresh document from another boot."""
    genuine, mitm = boot(ca, "node-1"), boot(ca, "node-1")
    nonce = os.urandom(32)
    with pytest.raises(BindingError, match="binds another TLS key"):
        verify_document(
            genuine.document(nonce),
            trust=trust(ca),
            node_id="node-1",
            nonce=nonce,
            peer_certificate_der=mitm.identity.certificate_der,
        )


@pytest.mark.parametrize("case", ["nonce", "pcrs", "root", "node"])
def test_client_refuses(ca: EmulatedCa, case: str) -> None:
    nonce = os.urandom(32)
    node = {
        "pcrs": lambda: boot(ca, "node-1", OTHER),
        "root": lambda: boot(EmulatedCa.ephemeral(), "node-1"),
        "node": lambda: boot(ca, "node-9"),
        "nonce": lambda: boot(ca, "node-1"),
    }[case]()
    document = node.document(os.urandom(32) if case == "nonce" else nonce)
    expected = {
        "nonce": "PolicyViolation",
        "pcrs": "no accepted release",
        "root": "UntrustedRoot",
        "node": "names node 'node-9'",
    }[case]
    with pytest.raises(BindingError, match=expected) as caught:
        verify_document(
            document,
            trust=trust(ca),
            node_id="node-1",
            nonce=nonce,
            peer_certificate_der=node.identity.certificate_der,
        )
    assert caught.value.node_id == "node-1"


@pytest.mark.parametrize("image", [RELEASED, OTHER], ids=["N+1", "N"])
def test_client_trusting_two_releases_accepts_either(
    ca: EmulatedCa, image: dict[int, bytes]
) -> None:
    node = boot(ca, "node-1", image)
    nonce = os.urandom(32)
    verify_document(
        node.document(nonce),
        trust=NodeTrust(verifier_for(ca), (RELEASED, OTHER)),
        node_id="node-1",
        nonce=nonce,
        peer_certificate_der=node.identity.certificate_der,
    )


def test_client_trusting_two_releases_refuses_a_mix(ca: EmulatedCa) -> None:
    node = boot(ca, "node-1", {**RELEASED, 0: OTHER[0]})
    nonce = os.urandom(32)
    with pytest.raises(BindingError, match="no accepted release"):
        verify_document(
            node.document(nonce),
            trust=NodeTrust(verifier_for(ca), (RELEASED, OTHER)),
            node_id="node-1",
            nonce=nonce,
            peer_certificate_der=node.identity.certificate_der,
        )


@pytest.mark.parametrize("lists_older", [True, False], ids=["image-lists-N", "image-does-not"])
def test_the_measured_image_decides_whether_an_older_release_is_a_peer(
    ca: EmulatedCa, lists_older: bool
) -> None:
    """What boot wires: PeerVerifier(..., image.peer_releases) from the measured image.json."""
    older = {i: OTHER[i] for i in (0, 1, 2)}
    image = ImageConfig(
        ca.root_certificate.public_bytes(Encoding.PEM),
        {"node-1": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
        peer_releases=(older,) if lists_older else (),
    )
    verifier = peer_verifier(
        ca,
        max_age=dt.timedelta(seconds=image.max_document_age_seconds),
        peer_releases=image.peer_releases,
    )
    document = boot(ca, "node-2", OTHER).document()
    if lists_older:
        assert verifier.verify("node-2", document).node_id == "node-2"
    else:
        with pytest.raises(PeerRefusedError, match="no accepted release") as refused:
            verifier.verify("node-2", document)
        assert refused.value.node_id == "node-2"
