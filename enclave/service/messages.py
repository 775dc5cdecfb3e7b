"""The node service's wire messages: closed request and reply types, strict canonical CBOR.

Each frame (:mod:`transport.framing`, at most :data:`MAX_FRAME`) is one canonical CBOR map
``{"op": <name>, <field>: <value>, ...}`` with exactly the fields of that type. Decoding refuses
non-canonical encodings, unknown ops, missing or extra fields and wrong types; every type also
validates its values on construction (sizes, names), so a value that exists is a valid one.

Requests (client -> node): ``hello``, ``key_create``, ``dkg_step``, ``key_info``, ``sign_commit``,
``sign_share``, ``decrypt_partial``, ``presign_start``, ``presign_step``, ``ecdsa_sign``. Replies:
``hello_reply``, ``dkg_outbox`` (also a presigning round's envelopes), ``key_created``,
``key_info_reply``, ``commitments``, ``signature_share`` (FROST or ECDSA), ``partial``,
``presigned``, ``error``. Approvals (:mod:`enclave.service.policy`) travel as a list of encoded
approvals in ``sign_commit``, ``sign_share``, ``decrypt_partial`` and ``ecdsa_sign``.

MPC payloads travel as the MPC core's own canonical encodings (bytes); DKG payloads travel as
crypto_box envelopes (:mod:`enclave.service.envelope`) the client cannot open.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, ClassVar

import cbor2

from enclave.service.derivation import MAX_PATH
from enclave.service.errors import MalformedMessageError
from enclave.service.policy import MAX_APPROVERS, ApprovalPolicy

__all__ = [
    "MAX_FRAME",
    "Commitments",
    "DecryptPartial",
    "DkgOutbox",
    "DkgStep",
    "EcdsaSign",
    "ErrorReply",
    "Hello",
    "HelloReply",
    "KeyCreate",
    "KeyCreated",
    "KeyInfo",
    "KeyInfoReply",
    "Message",
    "Partial",
    "PresignStart",
    "PresignStep",
    "Presigned",
    "SignCommit",
    "SignShare",
    "SignatureShareReply",
    "decode",
    "encode",
]

MAX_FRAME = 1024 * 1024
MAX_PARTICIPANTS = 16
MAX_BLOB = 256 * 1024
SUITES = ("ed25519", "secp256k1", "ecdsa-secp256k1")
_KEY_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_key_name(name: str) -> str:
    if type(name) is not str or not _KEY_NAME.fullmatch(name):
        raise MalformedMessageError(
            "key_name", "must be 1-63 of [a-z0-9._-], starting alphanumeric"
        )
    return name


def check_node_id(node_id: str) -> str:
    if type(node_id) is not str or not _NODE_ID.fullmatch(node_id):
        raise MalformedMessageError("node_id", "must be 1-64 of [A-Za-z0-9._-]")
    return node_id


def _bytes(name: str, value: object, low: int = 0, high: int = MAX_BLOB) -> None:
    if type(value) is not bytes or not low <= len(value) <= high:
        raise MalformedMessageError(name, f"must be {low}..{high} bytes")


def _session(value: object) -> None:
    _bytes("session_id", value, 16, 64)


def _policy(value: object) -> None:
    """Empty (no policy) or one canonical :class:`ApprovalPolicy` encoding."""
    _bytes("policy", value, 0, 4096)
    if value:
        ApprovalPolicy.decode(value)  # type: ignore[arg-type]


def _approvals(message: Message, value: object) -> None:
    if not isinstance(value, tuple | list) or len(value) > MAX_APPROVERS:
        raise MalformedMessageError("approvals", f"must be a list of at most {MAX_APPROVERS}")
    for approval in value:
        _bytes("approvals", approval, 1, 1024)
    object.__setattr__(message, "approvals", tuple(value))


@dataclass(frozen=True, slots=True)
class Message:
    """Base of every message; ``OP`` names the type on the wire."""

    OP: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Validate values; subclasses override."""


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """First request on a channel: a fresh nonce the node's attestation document must echo."""

    OP: ClassVar[str] = "hello"
    nonce: bytes

    def check(self) -> None:
        _bytes("nonce", self.nonce, 32, 32)


