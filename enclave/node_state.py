"""The node state the enclave seals at the parent, and the identity it carries.

For now the state is the node identity: a 32-byte Ed25519 seed created on first boot. Its public key
is reported by ``status`` so that anyone can see a restarted node recovered the same state; the
seed itself only ever exists inside the enclave or sealed. The MPC layer stores its shares as further
named blobs of the same :class:`~enclave.sealing.SealedStore`.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from enclave.errors import BlobFormatError
from enclave.secretbytes import SecretBytes
from wire import cbor
from wire.errors import MalformedMessageError

__all__ = ["STATE_BLOB", "NodeIdentity"]

STATE_BLOB = "node-state"
_VERSION = 1
_SEED_SIZE = 32


class NodeIdentity:
    """The node's long-term identity key (secret seed, public key)."""

    __slots__ = ("_public_key", "_seed")

    def __init__(self, seed: SecretBytes) -> None:
        if len(seed) != _SEED_SIZE:
            raise BlobFormatError(STATE_BLOB, "identity seed must be 32 bytes")
        self._seed = seed
        key = Ed25519PrivateKey.from_private_bytes(seed.expose())
        self._public_key = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def generate(cls) -> NodeIdentity:
        return cls(SecretBytes(os.urandom(_SEED_SIZE)))

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature by the identity key (e.g. over a state statement)."""
        return Ed25519PrivateKey.from_private_bytes(self._seed.expose()).sign(message)

    def encode(self) -> bytes:
        """The plaintext to seal. Secret: only ever passed to the sealer."""
        return cbor.dumps({"v": _VERSION, "seed": self._seed.expose()})

    @classmethod
    def decode(cls, plaintext: bytes) -> NodeIdentity:
        # A secret plaintext: refused with a fixed message, never the codec's detail about it.
        try:
            value = cbor.loads_map(
                plaintext, what=STATE_BLOB, fields={"v", "seed"}, version=_VERSION
            )
        except MalformedMessageError:
            raise BlobFormatError(STATE_BLOB, "unknown node state layout") from None
        seed = value["seed"]
        if type(seed) is not bytes:
            raise BlobFormatError(STATE_BLOB, "seed must be bytes")
        return cls(SecretBytes(seed))

    def wipe(self) -> None:
        self._seed.wipe()

    def __repr__(self) -> str:
        return f"NodeIdentity(public_key={self.public_key.hex()})"
