"""What a node's document binds, checked by a peer enclave (PeerVerifier) and by a client
(verify_binding), with real documents from the emulated NSM."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from service_fixtures import OTHER, RELEASED, boot, certificate_der, verifier_for

from attestation.emulated_ca import EmulatedCa
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
    assert "PcrMismatch" in caught.value.reason


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
    return NodeTrust(verifier_for(ca), RELEASED)


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
        "pcrs": "PcrMismatch",
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