@dataclass(frozen=True, slots=True)
class HelloReply(Message):
    OP: ClassVar[str] = "hello_reply"
    document: bytes

    def check(self) -> None:
        _bytes("document", self.document, 1, 16 * 1024)


@dataclass(frozen=True, slots=True)
class KeyCreate(Message):
    """Start a DKG for ``key_name``; ``participants`` maps node ids to their attestation documents.

    ``policy`` is empty or an encoded :class:`~enclave.service.policy.ApprovalPolicy`; it is bound
    into the DKG, so the nodes only agree on a key if they were all given the same policy.
    """

    OP: ClassVar[str] = "key_create"
    key_name: str
    suite: str
    threshold: int
    session_id: bytes
    participants: Mapping[str, bytes]
    policy: bytes = b""

    def check(self) -> None:
        check_key_name(self.key_name)
        _policy(self.policy)
        if self.suite not in SUITES:
            raise MalformedMessageError("suite", f"must be one of {', '.join(SUITES)}")
        if not isinstance(self.participants, Mapping) or not (
            2 <= len(self.participants) <= MAX_PARTICIPANTS
        ):
            raise MalformedMessageError("participants", f"must name 2..{MAX_PARTICIPANTS} nodes")
        for node_id, document in self.participants.items():
            check_node_id(node_id)
            _bytes("participants", document, 1, 16 * 1024)
        object.__setattr__(self, "participants", MappingProxyType(dict(self.participants)))
        if type(self.threshold) is not int or not 1 <= self.threshold < len(self.participants):
            raise MalformedMessageError("threshold", "must be in 1..n-1 (degree; t+1 sign)")
        if self.suite == "ecdsa-secp256k1" and len(self.participants) < 2 * self.threshold + 1:
            raise MalformedMessageError("threshold", "threshold ECDSA needs n >= 2t+1 nodes")
        _session(self.session_id)


@dataclass(frozen=True, slots=True)
class DkgStep(Message):
    """The envelopes addressed to this node in the current DKG round (no sender named)."""

    OP: ClassVar[str] = "dkg_step"
    key_name: str
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        if not isinstance(self.inbox, tuple | list) or len(self.inbox) > MAX_PARTICIPANTS:
            raise MalformedMessageError("inbox", f"must be a list of at most {MAX_PARTICIPANTS}")
        for envelope in self.inbox:
            _bytes("inbox", envelope, 1)
        object.__setattr__(self, "inbox", tuple(self.inbox))


@dataclass(frozen=True, slots=True)
class DkgOutbox(Message):
    """Envelopes this node sends, by recipient node id (the client relays them)."""

    OP: ClassVar[str] = "dkg_outbox"
    outbox: Mapping[str, bytes]

    def check(self) -> None:
        if not isinstance(self.outbox, Mapping) or len(self.outbox) > MAX_PARTICIPANTS:
            raise MalformedMessageError("outbox", "must map at most 16 node ids to envelopes")
        for node_id, envelope in self.outbox.items():
            check_node_id(node_id)
            _bytes("outbox", envelope, 1)
        object.__setattr__(self, "outbox", MappingProxyType(dict(self.outbox)))


@dataclass(frozen=True, slots=True)
class KeyCreated(Message):
    """The DKG finished and this node's share is sealed: the public key package."""

    OP: ClassVar[str] = "key_created"
    public_key_package: bytes

    def check(self) -> None:
        _bytes("public_key_package", self.public_key_package, 1)


@dataclass(frozen=True, slots=True)
class KeyInfo(Message):
    OP: ClassVar[str] = "key_info"
    key_name: str

    def check(self) -> None:
        check_key_name(self.key_name)


@dataclass(frozen=True, slots=True)
class KeyInfoReply(Message):
    OP: ClassVar[str] = "key_info_reply"
    suite: str
    identifier: int
    public_key_package: bytes
    policy: bytes = b""

    def check(self) -> None:
        _policy(self.policy)
        if type(self.identifier) is not int or not 1 <= self.identifier <= MAX_PARTICIPANTS:
            raise MalformedMessageError("identifier", "must be a participant position 1..16")
        if self.suite not in SUITES:
            raise MalformedMessageError("suite", f"must be one of {', '.join(SUITES)}")
        _bytes("public_key_package", self.public_key_package, 1)


