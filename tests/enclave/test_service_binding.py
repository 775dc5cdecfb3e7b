"""What a node's document binds, checked by a peer enclave (PeerVerifier) and by a client
(verify_binding), with real documents from the emulated NSM."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from service_fixtures import OTHER, RELEASED, boot, certificate_der, verifier_for

from attestation.emulated_ca import EmulatedCa
from enclave.config import ImageConfig
from enclave.service.binding import ChannelBinding, PeerVerifier
from enclave.service.errors import MalformedMessageError, PeerRefusedError
from keyshard.client.channel import NodeTrust, verify_binding
from keyshard.client.errors import BindingError


@pytest.fixture(scope="module")
def ca() -> EmulatedCa:
    return EmulatedCa.ephemeral()


def peers(ca: EmulatedCa, *, max_age: float = 300, skew: float = 0) -> PeerVerifier:
    return PeerVerifier(
        verifier_for(ca),
        RELEASED,
        dt.timedelta(seconds=max_age),
        lambda: dt.datetime.now(dt.UTC) + dt.timedelta(seconds=skew),
    )


def test_binding_codec_is_strict() -> None:
    binding = ChannelBinding("node-1", b"h" * 32, b"b" * 32)
    assert ChannelBinding.decode(binding.encode()) == binding
    with pytest.raises(MalformedMessageError, match="binds no channel"):
        ChannelBinding.decode(None)
    with pytest.raises(MalformedMessageError, match="32 bytes"):
        ChannelBinding("node-1", b"h" * 31, b"b" * 32)


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
    verifier = PeerVerifier(
        verifier_for(ca),
        RELEASED,
        dt.timedelta(minutes=5),
        lambda: dt.datetime.now(dt.UTC),
        (OTHER,),
    )
    binding = verifier.verify("node-2", older.document())
    assert binding.box_public_key == bytes(older.box_key.public_key)
    # Its own release still passes alongside.
    verifier.verify("node-3", boot(ca, "node-3").document())


def test_a_peer_mixing_own_and_listed_release_pcrs_is_refused(ca: EmulatedCa) -> None:
    mixed = boot(ca, "node-2", {**RELEASED, 1: OTHER[1]})
    verifier = PeerVerifier(
        verifier_for(ca),
        RELEASED,
        dt.timedelta(minutes=5),
        lambda: dt.datetime.now(dt.UTC),
        (OTHER,),
    )
    with pytest.raises(PeerRefusedError, match="no accepted release"):
        verifier.verify("node-2", mixed.document())


def test_a_peer_release_without_pcr2_is_refused_at_construction(ca: EmulatedCa) -> None:
    partial = {0: OTHER[0], 1: OTHER[1]}
    with pytest.raises(ValueError, match="PCR0, PCR1 and PCR2"):
        PeerVerifier(
            verifier_for(ca), RELEASED, dt.timedelta(minutes=5), dt.datetime.now, (partial,)
        )


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


def trust(ca: EmulatedCa) -> NodeTrust:
    return NodeTrust(verifier_for(ca), (RELEASED,))


def test_client_accepts_a_document_binding_this_sessions_key(ca: EmulatedCa) -> None:
    node = boot(ca, "node-1")
    nonce = os.urandom(32)
    binding = verify_binding(
        node.document(nonce),
        trust=trust(ca),
        node_id="node-1",
        nonce=nonce,
        peer_certificate_der=certificate_der(node),
    )
    assert binding == node.identity.binding()


def test_client_refuses_a_document_for_another_tls_key(ca: EmulatedCa) -> None:
    """The man in the middle: its own TLS certificate, a genuine fresh document from another boot."""
    genuine, mitm = boot(ca, "node-1"), boot(ca, "node-1")
    nonce = os.urandom(32)
    with pytest.raises(BindingError, match="binds another TLS key"):
        verify_binding(
            genuine.document(nonce),
            trust=trust(ca),
            node_id="node-1",
            nonce=nonce,
            peer_certificate_der=certificate_der(mitm),
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
        verify_binding(
            document,
            trust=trust(ca),
            node_id="node-1",
            nonce=nonce,
            peer_certificate_der=certificate_der(node),
        )
    assert caught.value.node_id == "node-1"


@pytest.mark.parametrize("image", [RELEASED, OTHER], ids=["N+1", "N"])
def test_client_trusting_two_releases_accepts_either(
    ca: EmulatedCa, image: dict[int, bytes]
) -> None:
    node = boot(ca, "node-1", image)
    nonce = os.urandom(32)
    verify_binding(
        node.document(nonce),
        trust=NodeTrust(verifier_for(ca), (RELEASED, OTHER)),
        node_id="node-1",
        nonce=nonce,
        peer_certificate_der=certificate_der(node),
    )


def test_client_trusting_two_releases_refuses_a_mix(ca: EmulatedCa) -> None:
    node = boot(ca, "node-1", {**RELEASED, 0: OTHER[0]})
    nonce = os.urandom(32)
    with pytest.raises(BindingError, match="no accepted release"):
        verify_binding(
            node.document(nonce),
            trust=NodeTrust(verifier_for(ca), (RELEASED, OTHER)),
            node_id="node-1",
            nonce=nonce,
            peer_certificate_der=certificate_der(node),
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
    verifier = PeerVerifier(
        verifier_for(ca),
        RELEASED,
        dt.timedelta(seconds=image.max_document_age_seconds),
        lambda: dt.datetime.now(dt.UTC),
        image.peer_releases,
    )
    document = boot(ca, "node-2", OTHER).document()
    if lists_older:
        assert verifier.verify("node-2", document).node_id == "node-2"
    else:
        with pytest.raises(PeerRefusedError, match="no accepted release") as refused:
            verifier.verify("node-2", document)
        assert refused.value.node_id == "node-2"
