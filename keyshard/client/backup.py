"""The backup file: a key's public commitments and each holder's share, verifiably encrypted.

A backup is made by the cluster (``key backup``: every holder encrypts its own share to an offline
recovery X25519 key, with a proof — :mod:`enclave.mpc.pve`) and checked by anyone, WITHOUT the
recovery key (:meth:`Backup.verify`): it restores exactly this public key. Only the holder of
the recovery private key can open it (:meth:`Backup.reconstruct`, the emergency path).

Format, version 1: one canonical CBOR map (:mod:`wire.cbor`; one encoding per backup)::

    {"format": "keyshard-backup", "v": 1,
     "key": name, "suite": suite name, "epoch": int, "created": UTC seconds,
     "policy": the key's approval policy (canonical encoding; empty: none),
     "group_public_key": bytes, "threshold": t,
     "verification_shares": [{"id": i, "share": Y_i}, ...]   (every holder, ids increasing),
     "recovery_key": raw X25519 public key (32 bytes),
     "encrypted_shares": [{"id": i, "node": node id, "pve": bytes}, ...]   (>= t+1, increasing)}

What :meth:`Backup.verify` checks, all on public data:

1. the verification shares are consistent with the group public key: every ``Y_i`` lies on one
   degree-``t`` polynomial in the exponent whose value at 0 is the group key (interpolating any
   ``t + 1`` of them gives the public key; :meth:`PublicKeyPackage.check_consistency`);
2. at least ``t + 1`` encrypted shares, of distinct holders listed among the verification shares;
3. each encrypted share's proof verifies for the statement "decrypts under ``recovery_key`` to
   ``log_G Y_i``", labelled with :func:`wire.backup.backup_label` (key, suite, package, epoch,
   policy): a file whose policy was stripped or changed does not verify.

Together: the recovery key opens ``t + 1`` values ``s_i`` with ``s_i·G = Y_i``, and by (1)
their interpolation at 0 is the private key of the group public key. :meth:`reconstruct`
re-checks that equality before it returns anything.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from enclave.mpc import pve
from enclave.mpc.errors import MpcError, SecretError
from enclave.mpc.groups import ED25519, Point, Scalar
from enclave.mpc.identifiers import MAX_PARTIES, Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.mpc.shamir import reconstruct as interpolate
from enclave.mpc.suites import KeySuite, key_suite
from keyshard.client.errors import BackupError
from wire import cbor
from wire.approvals import ApprovalPolicy
from wire.backup import backup_label
from wire.checks import check_key_name, check_node_id
from wire.errors import MalformedMessageError

__all__ = [
    "BACKUP_FORMAT",
    "BACKUP_VERSION",
    "Backup",
    "EncryptedShare",
    "generate_recovery_key",
    "load_recovery_private_key",
    "load_recovery_public_key",
    "private_key_pem",
]

BACKUP_FORMAT = "keyshard-backup"
BACKUP_VERSION = 1
_FIELDS = {
    "format",
    "v",
    "key",
    "suite",
    "epoch",
    "created",
    "group_public_key",
    "threshold",
    "verification_shares",
    "recovery_key",
    "encrypted_shares",
    "policy",
}
#: The PEM label of an Ed25519 key's secret SCALAR (no RFC 8032 seed exists for a key that was
#: never one party's: the DKG made the scalar directly, so no PKCS#8 Ed25519 form can hold it).
ED25519_SCALAR_PEM = "KEYSHARD ED25519 SECRET SCALAR"


@dataclass(frozen=True, slots=True)
class EncryptedShare:
    """One holder's share, verifiably encrypted to the recovery key (public)."""

    identifier: int
    node: str
    encryption: bytes


