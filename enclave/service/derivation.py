"""Keyshard's BIP-32 convention for threshold ECDSA keys: which child key a path names.

A key's chain code is :func:`enclave.mpc.bip32.default_chain_code` of its group public key (public:
derived keys are linkable by whoever knows the root key), and a path is non-hardened
(``"m/0/7"``; ``""`` or ``"m"`` is the key itself). Signing under a path applies the path's total
additive tweak (``SigningRequest.tweak``); approvals for such a signature name the derived public
key, so an approval for one child key never signs for another.
"""

from __future__ import annotations

from enclave.mpc.bip32 import ExtendedPublicKey, default_chain_code, derive_path
from enclave.mpc.groups import SECP256K1, Point, Scalar

__all__ = ["MAX_PATH", "derive"]

MAX_PATH = 256


def derive(public_key: Point, path: str) -> tuple[Scalar, Point]:
    """The total tweak and the child public key of ``path`` (``InvalidParameters`` if bad)."""
    if path in ("", "m"):
        return SECP256K1.zero(), public_key
    root = ExtendedPublicKey(public_key, default_chain_code(public_key))
    child = derive_path(root, path)
    return child.tweak, child.public_key