@dataclass(frozen=True, slots=True)
class SignCommit(Message):
    """FROST round one: commit to fresh nonces for signing session ``session_id``.

    ``message_digest`` (SHA-256 of the message) is fixed here: the node checks approvals for it
    before committing, and ``sign_share`` must then carry a package signing exactly that message.
    """

    OP: ClassVar[str] = "sign_commit"
    key_name: str
    session_id: bytes
    message_digest: bytes
    approvals: tuple[bytes, ...] = ()

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _bytes("message_digest", self.message_digest, 32, 32)
        _approvals(self, self.approvals)


@dataclass(frozen=True, slots=True)
class Commitments(Message):
    OP: ClassVar[str] = "commitments"
    commitments: bytes

    def check(self) -> None:
        _bytes("commitments", self.commitments, 1)


@dataclass(frozen=True, slots=True)
class SignShare(Message):
    """FROST round two: the signing package (message and every signer's commitments)."""

    OP: ClassVar[str] = "sign_share"
    session_id: bytes
    package: bytes
    approvals: tuple[bytes, ...] = ()

    def check(self) -> None:
        _session(self.session_id)
        _bytes("package", self.package, 1)
        _approvals(self, self.approvals)


@dataclass(frozen=True, slots=True)
class SignatureShareReply(Message):
    OP: ClassVar[str] = "signature_share"
    share: bytes

    def check(self) -> None:
        _bytes("share", self.share, 1)


@dataclass(frozen=True, slots=True)
class DecryptPartial(Message):
    """Threshold decryption: this node's partial decryption of ``ciphertext`` with its proof.

    ``context`` is the associated data the client will decrypt with; it only enters the approval
    digest (the node cannot check it: the partial depends on the ciphertext alone).
    """

    OP: ClassVar[str] = "decrypt_partial"
    key_name: str
    ciphertext: bytes
    session_id: bytes
    context: bytes = b""
    approvals: tuple[bytes, ...] = ()

    def check(self) -> None:
        check_key_name(self.key_name)
        _bytes("ciphertext", self.ciphertext, 1)
        _session(self.session_id)
        _bytes("context", self.context)
        _approvals(self, self.approvals)


@dataclass(frozen=True, slots=True)
class Partial(Message):
    OP: ClassVar[str] = "partial"
    partial: bytes

    def check(self) -> None:
        _bytes("partial", self.partial, 1)


def _participants(value: object) -> None:
    if not isinstance(value, Mapping) or not 2 <= len(value) <= MAX_PARTICIPANTS:
        raise MalformedMessageError("participants", f"must name 2..{MAX_PARTICIPANTS} nodes")
    for node_id, document in value.items():
        check_node_id(node_id)
        _bytes("participants", document, 1, 16 * 1024)


@dataclass(frozen=True, slots=True)
class PresignStart(Message):
    """Threshold ECDSA presigning (round one) among exactly 2t+1 holders of ``key_name``.

    ``participants`` maps each presigning node id to a fresh attestation document: the box keys
    the deal envelopes are sealed to (they change with every boot, unlike the key's holders).
    """

    OP: ClassVar[str] = "presign_start"
    key_name: str
    session_id: bytes
    participants: Mapping[str, bytes]

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        _participants(self.participants)
        object.__setattr__(self, "participants", MappingProxyType(dict(self.participants)))


@dataclass(frozen=True, slots=True)
class PresignStep(Message):
    """The envelopes addressed to this node in the current presigning round."""

    OP: ClassVar[str] = "presign_step"
    key_name: str
    session_id: bytes
    inbox: tuple[bytes, ...]

    def check(self) -> None:
        check_key_name(self.key_name)
        _session(self.session_id)
        if not isinstance(self.inbox, tuple | list) or len(self.inbox) > MAX_PARTICIPANTS:
            raise MalformedMessageError("inbox", f"must be a list of at most {MAX_PARTICIPANTS}")
        for envelope in self.inbox:
            _bytes("inbox", envelope, 1)
        object.__setattr__(self, "inbox", tuple(self.inbox))