@dataclass(frozen=True, slots=True)
class Backup:
    """A parsed backup (structure checked; proofs checked by :meth:`verify`)."""

    key_name: str
    suite: KeySuite
    public: PublicKeyPackage
    epoch: int
    created: int
    recovery_key: bytes
    shares: tuple[EncryptedShare, ...]
    policy: ApprovalPolicy | None = None

    # -- encoding -------------------------------------------------------------------------

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "format": BACKUP_FORMAT,
                "v": BACKUP_VERSION,
                "key": self.key_name,
                "suite": self.suite.name,
                "epoch": self.epoch,
                "created": self.created,
                "group_public_key": self.public.group_public_key.to_bytes(),
                "threshold": self.public.threshold,
                "verification_shares": [
                    {"id": int(i), "share": p.to_bytes()}
                    for i, p in self.public.verifying_shares.items()
                ],
                "recovery_key": self.recovery_key,
                "policy": self._policy_bytes(),
                "encrypted_shares": [
                    {"id": s.identifier, "node": s.node, "pve": s.encryption} for s in self.shares
                ],
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Backup:
        """Strict structure: canonical CBOR, known version and fields, valid values (points on
        the curve, increasing identifiers, a usable recovery key). The cryptographic checks are
        :meth:`verify`'s."""
        try:
            value = cbor.loads_map(data, what="backup", fields=_FIELDS)
            if value["format"] != BACKUP_FORMAT or value["v"] != BACKUP_VERSION:
                raise BackupError("not a keyshard backup of a known version")
            return cls._from_value(value)
        except MalformedMessageError as error:
            raise BackupError(f"malformed backup: {error}") from None
        except MpcError as error:
            raise BackupError(f"malformed backup: {error}") from None

    @classmethod
    def _from_value(cls, value: Mapping[str, Any]) -> Backup:
        key_name = check_key_name(value["key"], "key")
        suite = key_suite(_text(value["suite"], "suite"))
        group = suite.group
        epoch, created = _uint(value["epoch"], "epoch"), _uint(value["created"], "created")
        threshold = _uint(value["threshold"], "threshold")
        group_key = group.decode_point(_bytes(value["group_public_key"], "group_public_key"))
        shares: dict[Identifier, Point] = {}
        for entry in _entries(value["verification_shares"], "verification_shares", {"id", "share"}):
            ident = Identifier.from_int(group, _uint(entry["id"], "id"))
            if shares and not max(shares) < ident:
                raise BackupError("verification shares: identifiers not increasing")
            shares[ident] = group.decode_point(_bytes(entry["share"], "share"))
        public = PublicKeyPackage(group, group_key, shares, threshold)
        recovery_key = _bytes(value["recovery_key"], "recovery_key")
        pve.check_recovery_key(recovery_key)
        encrypted: list[EncryptedShare] = []
        for entry in _entries(value["encrypted_shares"], "encrypted_shares", {"id", "node", "pve"}):
            ident_value = _uint(entry["id"], "id")
            if encrypted and not encrypted[-1].identifier < ident_value:
                raise BackupError("encrypted shares: identifiers not increasing")
            node = check_node_id(entry["node"], "node")
            encrypted.append(EncryptedShare(ident_value, node, _bytes(entry["pve"], "pve")))
        policy_bytes = _bytes(value["policy"], "policy")
        policy = ApprovalPolicy.decode(policy_bytes) if policy_bytes else None
        return cls(key_name, suite, public, epoch, created, recovery_key, tuple(encrypted), policy)

    def summary(self) -> dict[str, object]:
        """The public facts of the backup, for printing (no secret: this is all in the file)."""
        return {
            "key": self.key_name,
            "suite": self.suite.name,
            "epoch": self.epoch,
            "created": self.created,
            "threshold": self.public.threshold,
            "public_key": self.public.group_public_key.to_bytes().hex(),
            "recovery_key": self.recovery_key.hex(),
            "holders": [s.node for s in self.shares],
            "policy": None if self.policy is None else str(self.policy),
            "parties": [s.identifier for s in self.shares],
        }

    # -- verification ---------------------------------------------------------------------

    def _policy_bytes(self) -> bytes:
        return b"" if self.policy is None else self.policy.encode()

    def label(self) -> bytes:
        return backup_label(
            self.key_name, self.suite.name, self.public.to_bytes(), self.epoch, self._policy_bytes()
        )

    def statement(self, identifier: int) -> pve.PveStatement:
        ident = Identifier.from_int(self.public.group, identifier)
        public_share = self.public.verifying_shares.get(ident)
        if public_share is None:
            raise BackupError(f"encrypted share {identifier} belongs to no listed holder")
        return pve.PveStatement(public_share, ident, self.recovery_key, self.label())

    def verify(self) -> None:
        """Raise :class:`BackupError` unless the backup restores exactly its public key (see
        the module docstring); needs no secret."""
        try:
            self.public.check_consistency()
        except MpcError as error:
            raise BackupError(f"the verification shares do not match the key: {error}") from None
        if len(self.shares) < self.public.threshold + 1:
            raise BackupError(
                f"{len(self.shares)} encrypted share(s); {self.public.threshold + 1} are needed"
            )
        ids = [share.identifier for share in self.shares]
        if ids != sorted(set(ids)):
            raise BackupError("encrypted shares: identifiers not increasing")
        for share in self.shares:
            self.verify_share(share)

    def verify_share(self, share: EncryptedShare) -> None:
        """One holder's proof (:class:`BackupError` naming the holder unless it verifies)."""
        try:
            proof = pve.VerifiableEncryption.from_bytes(share.encryption, self.public.group)
            pve.verify(self.statement(share.identifier), proof)
        except MpcError as error:
            raise BackupError(
                f"the encrypted share of {share.node} (party {share.identifier}) does not "
                f"verify: {error}"
            ) from None

    def open_share(self, share: EncryptedShare, recovery_private_key: X25519PrivateKey) -> Scalar:
        """One holder's share, decrypted with the recovery key (for a restore, which deals it
        straight into that holder's replacement enclave); checked against its ``Y_i``."""
        if recovery_private_key.public_key().public_bytes_raw() != self.recovery_key:
            raise BackupError("this recovery key is not the one the backup is encrypted to")
        proof = pve.VerifiableEncryption.from_bytes(share.encryption, self.public.group)
        try:
            return pve.decrypt(recovery_private_key, self.statement(share.identifier), proof)
        except SecretError:
            raise BackupError(f"the encrypted share of {share.node} does not open") from None
        except MpcError as error:
            raise BackupError(f"the encrypted share of {share.node}: {error}") from None

    def reconstruct(self, recovery_private_key: X25519PrivateKey) -> Scalar:
        """EMERGENCY PATH: the whole private key, assembled here from ``t + 1`` shares.

        Verifies the backup first; refuses a recovery key that is not the backup's, and any
        result whose public key is not the backup's group public key."""
        self.verify()
        group = self.public.group
        opened = {
            Identifier.from_int(group, share.identifier): self.open_share(
                share, recovery_private_key
            )
            for share in self.shares[: self.public.threshold + 1]
        }
        secret = interpolate(group, opened)
        if group.base_mul(secret) != self.public.group_public_key:
            raise BackupError("the reconstructed key does not match the backup's public key")
        return secret


