"""BIP-32 non-hardened (public) child key derivation for threshold secp256k1 keys.

One DKG yields a group key ``X = x·G`` whose secret ``x`` no node holds. BIP-32's *public*
derivation ``CKDpub`` needs only ``X`` and a chain code ``c``:

    I = HMAC-SHA512(key=c, data=ser_P(X) || ser_32(i)),  I_L, I_R = I[:32], I[32:]
    X_i = I_L·G + X,  c_i = I_R                        (refused if I_L >= q or X_i = O)

so the child's secret is ``x + I_L``: an **additive tweak** that is public. Along a path the
tweaks add up: ``x_child = x + sum I_L``. Hardened indices (``i >= 2^31``) would need ``x`` inside
the HMAC and are refused — no party may ever hold ``x``.

Why every party may add the same tweak to its share: the shares are ``x_j = f(j)`` for a
degree-``t`` polynomial ``f`` with ``f(0) = x``. Then ``f'(X) = f(X) + tweak`` is also degree ``t``,
has ``f'(0) = x + tweak`` and ``f'(j) = x_j + tweak``; equivalently, the Lagrange coefficients at 0
of any signer set sum to 1, so ``sum lambda_j (x_j + tweak) = x + tweak``. The verification shares
move the same way: ``X_j + tweak·G``. Threshold ECDSA applies the tweak at signing time instead
(``SigningRequest.tweak``), since ``c·(x + tweak)`` is what its shares need.

The chain code of a threshold key is public key metadata chosen when the key is created (any 32
bytes all parties agree on, e.g. from the DKG transcript); :func:`default_chain_code` offers a
deterministic choice. Derivation is public computation: nothing here touches a secret except
:func:`tweak_key_share`, which shifts one share by a public value.

Reference: BIP-32 "Hierarchical Deterministic Wallets", sections "Public parent key -> public
child key" and "Serialization format" (``ser_P`` = 33-byte compressed point).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from enclave.mpc.errors import InvalidParameters
from enclave.mpc.groups import SECP256K1, Point, Scalar
from enclave.mpc.keys import KeyShare, PublicKeyPackage

__all__ = [
    "CHAIN_CODE_LENGTH",
    "HARDENED",
    "ChildDerivation",
    "ExtendedPublicKey",
    "default_chain_code",
    "derive_child",
    "derive_keyshard_path",
    "derive_path",
    "parse_path",
    "tweak_key_share",
    "tweak_public_package",
]

HARDENED = 0x80000000
CHAIN_CODE_LENGTH = 32
_MAX_DEPTH = 255  # BIP-32 serialises the depth in one byte
_MAX_INDEX_DIGITS = 10  # 2^32 - 1 has ten digits: checked before int() parses untrusted text


@dataclass(frozen=True, slots=True)
class ExtendedPublicKey:
    """``(K, c)`` of BIP-32 plus its depth and child number (no fingerprint: not needed here)."""

    public_key: Point
    chain_code: bytes
    depth: int = 0
    child_number: int = 0

    def __post_init__(self) -> None:
        if self.public_key.group is not SECP256K1:
            raise InvalidParameters("BIP-32 keys are secp256k1 keys")
        if self.public_key.is_identity():
            raise InvalidParameters("the public key is the point at infinity")
        if len(self.chain_code) != CHAIN_CODE_LENGTH:
            raise InvalidParameters(f"chain code must be {CHAIN_CODE_LENGTH} bytes")
        if not 0 <= self.depth <= _MAX_DEPTH:
            raise InvalidParameters("depth out of range")
        if not 0 <= self.child_number < 2**32:
            raise InvalidParameters("child number out of range")

    def to_xpub(self, parent_fingerprint: bytes = bytes(4)) -> str:
        """The BIP-32 serialisation (mainnet ``xpub``, Base58Check) a wallet imports to derive
        the same non-hardened children. A root key (depth 0) has fingerprint 0."""
        if len(parent_fingerprint) != 4 or (self.depth == 0 and any(parent_fingerprint)):
            raise InvalidParameters("parent fingerprint must be 4 bytes, zero for a root key")
        payload = b"".join(
            (
                _XPUB_VERSION,
                bytes([self.depth]),
                parent_fingerprint,
                self.child_number.to_bytes(4, "big"),
                self.chain_code,
                self.public_key.to_bytes(),
            )
        )
        return _base58check_encode(payload)


_XPUB_VERSION = bytes.fromhex("0488b21e")
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _base58check_encode(payload: bytes) -> str:
    """Base58Check (Bitcoin's alphabet; checksum = first 4 bytes of double SHA-256)."""
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    value = int.from_bytes(data, "big")
    digits = []
    while value:
        value, digit = divmod(value, 58)
        digits.append(_BASE58[digit])
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + "".join(reversed(digits))


@dataclass(frozen=True, slots=True)
class ChildDerivation:
    """The outcome of deriving along a path: the child key and the total additive tweak."""

    key: ExtendedPublicKey
    tweak: Scalar
    path: tuple[int, ...]

    @property
    def public_key(self) -> Point:
        return self.key.public_key

    @property
    def chain_code(self) -> bytes:
        return self.key.chain_code


def default_chain_code(public_key: Point) -> bytes:
    """A deterministic chain code for a key that has none: SHA-256 of a tag and the key.

    Any agreed 32 bytes work; a secret chain code additionally keeps derived keys unlinkable
    to whoever knows only ``X``, which this public choice does not.
    """
    return hashlib.sha256(b"keyshard/bip32/chain-code/v1" + public_key.to_bytes()).digest()


def parse_path(path: str) -> tuple[int, ...]:
    """``"m"``, ``"m/0/1"`` -> ``(0, 1)``. Refuses hardened steps and anything non-canonical."""
    parts = path.split("/", _MAX_DEPTH + 1)  # bounded work whatever the path's length
    if parts[0] != "m":
        raise InvalidParameters("a derivation path starts with 'm'")
    if len(parts) - 1 > _MAX_DEPTH:
        raise InvalidParameters("path too deep")
    indices = []
    for part in parts[1:]:
        if part[-1:] in ("'", "h", "H"):
            raise InvalidParameters("hardened derivation needs the whole private key: refused")
        if (
            not part.isascii()
            or not part.isdigit()
            or (len(part) > 1 and part[0] == "0")
            or len(part) > _MAX_INDEX_DIGITS
        ):
            raise InvalidParameters(
                f"path component {part[:16]!r} is not a canonical decimal index"
            )
        index = int(part)
        if index >= HARDENED:
            raise InvalidParameters("hardened derivation needs the whole private key: refused")
        indices.append(index)
    return tuple(indices)


def derive_child(parent: ExtendedPublicKey, index: int) -> tuple[ExtendedPublicKey, Scalar]:
    """BIP-32 ``CKDpub`` for one non-hardened index; returns the child and its tweak ``I_L``."""
    if not 0 <= index < HARDENED:
        raise InvalidParameters("only non-hardened indices (0 <= i < 2^31) can be derived")
    if parent.depth >= _MAX_DEPTH:
        raise InvalidParameters("path too deep")
    data = parent.public_key.to_bytes() + index.to_bytes(4, "big")
    digest = hmac.new(parent.chain_code, data, hashlib.sha512).digest()
    left = int.from_bytes(digest[:32], "big")
    if left >= SECP256K1.order:  # pragma: no cover - probability below 2^-127
        raise InvalidParameters(f"index {index} yields an invalid key; use the next index")
    tweak = SECP256K1.scalar(left)
    child_key = SECP256K1.base_mul(tweak) + parent.public_key
    if child_key.is_identity():  # pragma: no cover - would need the discrete log of the parent
        raise InvalidParameters(f"index {index} yields an invalid key; use the next index")
    child = ExtendedPublicKey(child_key, digest[32:], parent.depth + 1, index)
    return child, tweak


def derive_path(root: ExtendedPublicKey, path: str | Sequence[int]) -> ChildDerivation:
    """Derive along ``path`` (a string as :func:`parse_path` or indices), summing the tweaks."""
    indices = parse_path(path) if isinstance(path, str) else tuple(path)
    key = root
    total = SECP256K1.zero()
    for index in indices:
        key, tweak = derive_child(key, index)
        total = total + tweak
    return ChildDerivation(key, total, indices)


def tweak_public_package(public: PublicKeyPackage, tweak: Scalar) -> PublicKeyPackage:
    """The public package of the derived key: group key and every verification share + tweak·G."""
    if public.group is not SECP256K1 or tweak.group is not SECP256K1:
        raise InvalidParameters("BIP-32 tweaks apply to secp256k1 keys")
    shift = SECP256K1.base_mul(tweak)
    group_key = public.group_public_key + shift
    if group_key.is_identity():
        raise InvalidParameters("the tweak cancels the public key")
    shares = {i: p + shift for i, p in public.verifying_shares.items()}
    return PublicKeyPackage(public.group, group_key, shares, public.threshold)


def tweak_key_share(share: KeyShare, tweak: Scalar) -> KeyShare:
    """This party's share of the derived key: ``x_j + tweak`` (see the module docstring)."""
    public = tweak_public_package(share.public, tweak)
    return KeyShare(share.identifier, share.secret_share + tweak, public)


def derive_keyshard_path(public_key: Point, path: str) -> tuple[Scalar, Point]:
    """Keyshard's BIP-32 convention: the total tweak and child public key of ``path``.

    A key's chain code is :func:`default_chain_code` of its public key (public: derived keys are
    linkable by whoever knows the root key) and a path is non-hardened (``"m/0/7"``; ``""`` or
    ``"m"`` is the key itself). Signing under a path applies the path's additive tweak; approvals
    for such a signature name the derived public key, so an approval for one child key never
    signs for another. Raises :class:`InvalidParameters` for a bad or hardened path.
    """
    if path in ("", "m"):
        return SECP256K1.zero(), public_key
    root = ExtendedPublicKey(public_key, default_chain_code(public_key))
    child = derive_path(root, path)
    return child.tweak, child.public_key