@dataclass(frozen=True, slots=True)
class Presigned(Message):
    """Presigning finished: the (public) id and nonce point ``R`` of the stored presignature."""

    OP: ClassVar[str] = "presigned"
    presignature_id: bytes
    big_r: bytes

    def check(self) -> None:
        _bytes("presignature_id", self.presignature_id, 32, 32)
        _bytes("big_r", self.big_r, 33, 33)


@dataclass(frozen=True, slots=True)
class EcdsaSign(Message):
    """Sign SHA-256(``message``) with one stored presignature (used once, whatever happens).

    ``entropy`` is the coordinator's fresh re-randomiser input (:mod:`enclave.mpc.ecdsa.sign`);
    approvals are checked for SHA-256(``message``) before the presignature is touched. ``path``
    (non-hardened BIP-32, :mod:`enclave.service.derivation`; empty: the key itself) signs under
    a child key; approvals must then name the child's public key.
    """

    OP: ClassVar[str] = "ecdsa_sign"
    key_name: str
    presignature_id: bytes
    message: bytes
    entropy: bytes
    approvals: tuple[bytes, ...] = ()
    path: str = ""

    def check(self) -> None:
        check_key_name(self.key_name)
        _bytes("presignature_id", self.presignature_id, 32, 32)
        _bytes("message", self.message)
        _bytes("entropy", self.entropy, 32, 32)
        _approvals(self, self.approvals)
        if type(self.path) is not str or len(self.path) > MAX_PATH:
            raise MalformedMessageError("path", f"must be a BIP-32 path of at most {MAX_PATH}")


@dataclass(frozen=True, slots=True)
class ErrorReply(Message):
    """A refused request: ``code`` is the error's class name, ``message`` public text."""

    OP: ClassVar[str] = "error"
    code: str
    message: str

    def check(self) -> None:
        if type(self.code) is not str or not 1 <= len(self.code) <= 64:
            raise MalformedMessageError("code", "must be 1..64 characters")
        if type(self.message) is not str or len(self.message) > 2000:
            raise MalformedMessageError("message", "must be at most 2000 characters")


_TYPES: dict[str, type[Message]] = {
    cls.OP: cls
    for cls in (
        Hello,
        HelloReply,
        KeyCreate,
        DkgStep,
        DkgOutbox,
        KeyCreated,
        KeyInfo,
        KeyInfoReply,
        SignCommit,
        Commitments,
        SignShare,
        SignatureShareReply,
        DecryptPartial,
        Partial,
        PresignStart,
        PresignStep,
        Presigned,
        EcdsaSign,
        ErrorReply,
    )
}


def encode(message: Message) -> bytes:
    body: dict[str, Any] = {"op": message.OP}
    for item in fields(message):
        value = getattr(message, item.name)
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        body[item.name] = value
    return cbor2.dumps(body, canonical=True)


def decode(payload: bytes) -> Message:
    """Strictly decode one frame into its message type (validated on construction)."""
    try:
        value = cbor2.loads(payload)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError):
        raise MalformedMessageError("frame", "not CBOR") from None
    if not isinstance(value, dict):
        raise MalformedMessageError("frame", "not a CBOR map")
    try:
        canonical = cbor2.dumps(value, canonical=True)
    except (TypeError, ValueError):
        raise MalformedMessageError("frame", "unencodable value") from None
    if canonical != payload:
        raise MalformedMessageError("frame", "not canonical CBOR")
    cls = _TYPES.get(value.pop("op", None))
    if cls is None:
        raise MalformedMessageError("op", "unknown message type")
    names = {item.name for item in fields(cls)}
    if set(value) != names:
        raise MalformedMessageError(cls.OP, "missing or unknown fields")
    for name, item in value.items():
        if isinstance(item, list):
            value[name] = tuple(item)
        elif isinstance(item, dict) and not all(type(k) is str for k in item):
            raise MalformedMessageError(name, "map keys must be text")
    try:
        return cls(**value)
    except MalformedMessageError:
        raise
    except (TypeError, ValueError, AttributeError):
        raise MalformedMessageError(cls.OP, "wrong field types") from None