def _text(value: object, field: str) -> str:
    if type(value) is not str:
        raise BackupError(f"{field}: must be text")
    return value


def _bytes(value: object, field: str) -> bytes:
    if type(value) is not bytes:
        raise BackupError(f"{field}: must be bytes")
    return value


def _uint(value: object, field: str) -> int:
    if type(value) is not int or value < 0:
        raise BackupError(f"{field}: must be a non-negative integer")
    return value


def _entries(value: object, field: str, keys: set[str]) -> Sequence[Mapping[str, Any]]:
    if type(value) is not list or not 1 <= len(value) <= MAX_PARTIES:
        raise BackupError(f"{field}: must be a list of 1..{MAX_PARTIES} entries")
    for entry in value:
        if type(entry) is not dict or set(entry) != keys:
            raise BackupError(f"{field}: every entry has exactly {sorted(keys)}")
    return value


# -- recovery keys and the emergency output ---------------------------------------------------


def generate_recovery_key() -> tuple[bytes, bytes]:
    """A fresh recovery key pair: (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = X25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def load_recovery_public_key(pem: bytes) -> bytes:
    """The raw 32 bytes of a recovery public key PEM (X25519 SubjectPublicKeyInfo)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise BackupError("not a PEM public key") from None
    if not isinstance(key, X25519PublicKey):
        raise BackupError("a recovery key is an X25519 key")
    raw = key.public_bytes_raw()
    try:
        pve.check_recovery_key(raw)
    except MpcError as error:
        raise BackupError(str(error)) from None
    return raw


def load_recovery_private_key(pem: bytes) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise BackupError("not an unencrypted PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise BackupError("a recovery key is an X25519 key")
    return key


def private_key_pem(suite: KeySuite, secret: Scalar) -> bytes:
    """The reconstructed key as PEM: PKCS#8 EC for secp256k1 keys (OpenSSL reads it); for
    Ed25519 keys the secret scalar in a Keyshard-labelled block (see :data:`ED25519_SCALAR_PEM`).
    """
    if suite.group is ED25519:
        body = base64.encodebytes(secret.to_bytes()).decode()
        return f"-----BEGIN {ED25519_SCALAR_PEM}-----\n{body}-----END {ED25519_SCALAR_PEM}-----\n".encode()
    key = ec.derive_private_key(int(secret), ec.SECP256K1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
