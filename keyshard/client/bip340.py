"""BIP-340 tweaks as the client names them: Taproot (BIP-341) and their wire form.

A ``bip340`` key signs for its x-only public key, or for a key tweaked from it. The tweak most
callers want is BIP-341's key-path output key: ``t = tagged_hash("TapTweak", xonly(P) || root)``
applied x-only (``root`` empty for a key with no script tree). :func:`taproot_tweak` computes it;
:func:`encode_tweak` gives the 33 bytes a ``bip340_sign`` request carries (mode byte, tweak).
"""

from __future__ import annotations

import hashlib

from enclave.mpc.errors import MpcError
from enclave.mpc.frost.bip340 import Tweak, TweakMode
from keyshard.client.errors import InvalidInputError

__all__ = ["PLAIN", "XONLY", "core_tweaks", "encode_tweak", "tagged_hash", "taproot_tweak"]

PLAIN = 0  # BIP-32 non-hardened step: Q' = Q + t*G
XONLY = 1  # BIP-341 Taproot: Q' = with_even_y(Q) + t*G


def tagged_hash(tag: str, data: bytes) -> bytes:
    """BIP-340's tagged hash ``SHA256(SHA256(tag) || SHA256(tag) || data)``."""
    t = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(t + t + data).digest()


def encode_tweak(mode: int, value: bytes) -> bytes:
    if mode not in (PLAIN, XONLY) or len(value) != 32:
        raise InvalidInputError("a tweak is a mode (plain or x-only) and 32 bytes")
    return bytes([mode]) + value


def taproot_tweak(internal_key: bytes, merkle_root: bytes = b"") -> bytes:
    """The encoded BIP-341 tweak of the x-only ``internal_key`` (32 bytes) with the script tree
    of ``merkle_root`` (32 bytes, or empty for a key-path-only output)."""
    if len(internal_key) != 32 or len(merkle_root) not in (0, 32):
        raise InvalidInputError("Taproot: a 32-byte x-only key and an empty or 32-byte root")
    return encode_tweak(XONLY, tagged_hash("TapTweak", internal_key + merkle_root))


def core_tweaks(encoded: tuple[bytes, ...]) -> tuple[Tweak, ...]:
    """The MPC core's tweaks for encoded ones (what the client aggregates and verifies with)."""
    modes = {PLAIN: TweakMode.PLAIN, XONLY: TweakMode.XONLY}
    out = []
    for item in encoded:
        if len(item) != 33 or item[0] not in modes:
            raise InvalidInputError("a tweak is a mode byte (0 plain, 1 x-only) and 32 bytes")
        try:
            out.append(Tweak(item[1:], modes[item[0]]))
        except MpcError as error:
            raise InvalidInputError(str(error)) from None
    return tuple(out)
