"""The sealed node state: strict layout, identity survives an encode/decode, repr is public only."""

from __future__ import annotations

import cbor2
import pytest

from enclave.errors import BlobFormatError
from enclave.node_state import NodeIdentity
from enclave.secretbytes import SecretBytes


def test_roundtrip_keeps_the_identity() -> None:
    identity = NodeIdentity.generate()
    restored = NodeIdentity.decode(identity.encode())
    assert restored.public_key == identity.public_key
    assert len(identity.public_key) == 32
    assert repr(identity) == f"NodeIdentity(public_key={identity.public_key.hex()})"
    assert identity.encode()[-32:].hex() not in repr(identity)


@pytest.mark.parametrize(
    "plaintext",
    [
        b"\xff",
        cbor2.dumps([1, 2]),
        cbor2.dumps({"v": 2, "seed": bytes(32)}),
        cbor2.dumps({"v": 1, "seed": "text"}),
        cbor2.dumps({"v": 1, "seed": bytes(31)}),
        cbor2.dumps({"v": 1, "seed": bytes(32), "extra": 1}),
    ],
)
def test_malformed_state_is_refused(plaintext: bytes) -> None:
    with pytest.raises(BlobFormatError):
        NodeIdentity.decode(plaintext)


def test_wipe_zeroes_the_seed() -> None:
    seed = SecretBytes(b"\x05" * 32)
    identity = NodeIdentity(seed)
    identity.wipe()
    assert seed.expose() == bytes(32)
