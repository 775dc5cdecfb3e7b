"""Key suites: the one registry of what a Keyshard key can be, as values.

A key suite fixes a key's group and its signature scheme for life (one key, one scheme): FROST
keys (RFC 9591) also decrypt (threshold ECIES over the same group); threshold-ECDSA keys
(DJNPO20, :mod:`enclave.mpc.ecdsa`) sign with ECDSA only, need an honest majority (n >= 2t+1,
exactly 2t+1 presign), and derive non-hardened BIP-32 children. The node, the client SDK and the
CLI all ask this registry; none keeps its own list of names.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from enclave.mpc.errors import InvalidParameters
from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512, FROST_SECP256K1_SHA256, Ciphersuite
from enclave.mpc.groups import ED25519, SECP256K1, Group

__all__ = [
    "BIP340_SECP256K1",
    "ECDSA_SECP256K1",
    "ED25519_FROST",
    "KEY_SUITES",
    "SECP256K1_FROST",
    "KeySuite",
    "Scheme",
    "key_suite",
    "suite_of_group",
]


class Scheme(enum.Enum):
    FROST = "frost"
    ECDSA = "ecdsa"
    BIP340 = "bip340"


@dataclass(frozen=True, slots=True)
class KeySuite:
    """One kind of key: its wire name, group, scheme and (FROST) ciphersuite."""

    name: str
    group: Group
    scheme: Scheme
    frost: Ciphersuite | None = None
    description: str = ""

    @property
    def decrypts(self) -> bool:
        """Threshold decryption is served for FROST keys (one key, one scheme: not for ECDSA)."""
        return self.scheme is Scheme.FROST

    @property
    def derives_children(self) -> bool:
        """Non-hardened BIP-32 child keys (a path at signing time; an xpub to share)."""
        return self.scheme is Scheme.ECDSA

    def signers_needed(self, threshold: int) -> int:
        """How many holders take part in one signature (t+1; 2t+1 for honest-majority ECDSA)."""
        return 2 * threshold + 1 if self.scheme is Scheme.ECDSA else threshold + 1

    def check_committee(self, threshold: int, participants: int) -> None:
        """Refuse a (t, n) this suite cannot serve."""
        if not 1 <= threshold < participants:
            raise InvalidParameters("threshold must be in 1..n-1 (degree; t+1 sign)")
        if participants < self.signers_needed(threshold):
            raise InvalidParameters(
                f"{self.name} needs n >= {self.signers_needed(threshold)} nodes for t={threshold}"
            )

    def frost_suite(self) -> Ciphersuite:
        if self.frost is None:
            raise InvalidParameters(f"a {self.name} key does not sign with FROST")
        return self.frost


ED25519_FROST = KeySuite(
    "ed25519", ED25519, Scheme.FROST, FROST_ED25519_SHA512, "FROST Ed25519 (RFC 9591)"
)
SECP256K1_FROST = KeySuite(
    "secp256k1", SECP256K1, Scheme.FROST, FROST_SECP256K1_SHA256, "FROST secp256k1 (RFC 9591)"
)
ECDSA_SECP256K1 = KeySuite(
    "ecdsa-secp256k1", SECP256K1, Scheme.ECDSA, None, "threshold ECDSA secp256k1 (DJNPO20)"
)

BIP340_SECP256K1 = KeySuite(
    "bip340", SECP256K1, Scheme.BIP340, None, "BIP-340 Schnorr by FROST (BIP-445), Taproot tweaks"
)

KEY_SUITES: Mapping[str, KeySuite] = MappingProxyType(
    {s.name: s for s in (ED25519_FROST, SECP256K1_FROST, ECDSA_SECP256K1, BIP340_SECP256K1)}
)


def key_suite(name: str) -> KeySuite:
    """The suite called ``name``, or :class:`InvalidParameters` listing the known ones."""
    suite = KEY_SUITES.get(name)
    if suite is None:
        raise InvalidParameters(f"unknown key suite; known: {', '.join(KEY_SUITES)}")
    return suite


def suite_of_group(group: Group) -> KeySuite:
    """The FROST suite of ``group`` (for shares sealed before the suite was recorded)."""
    for suite in KEY_SUITES.values():
        if suite.group is group and suite.scheme is Scheme.FROST:
            return suite
    raise InvalidParameters(f"no FROST key suite for group {group.name}")
