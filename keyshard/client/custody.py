"""The client's side of key export and import (issue 11): bundles, recipient keys, PEMs.

Export. ``keyshard key export`` gathers every holder's wrapped share into an
:class:`ExportBundle` (public: each share is HPKE-sealed to the recipient, re-randomised by the
holders so no stored share is in it). Only the recipient's X25519 private key opens it:
:func:`unwrap` opens every share under its :func:`wire.custody.export_info`, adds them, and
refuses the result unless ``y * G`` is the key's group public key. The recipient's key is made
by :func:`generate_recipient_key` (PKCS#8 PEM, 0600; the public key as SubjectPublicKeyInfo PEM).

Key files (:func:`private_key_pem`, :func:`load_private_key`):

* secp256k1 keys (``ecdsa-secp256k1``, ``secp256k1``): the standard PKCS#8 ``PRIVATE KEY`` PEM
  OpenSSL and ``cryptography`` read (it signs ECDSA under the same public key).
* Ed25519 keys: a FROST Ed25519 key is a scalar ``a`` with ``A = a * B``, not an RFC 8032 seed
  (no seed hashes to a given scalar), so no PKCS#8 Ed25519 file can hold it. It is written as
  ``KEYSHARD ED25519 EXPANDED KEY``: 64 bytes, ``a`` (32, little-endian) then a random 32-byte
  nonce prefix — the layout of an RFC 8032 expanded secret key (libsodium's, Tor's);
  :class:`PrivateKey` signs RFC 8032 Ed25519 signatures with it that any Ed25519 verifier
  accepts under ``A``. An imported Ed25519 PKCS#8 key is expanded as RFC 8032 does
  (SHA-512 of the seed, clamped), so the cluster signs under the PEM's own public key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from enclave.mpc.errors import MpcError
from enclave.mpc.groups import ED25519, SECP256K1, Group, Scalar
from enclave.mpc.suites import KeySuite, key_suite
from keyshard.client.errors import InvalidInputError, ProtocolError
from wire import cbor
from wire.checks import check_key_name
from wire.custody import HPKE, export_info
from wire.errors import MalformedMessageError

__all__ = [
    "ED25519_PEM_LABEL",
    "ExportBundle",
    "PrivateKey",
    "exported_key",
    "generate_recipient_key",
    "load_private_key",
    "load_recipient_key",
    "load_recipient_public_key",
    "private_key_pem",
    "unwrap",
    "write_secret_file",
]

ED25519_PEM_LABEL = "KEYSHARD ED25519 EXPANDED KEY"
_BUNDLE_VERSION = 1
_BUNDLE_FIELDS = frozenset(
    {"v", "key", "suite", "public_key", "epoch", "session", "recipient", "shares"}
)


def write_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` 0600 (never overwriting: a key file is not silently replaced)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInputError(f"{path} exists; refusing to overwrite it") from None
    except OSError as error:
        raise InvalidInputError(f"cannot create {path}: {error.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


# -- the recipient's key ------------------------------------------------------------------


def generate_recipient_key(private_path: Path, public_path: Path) -> bytes:
    """A fresh X25519 key: private PKCS#8 PEM at ``private_path`` (0600), public SPKI PEM at
    ``public_path``; the raw public key."""
    key = X25519PrivateKey.generate()
    write_secret_file(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    public = key.public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        public_path.write_bytes(public_pem)
    except OSError as error:
        raise InvalidInputError(f"cannot write {public_path}: {error.strerror}") from None
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_recipient_public_key(pem: bytes) -> bytes:
    """The raw 32 bytes of an X25519 public key PEM (SubjectPublicKeyInfo)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise InvalidInputError("the recipient key is not a PEM public key") from None
    if not isinstance(key, X25519PublicKey):
        raise InvalidInputError("the recipient key must be an X25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_recipient_key(pem: bytes) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise InvalidInputError("not an unencrypted PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise InvalidInputError("the recipient's private key must be an X25519 key")
    return key


# -- export bundles -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportBundle:
    """Every holder's wrapped share of one export; public (only the recipient opens it).
    ``shares`` maps node id to (party identifier, ``enc || ct``)."""

    key_name: str
    suite: KeySuite
    public_key: bytes
    epoch: int
    session_id: bytes
    recipient: bytes
    shares: dict[str, tuple[int, bytes]]

    def encode(self) -> bytes:
        return cbor.dumps(
            {
                "v": _BUNDLE_VERSION,
                "key": self.key_name,
                "suite": self.suite.name,
                "public_key": self.public_key,
                "epoch": self.epoch,
                "session": self.session_id,
                "recipient": self.recipient,
                "shares": {n: [i, w] for n, (i, w) in sorted(self.shares.items())},
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> ExportBundle:
        try:
            value = cbor.loads_map(
                data, what="export bundle", fields=_BUNDLE_FIELDS, version=_BUNDLE_VERSION
            )
            shares = value["shares"]
            if not isinstance(shares, dict) or not shares:
                raise MalformedMessageError("shares", "must map node ids to wrapped shares")
            parsed: dict[str, tuple[int, bytes]] = {}
            for node_id, item in shares.items():
                if not (
                    type(node_id) is str
                    and isinstance(item, list)
                    and len(item) == 2
                    and type(item[0]) is int
                    and type(item[1]) is bytes
                ):
                    raise MalformedMessageError("shares", "wrong shape")
                parsed[node_id] = (item[0], item[1])
            fields_ok = (
                type(value["public_key"]) is bytes
                and type(value["epoch"]) is int
                and type(value["session"]) is bytes
                and type(value["recipient"]) is bytes
                and type(value["suite"]) is str
            )
            if not fields_ok:
                raise MalformedMessageError("export bundle", "wrong field types")
            return cls(
                check_key_name(value["key"]),
                key_suite(value["suite"]),
                value["public_key"],
                value["epoch"],
                value["session"],
                value["recipient"],
                parsed,
            )
        except (MalformedMessageError, MpcError) as error:
            raise InvalidInputError(f"not a Keyshard export bundle: {error}") from None


def unwrap(bundle: ExportBundle, recipient: X25519PrivateKey) -> Scalar:
    """The exported key: every wrapped share opened and added; refused (nothing returned)
    unless it is the secret of the bundle's public key."""
    own = recipient.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    if own != bundle.recipient:
        raise InvalidInputError("this bundle was wrapped for another recipient key")
    group = bundle.suite.group
    holders = sorted(bundle.shares)
    total = group.zero()
    for node_id in holders:
        identifier, wrapped = bundle.shares[node_id]
        info = export_info(
            key_name=bundle.key_name,
            group_public_key=bundle.public_key,
            epoch=bundle.epoch,
            session_id=bundle.session_id,
            recipient=bundle.recipient,
            holders=holders,
            identifier=identifier,
        )
        try:
            total = total + group.decode_scalar(HPKE.decrypt(wrapped, recipient, info=info))
        except (InvalidTag, ValueError, MpcError):
            raise ProtocolError(
                f"{node_id}'s wrapped share does not open for this export", culprit=node_id
            ) from None
    if group.base_mul(total).to_bytes() != bundle.public_key:
        raise ProtocolError(
            f"the shares of {bundle.key_name!r} do not add up to its public key: refused"
        )
    return total


# -- key files ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class PrivateKey:
    """A whole private key outside the cluster: its group, scalar and (Ed25519) nonce prefix."""

    group: Group
    scalar: Scalar
    prefix: bytes = b""

    @property
    def public_key(self) -> bytes:
        """The public key in the suites' compact encoding (what ``key info`` shows)."""
        return self.group.base_mul(self.scalar).to_bytes()

    def sign(self, message: bytes) -> bytes:
        """Ed25519 (RFC 8032, from the expanded key) or ECDSA secp256k1 over SHA-256 (DER)."""
        if self.group is ED25519:
            group = self.group
            public = self.public_key
            r = group.scalar_from_digest(hashlib.sha512(self.prefix + message).digest())
            big_r = group.base_mul(r).to_bytes()
            k = group.scalar_from_digest(hashlib.sha512(big_r + public + message).digest())
            return big_r + (r + k * self.scalar).to_bytes()
        key = ec.derive_private_key(int(self.scalar), ec.SECP256K1())
        return key.sign(message, ec.ECDSA(hashes.SHA256()))

    def __repr__(self) -> str:
        return f"PrivateKey({self.group.name}, <redacted>)"


def private_key_pem(key: PrivateKey) -> bytes:
    """The key file (see the module docstring for the two formats)."""
    if key.group is ED25519:
        body = base64.encodebytes(key.scalar.to_bytes() + key.prefix).decode("ascii")
        return (
            f"-----BEGIN {ED25519_PEM_LABEL}-----\n{body}-----END {ED25519_PEM_LABEL}-----\n"
        ).encode("ascii")
    return ec.derive_private_key(int(key.scalar), ec.SECP256K1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def exported_key(group: Group, scalar: Scalar) -> PrivateKey:
    """The key :func:`unwrap` returned, with a fresh nonce prefix for Ed25519."""
    return PrivateKey(group, scalar, os.urandom(32) if group is ED25519 else b"")


def _expanded_ed25519(pem: bytes) -> PrivateKey:
    text = pem.decode("ascii", "replace").strip()
    begin, end = f"-----BEGIN {ED25519_PEM_LABEL}-----", f"-----END {ED25519_PEM_LABEL}-----"
    if not (text.startswith(begin) and text.endswith(end)):
        raise InvalidInputError("not a Keyshard Ed25519 key file")
    try:
        raw = base64.b64decode("".join(text[len(begin) : -len(end)].split()), validate=True)
        if len(raw) != 64:
            raise ValueError
        return PrivateKey(ED25519, ED25519.decode_scalar(raw[:32]), raw[32:])
    except (ValueError, MpcError):
        raise InvalidInputError("the Keyshard Ed25519 key file is damaged") from None


def load_private_key(pem: bytes) -> PrivateKey:
    """A key to import: PKCS#8 Ed25519 (expanded as RFC 8032), PKCS#8 or SEC 1 secp256k1, or
    a Keyshard Ed25519 expanded key file. Any other key is refused."""
    if ED25519_PEM_LABEL.encode() in pem:
        return _expanded_ed25519(pem)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise InvalidInputError("not an unencrypted PEM private key") from None
    if isinstance(key, Ed25519PrivateKey):
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        digest = bytearray(hashlib.sha512(seed).digest())
        digest[0] &= 248
        digest[31] &= 127
        digest[31] |= 64
        scalar = ED25519.scalar(int.from_bytes(digest[:32], "little"))
        return PrivateKey(ED25519, scalar, bytes(digest[32:]))
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256K1):
        return PrivateKey(SECP256K1, SECP256K1.scalar(key.private_numbers().private_value))
    raise InvalidInputError("only Ed25519 and secp256k1 private keys can be imported")
