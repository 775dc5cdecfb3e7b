"""End-to-end envelopes between enclaves, relayed by the untrusted client.

DKG round-two packages carry secret shares; they travel client -> node -> client -> node, so each
payload is sealed with libsodium's ``crypto_box`` (X25519 + XSalsa20-Poly1305, random 24-byte
nonce) from the sender's per-boot box key to the recipient's. ``crypto_box`` authenticates both
ends: only the holder of the sender's secret key can produce an envelope that opens with the
sender's public key. Every DKG payload (broadcasts too) uses envelopes, so the client and the
parents relay only ciphertext.

The plaintext is a canonical CBOR header plus body::

    {"v": 1, "key": key_name, "session": session_id, "round": int, "from": node_id, "to": node_id,
     "body": bytes}

An envelope never names its sender in clear: the recipient tries each expected peer's key, and the
sender IS the peer whose key opened it. The header is then checked against that: ``from`` must be
that peer (a sealed "from" that disagrees is refused), ``to`` this node, and key, session and round
the ones the recipient's session expects — so an envelope replayed from another round, session or
key, or addressed to another node, is refused; a second envelope from the same peer in one round is
refused by the session (:mod:`enclave.service.dkg`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey

from enclave.service.errors import EnvelopeError
from wire import cbor
from wire.errors import MalformedMessageError

__all__ = ["EnvelopeHeader", "Envelopes"]

_VERSION = 1
_KEYS = frozenset({"v", "key", "session", "round", "from", "to", "body"})


@dataclass(frozen=True, slots=True)
class EnvelopeHeader:
    key_name: str
    session_id: bytes
    round: int
    sender: str
    recipient: str


class Envelopes:
    """One node's envelope endpoint for one protocol run with a fixed set of peers."""

    def __init__(self, me: str, secret: PrivateKey, peers: Mapping[str, bytes]) -> None:
        self._me = me
        try:
            self._boxes = {node_id: Box(secret, PublicKey(key)) for node_id, key in peers.items()}
        except (CryptoError, ValueError, TypeError):
            raise EnvelopeError("a peer's box key is not an X25519 public key") from None

    def seal(self, header: EnvelopeHeader, body: bytes) -> bytes:
        if header.sender != self._me or header.recipient not in self._boxes:
            raise EnvelopeError("an envelope is sealed by this node to a known peer only")
        plaintext = cbor.dumps(
            {
                "v": _VERSION,
                "key": header.key_name,
                "session": header.session_id,
                "round": header.round,
                "from": header.sender,
                "to": header.recipient,
                "body": body,
            }
        )
        return bytes(self._boxes[header.recipient].encrypt(plaintext))

    def open(self, envelope: bytes, expected: EnvelopeHeader) -> tuple[str, bytes]:
        """Return ``(sender, body)``; ``expected.sender`` is ignored (the key decides)."""
        for node_id, box in self._boxes.items():
            try:
                plaintext = box.decrypt(envelope)
            except (CryptoError, ValueError, TypeError):
                continue
            return node_id, self._check(node_id, plaintext, expected)
        raise EnvelopeError("no participant's key opens this envelope")

    def _check(self, sender: str, plaintext: bytes, expected: EnvelopeHeader) -> bytes:
        try:
            value = cbor.loads_map(plaintext, what="envelope", fields=_KEYS, version=_VERSION)
        except MalformedMessageError:
            raise EnvelopeError(f"envelope from {sender} has a malformed header") from None
        if value["from"] != sender:
            raise EnvelopeError(f"envelope opened with {sender}'s key claims another sender")
        if value["to"] != self._me:
            raise EnvelopeError(f"envelope from {sender} is addressed to another node")
        if value["key"] != expected.key_name or value["session"] != expected.session_id:
            raise EnvelopeError(f"envelope from {sender} belongs to another key or session")
        if value["round"] != expected.round:
            raise EnvelopeError(f"envelope from {sender} is for round {value['round']!r}")
        body = value["body"]
        if type(body) is not bytes:
            raise EnvelopeError(f"envelope from {sender} has no body")
        return body
