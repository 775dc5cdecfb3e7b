"""A key as the client knows it: what its holders agree on, and the public forms it is shared in.

Everything here is public: the group public key, its holders' positions, its approval policy.
The PEM/SPKI form is what OpenSSL, cryptography and AWS KMS ``GetPublicKey`` speak; the ``xpub``
(threshold-ECDSA keys) lets a wallet derive the same non-hardened BIP-32 children that
``sign --path`` signs with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from enclave.mpc.bip32 import ExtendedPublicKey, default_chain_code, derive_keyshard_path
from enclave.mpc.errors import MpcError
from enclave.mpc.frost.bip340 import Tweak, TweakMode, tagged_hash, tweak_key
from enclave.mpc.groups import ED25519, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.mpc.suites import KEY_SUITES, KeySuite, Scheme
from keyshard.client.errors import InvalidInputError, ProtocolError
from wire.approvals import ApprovalPolicy

__all__ = ["SUITE_NAMES", "KeyDescription"]

#: The key suites a cluster serves, by wire name (for ``--suite`` choices and messages).
SUITE_NAMES: tuple[str, ...] = tuple(KEY_SUITES)


@dataclass(frozen=True, slots=True)
class KeyDescription:
    """A key as its holders agree on it; ``holders`` maps node id to party identifier."""

    name: str
    suite: KeySuite
    public: PublicKeyPackage
    holders: Mapping[str, int]
    policy: ApprovalPolicy | None = None
    epoch: int = 0
    #: Holders the key records that refused to describe it (no such key, or a sealed blob they
    #: cannot read): their share was lost, e.g. deleted or rolled-back sealed state. Reported,
    #: and never chosen to sign.
    missing: tuple[str, ...] = ()
    #: Each answering holder's state (enabled, disabled, pending_deletion) and, pending
    #: deletion, the UTC seconds it erases its share at (0 otherwise).
    states: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    #: Holders that answered at another epoch than ``epoch`` (a refresh interrupted between
    #: their commit and their peers'): never chosen, so one signature never mixes shares of two
    #: epochs. ``key refresh`` finishes the refresh.
    other_epoch: tuple[str, ...] = ()
    #: Custody (issue 11): created exportable (its policy's quorum may export it); exported
    #: (some holder wrapped its share for an export: forever); imported from outside.
    exportable: bool = False
    exported: bool = False
    imported: bool = False

    @property
    def state(self) -> str:
        """The key's state when its holders agree; ``mixed`` while a change has reached some
        holders only (run it again to finish)."""
        kinds = {state for state, _ in self.states.values()}
        if not kinds:
            return "enabled"
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def delete_at(self) -> int | None:
        """Pending deletion: the latest UTC second a holder erases its share at."""
        dates = [at for state, at in self.states.values() if state == "pending_deletion"]
        return max(dates) if dates else None

    @property
    def public_key(self) -> bytes:
        """The group public key in the suite's compact encoding (Ed25519: 32 bytes; secp256k1:
        33-byte compressed point)."""
        return self.public.group_public_key.to_bytes()

    @property
    def threshold(self) -> int:
        """The polynomial degree t: t+1 holders sign (2t+1 for threshold ECDSA)."""
        return self.public.threshold

    @property
    def signers_needed(self) -> int:
        return self.suite.signers_needed(self.threshold)

    def identifier(self, node_id: str) -> Identifier:
        return Identifier.from_int(self.public.group, self.holders[node_id])

    def node_of(self, identifier: Identifier) -> str:
        for node_id, index in self.holders.items():
            if index == int(identifier):
                return node_id
        raise ProtocolError(f"no holder of {self.name!r} is party {int(identifier)}")

    def child(self, path: str) -> tuple[Scalar, bytes]:
        """The additive tweak and public key of the non-hardened BIP-32 child ``path`` ("" or
        "m": the key itself, tweak zero); :class:`InvalidInputError` for a bad or hardened path."""
        if path and not self.suite.derives_children:
            raise InvalidInputError(f"{self.suite.name} keys derive no BIP-32 children")
        try:
            tweak, point = derive_keyshard_path(self.public.group_public_key, path)
        except MpcError as error:
            raise InvalidInputError(f"BIP-32 path {path!r}: {error}") from None
        return tweak, point.to_bytes()

    def child_public_key(self, path: str) -> bytes:
        """The public key that signs under ``path``; approvals for such a signature name it."""
        return self.child(path)[1]

    def public_key_pem(self, path: str = "") -> str:
        """The (child) public key as a PEM SubjectPublicKeyInfo."""
        raw = self.child_public_key(path)
        if self.public.group is ED25519:
            spki = Ed25519PublicKey.from_public_bytes(raw).public_bytes(
                Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
            )
        else:
            point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), raw)
            spki = point.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        return spki.decode("ascii")

    def xonly_public_key(self) -> bytes | None:
        """A ``bip340`` key's 32-byte x-only public key (what BIP-340 signatures verify
        under without a tweak); ``None`` for other suites."""
        if self.suite.scheme is not Scheme.BIP340:
            return None
        return self.public_key[1:]

    def taproot_output_key(self, merkle_root: bytes = b"") -> bytes | None:
        """A ``bip340`` key's BIP-341 output key (x-only) with this key as internal key and the
        script tree of ``merkle_root`` (empty: key path only); ``None`` for other suites."""
        internal = self.xonly_public_key()
        if internal is None:
            return None
        tweak = tagged_hash("TapTweak", internal + merkle_root)
        try:
            return tweak_key(
                self.public.group_public_key, [Tweak(tweak, TweakMode.XONLY)]
            ).xonly_key
        except MpcError as error:
            raise InvalidInputError(f"Taproot: {error}") from None

    def xpub(self) -> str | None:
        """The BIP-32 extended public key of a key that derives children (else ``None``)."""
        if not self.suite.derives_children:
            return None
        point = self.public.group_public_key
        return ExtendedPublicKey(point, default_chain_code(point)).to_xpub()
