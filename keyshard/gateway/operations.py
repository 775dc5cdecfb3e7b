"""The AWS KMS operations the gateway serves, over a Keyshard cluster reached through the SDK.

Each operation reads its fields (:class:`~keyshard.gateway.params.Params`), resolves the key the
caller named (key id, key ARN, alias name or alias ARN), checks the caller's access rule, and asks
the cluster through :class:`keyshard.AsyncClient`. The gateway is a client of the cluster like any
other: it holds no share, and every signature and decryption takes t+1 (ECDSA: 2t+1) enclaves.

Key specs, mapped onto key suites:

================================  ==============  ===================================================
KMS KeySpec (KeyUsage)            Keyshard suite  operations
================================  ==============  ===================================================
``SYMMETRIC_DEFAULT``             ``ed25519``     Encrypt, Decrypt, ReEncrypt, GenerateDataKey*:
(ENCRYPT_DECRYPT)                                 threshold ECIES; the "symmetric" key is a
                                                  threshold key whose decryption takes t+1 nodes
``ECC_SECG_P256K1`` (SIGN_VERIFY) ``ecdsa-...``   Sign/Verify ``ECDSA_SHA_256``, RAW and DIGEST
``ECC_NIST_EDWARDS25519``         ``ed25519``     Sign/Verify ``ED25519_SHA_512`` (RAW: pure
(SIGN_VERIFY)                                     Ed25519, as KMS; DIGEST is Ed25519ph, not served)
================================  ==============  ===================================================

Verify checks the signature here with the public key (pyca/cryptography), as KMS itself does.
Keys whose approval policy covers an operation are refused with ``AccessDeniedException`` for it:
KMS's API has no place to carry approvals. EnableKey, DisableKey, ScheduleKeyDeletion and
CancelKeyDeletion map onto the cluster's own key states (every holder changes; a disabled key
answers ``DisabledException``, one pending deletion ``KMSInvalidStateException``, as KMS does).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keyshard.client.errors import (
    ChannelError,
    ClientError,
    InvalidInputError,
    KeyNotFoundError,
    ProtocolError,
    RemoteError,
    UnavailableError,
)
from keyshard.client.keys import KeyDescription
from keyshard.client.sdk import AsyncClient
from keyshard.gateway.config import AccessKey, GatewayConfig
from keyshard.gateway.envelope import Blob, BlobError, ContextError, associated_data, check_context
from keyshard.gateway.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    DisabledError,
    IncorrectKeyError,
    InternalError,
    InvalidAliasNameError,
    InvalidCiphertextError,
    InvalidKeyUsageError,
    InvalidMarkerError,
    InvalidSignatureError,
    InvalidStateError,
    KeyUnavailableError,
    KmsError,
    NotFoundError,
    UnknownOperationError,
    UnsupportedOperationError,
    ValidationError,
)
from keyshard.gateway.params import Params, b64
from keyshard.gateway.registry import ALIAS_PATTERN, KeyRecord, Registry
from wire.approvals import Operation
from wire.errors import ErrorCode

__all__ = ["OPERATIONS", "SPECS", "Gateway", "KeySpec"]

#: The largest plaintext Encrypt takes and the largest message Sign takes (KMS's limits).
MAX_PLAINTEXT = 4096
MAX_MESSAGE = 4096
#: A ciphertext blob: header + threshold-ECIES overhead over a 4 KiB plaintext fits easily.
MAX_BLOB = 6144
_STATE_CODES = frozenset({ErrorCode.KEY_PENDING_DELETION, ErrorCode.KEY_STATE})
_APPROVAL_CODES = frozenset(
    {
        ErrorCode.APPROVAL_MISMATCH,
        ErrorCode.APPROVAL_UNLISTED,
        ErrorCode.APPROVAL_EXPIRED,
        ErrorCode.APPROVAL_SIGNATURE,
        ErrorCode.APPROVAL_REUSED,
        ErrorCode.QUORUM_NOT_MET,
    }
)


@dataclass(frozen=True, slots=True)
class KeySpec:
    key_spec: str
    key_usage: str
    suite: str
    signing: tuple[str, ...] = ()
    encryption: tuple[str, ...] = ()


SPECS: dict[str, KeySpec] = {
    s.key_spec: s
    for s in (
        KeySpec(
            "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "ed25519", encryption=("SYMMETRIC_DEFAULT",)
        ),
        KeySpec("ECC_SECG_P256K1", "SIGN_VERIFY", "ecdsa-secp256k1", signing=("ECDSA_SHA_256",)),
        KeySpec("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", "ed25519", signing=("ED25519_SHA_512",)),
    )
}

Handler = Callable[["Gateway", AccessKey, Params], Awaitable[dict[str, Any]]]
OPERATIONS: dict[str, Handler] = {}


def _operation(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        OPERATIONS[name] = handler
        return handler

    return register


class Gateway:
    """The KMS operations over one cluster. ``random`` gives data keys (OS randomness)."""

    def __init__(
        self,
        config: GatewayConfig,
        registry: Registry,
        cluster: AsyncClient,
        *,
        threshold: int | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.config = config
        self.registry = registry
        self.cluster = cluster
        self._threshold = threshold
        self._random = random

    async def handle(
        self, operation: str, caller: AccessKey, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Run ``operation`` for ``caller``; every failure is a :class:`KmsError`."""
        handler = OPERATIONS.get(operation)
        if handler is None:
            if operation in _NOT_SERVED:
                raise UnsupportedOperationError(
                    f"{operation} is not served by the Keyshard gateway"
                )
            raise UnknownOperationError(f"unknown operation {operation}")
        self._allow(caller, operation)
        try:
            return await handler(self, caller, Params(body))
        except KmsError:
            raise
        except ClientError as error:
            raise _from_client(error) from None

    # -- names ----------------------------------------------------------------------------

    def arn(self, key_id: str) -> str:
        return f"arn:aws:kms:{self.config.region}:{self.config.account}:key/{key_id}"

    def alias_arn(self, alias: str) -> str:
        return f"arn:aws:kms:{self.config.region}:{self.config.account}:{alias}"

    def _resolve(self, key_id: str) -> KeyRecord:
        """A key id, key ARN, alias name or alias ARN -> the key, or NotFoundError."""
        name = key_id
        prefix = f"arn:aws:kms:{self.config.region}:{self.config.account}:"
        if key_id.startswith("arn:"):
            if not key_id.startswith(prefix):
                raise NotFoundError(
                    f"Invalid arn {key_id}: not of this gateway's region and account"
                )
            name = key_id[len(prefix) :]
            if name.startswith("key/"):
                name = name[len("key/") :]
            elif not name.startswith("alias/"):
                raise NotFoundError(f"Invalid arn {key_id}")
        if name.startswith("alias/"):
            target = self.registry.target(name)
            if target is None:
                raise NotFoundError(f"Alias {self.alias_arn(name)} is not found.")
            name = target
        record = self.registry.get(name)
        if record is None:
            raise NotFoundError(f"Key '{self.arn(name)}' does not exist")
        return record

    def _allow(self, caller: AccessKey, operation: str, record: KeyRecord | None = None) -> None:
        resource = "*" if record is None else self.arn(record.key_id)
        allowed = caller.allows_operation(operation) and (
            record is None
            or caller.allows_key(record.key_id, self.registry.aliases_of(record.key_id))
        )
        if not allowed:
            raise AccessDeniedError(
                f"User: {caller.access_key_id} is not authorized to perform: kms:{operation} "
                f"on resource: {resource} (no access rule of the gateway allows it)"
            )

    def key(self, caller: AccessKey, p: Params, operation: str, field: str = "KeyId") -> KeyRecord:
        record = self._resolve(p.required(field))
        self._allow(caller, operation, record)
        return record

    async def _usable(self, record: KeyRecord, operation: Operation) -> KeyDescription:
        """The cluster's description of the key, refused if its policy wants approvals."""
        key = await self.cluster.describe_key(record.cluster_name)
        if key.state == "disabled":  # Encrypt never reaches a node: refused here, as KMS does
            raise DisabledError(f"{self.arn(record.key_id)} is disabled.")
        if key.state == "pending_deletion":
            raise InvalidStateError(f"{self.arn(record.key_id)} is pending deletion.")
        if key.policy is not None and operation in key.policy.operations:
            raise AccessDeniedError(
                f"key {record.key_id} requires {key.policy.quorum} approval(s) to "
                f"{operation.value}; the KMS API cannot carry approvals: use the Keyshard SDK "
                "or CLI for this key"
            )
        return key

    def metadata(
        self, record: KeyRecord, state: str = "enabled", delete_at: int | None = None
    ) -> dict[str, Any]:
        """KMS's KeyMetadata for ``record`` in the cluster's ``state`` (enabled, disabled,
        pending_deletion; ``delete_at`` its UTC seconds)."""
        spec = SPECS[record.key_spec]
        data: dict[str, Any] = {
            "AWSAccountId": self.config.account,
            "KeyId": record.key_id,
            "Arn": self.arn(record.key_id),
            "CreationDate": record.created,
            "Enabled": state == "enabled",
            "Description": record.description,
            "KeyUsage": record.key_usage,
            "KeyState": _KEY_STATES.get(state, "Unavailable"),
            "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": record.key_spec,
            "KeySpec": record.key_spec,
            "MultiRegion": False,
        }
        if state == "pending_deletion" and delete_at is not None:
            data["DeletionDate"] = delete_at
        if spec.encryption:
            data["EncryptionAlgorithms"] = list(spec.encryption)
        if spec.signing:
            data["SigningAlgorithms"] = list(spec.signing)
        return data

    # -- encryption helpers ---------------------------------------------------------------

    def _encryption_key(self, caller: AccessKey, p: Params, op: str, field: str) -> KeyRecord:
        record = self.key(caller, p, op, field)
        if record.key_usage != "ENCRYPT_DECRYPT":
            raise InvalidKeyUsageError(f"{self.arn(record.key_id)} key usage is {record.key_usage}")
        return record

    async def _seal(self, record: KeyRecord, plaintext: bytes, context: dict[str, str]) -> bytes:
        await self._usable(record, Operation.DECRYPT)  # a key nobody could decrypt here: refuse
        header = Blob(record.key_id, b"")
        sealed = await self.cluster.encrypt(
            record.cluster_name, plaintext, context=associated_data(header, context)
        )
        return Blob(record.key_id, sealed).to_bytes()

    async def _open(
        self,
        caller: AccessKey,
        blob_bytes: bytes,
        context: dict[str, str],
        op: str,
        key_id: str | None,
    ) -> tuple[KeyRecord, bytes]:
        try:
            blob = Blob.from_bytes(blob_bytes)
        except BlobError:
            raise InvalidCiphertextError(
                "The ciphertext is not a Keyshard gateway ciphertext"
            ) from None
        record = self.registry.get(blob.key_id)
        if record is None:
            raise InvalidCiphertextError("The ciphertext names no key of this gateway")
        if key_id is not None and self._resolve(key_id).key_id != record.key_id:
            raise IncorrectKeyError(
                "The key ID in the request does not identify the key that encrypted the ciphertext"
            )
        self._allow(caller, op, record)
        await self._usable(record, Operation.DECRYPT)
        try:
            plaintext = await self.cluster.decrypt(
                record.cluster_name, blob.ciphertext, context=associated_data(blob, context)
            )
        except InvalidInputError:
            raise InvalidCiphertextError(
                "The ciphertext does not decrypt: wrong encryption context, or altered"
            ) from None
        return record, plaintext


def _context(p: Params, name: str = "EncryptionContext") -> dict[str, str]:
    try:
        return check_context(p.raw(name))
    except ContextError as error:
        raise ValidationError(str(error)) from None


def _from_client(error: ClientError) -> KmsError:
    """The KMS answer for an SDK error: the caller's fault (400) or the cluster's (500)."""
    answer: KmsError = InternalError(f"cluster error: {error.code}")
    if isinstance(error, KeyNotFoundError):
        answer = NotFoundError(f"the cluster holds no key {error.name}")
    elif isinstance(error, UnavailableError | ChannelError):
        answer = KeyUnavailableError(f"too few of the key's holders are reachable: {error}")
    elif isinstance(error, RemoteError) and error.error_code in _APPROVAL_CODES:
        answer = AccessDeniedError(f"the cluster requires approvals: {error.message}")
    elif isinstance(error, RemoteError) and error.error_code is ErrorCode.KEY_DISABLED:
        answer = DisabledError(f"the key is disabled: {error.message}")
    elif isinstance(error, RemoteError) and error.error_code in _STATE_CODES:
        answer = InvalidStateError(error.message)
    elif isinstance(error, RemoteError):
        answer = (
            KeyUnavailableError(f"a node is busy: {error.error_code.value}")
            if error.retryable
            else InternalError(f"a node refused: {error.error_code.value}")
        )
    elif isinstance(error, InvalidInputError):
        answer = ValidationError(str(error))
    elif isinstance(error, ProtocolError):
        answer = InternalError("an answer of the cluster did not verify")
    return answer


#: KMS operations this gateway knows of but does not serve (UnsupportedOperationException).
_NOT_SERVED = frozenset(
    {
        "PutKeyPolicy",
        "GetKeyPolicy",
        "CreateGrant",
        "ImportKeyMaterial",
        "GenerateMac",
        "VerifyMac",
        "UpdateAlias",
        "TagResource",
        "EnableKeyRotation",
    }
)


# -- keys and aliases -----------------------------------------------------------------------


@_operation("CreateKey")
async def _create_key(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    p.refuse("Policy", "CustomKeyStoreId", "XksKeyId", "Tags", "MultiRegion")
    origin = p.string("Origin", default="AWS_KMS")
    if origin != "AWS_KMS":
        raise UnsupportedOperationError(
            "Origin must be AWS_KMS: the key is born by DKG in the cluster"
        )
    spec_name = p.string("KeySpec") or p.string("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    spec = SPECS.get(spec_name)
    if spec is None:
        raise UnsupportedOperationError(
            f"KeySpec {spec_name} is not offered; threshold keys are {', '.join(SPECS)}"
        )
    usage = p.string("KeyUsage", default=spec.key_usage)
    if usage != spec.key_usage:
        raise ValidationError(f"KeySpec {spec_name} is for KeyUsage {spec.key_usage}")
    description = p.string("Description", default="") or ""
    if len(description) > 8192:
        raise ValidationError("Description is at most 8192 characters")
    record = KeyRecord(
        gw.registry.new_key_id(), spec_name, usage, description, round(time.time(), 3)
    )
    await gw.cluster.create_key(record.cluster_name, suite=spec.suite, threshold=gw._threshold)
    gw.registry.add(record)
    return {"KeyMetadata": gw.metadata(record)}


@_operation("DescribeKey")
async def _describe_key(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    record = gw.key(caller, p, "DescribeKey")
    key = await gw.cluster.describe_key(record.cluster_name, refresh=True)
    return {"KeyMetadata": gw.metadata(record, key.state, key.delete_at)}


#: The cluster's key states as KMS names them ("mixed": a change reached only some holders).
_KEY_STATES = {
    "enabled": "Enabled",
    "disabled": "Disabled",
    "pending_deletion": "PendingDeletion",
}


@_operation("EnableKey")
async def _enable_key(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    await gw.cluster.enable_key(gw.key(caller, p, "EnableKey").cluster_name)
    return {}


@_operation("DisableKey")
async def _disable_key(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    await gw.cluster.disable_key(gw.key(caller, p, "DisableKey").cluster_name)
    return {}


@_operation("ScheduleKeyDeletion")
async def _schedule_key_deletion(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    record = gw.key(caller, p, "ScheduleKeyDeletion")
    days = p.integer("PendingWindowInDays", low=7, high=30) or 30
    key = await gw.cluster.schedule_key_deletion(record.cluster_name, days=days)
    return {
        "KeyId": gw.arn(record.key_id),
        "DeletionDate": key.delete_at,
        "KeyState": "PendingDeletion",
        "PendingWindowInDays": days,
    }


@_operation("CancelKeyDeletion")
async def _cancel_key_deletion(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    record = gw.key(caller, p, "CancelKeyDeletion")
    await gw.cluster.cancel_key_deletion(record.cluster_name)
    return {"KeyId": gw.arn(record.key_id)}


def _page(p: Params, items: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    limit = p.integer("Limit", low=1, high=1000) or 100
    marker = p.string("Marker")
    start = 0
    if marker is not None:
        if not marker.isdigit() or int(marker) > len(items):
            raise InvalidMarkerError("the Marker is not one this gateway gave")
        start = int(marker)
    page = items[start : start + limit]
    more = start + limit < len(items)
    return page, (
        {"Truncated": True, "NextMarker": str(start + limit)} if more else {"Truncated": False}
    )


@_operation("ListKeys")
async def _list_keys(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    page, tail = _page(p, list(gw.registry))
    keys = [{"KeyId": r.key_id, "KeyArn": gw.arn(r.key_id)} for r in page]
    return {"Keys": keys, **tail}


def _alias_name(p: Params) -> str:
    alias = p.required("AliasName")
    if not ALIAS_PATTERN.fullmatch(alias):
        raise ValidationError("AliasName must be alias/ followed by letters, digits, / _ -")
    if alias.startswith("alias/aws/"):
        raise InvalidAliasNameError("alias/aws/ names are reserved for AWS managed keys")
    return alias


@_operation("CreateAlias")
async def _create_alias(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    alias = _alias_name(p)
    record = gw.key(caller, p, "CreateAlias", "TargetKeyId")
    if gw.registry.target(alias) is not None:
        raise AlreadyExistsError(f"An alias with the name {gw.alias_arn(alias)} already exists")
    gw.registry.set_alias(alias, record.key_id)
    return {}


@_operation("DeleteAlias")
async def _delete_alias(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    alias = _alias_name(p)
    target = gw.registry.target(alias)
    if target is None:
        raise NotFoundError(f"Alias {gw.alias_arn(alias)} is not found.")
    record = gw.registry.get(target)
    if record is not None:
        gw._allow(caller, "DeleteAlias", record)
    gw.registry.delete_alias(alias)
    return {}


@_operation("ListAliases")
async def _list_aliases(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    only = p.string("KeyId")
    aliases = gw.registry.aliases()
    if only is not None:
        key_id = gw._resolve(only).key_id
        aliases = {a: k for a, k in aliases.items() if k == key_id}
    entries = [
        {"AliasName": a, "AliasArn": gw.alias_arn(a), "TargetKeyId": k} for a, k in aliases.items()
    ]
    page, tail = _page(p, entries)
    return {"Aliases": page, **tail}


# -- signatures -----------------------------------------------------------------------------


def _signing(
    gw: Gateway, caller: AccessKey, p: Params, op: str
) -> tuple[KeyRecord, str, bytes, bool]:
    record = gw.key(caller, p, op)
    if record.key_usage != "SIGN_VERIFY":
        raise InvalidKeyUsageError(f"{gw.arn(record.key_id)} key usage is {record.key_usage}")
    algorithm = p.required("SigningAlgorithm")
    spec = SPECS[record.key_spec]
    if algorithm not in spec.signing:
        raise InvalidKeyUsageError(
            f"Algorithm {algorithm} is incompatible with key spec {record.key_spec}"
            f" (supported: {', '.join(spec.signing)})"
        )
    digest = p.choice("MessageType", ("RAW", "DIGEST", "EXTERNAL_MU"), default="RAW") == "DIGEST"
    message = p.blob("Message", high=MAX_MESSAGE)
    if digest and algorithm == "ED25519_SHA_512":
        raise ValidationError("ED25519_SHA_512 signs RAW messages (DIGEST is ED25519_PH_SHA_512)")
    if p.string("MessageType") == "EXTERNAL_MU":
        raise ValidationError("EXTERNAL_MU is for ML-DSA keys")
    if digest and len(message) != 32:
        raise ValidationError("a DIGEST message for ECDSA_SHA_256 is 32 bytes")
    return record, algorithm, message, digest


@_operation("Sign")
async def _sign(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    record, algorithm, message, digest = _signing(gw, caller, p, "Sign")
    await gw._usable(record, Operation.SIGN)
    if digest:
        signature = (await gw.cluster.sign_ecdsa_digest(record.cluster_name, message)).to_der()
    else:
        signature = await gw.cluster.sign(record.cluster_name, message)
    return {
        "KeyId": gw.arn(record.key_id),
        "Signature": b64(signature),
        "SigningAlgorithm": algorithm,
    }


@_operation("Verify")
async def _verify(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    record, algorithm, message, digest = _signing(gw, caller, p, "Verify")
    signature = p.blob("Signature", high=6144)
    key = await gw.cluster.describe_key(record.cluster_name)
    public = serialization.load_pem_public_key(key.public_key_pem().encode())
    try:
        if isinstance(public, Ed25519PublicKey):
            public.verify(signature, message)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            chosen: Any = utils.Prehashed(hashes.SHA256()) if digest else hashes.SHA256()
            public.verify(signature, message, ec.ECDSA(chosen))
        else:  # pragma: no cover -- every spec is one of the above
            raise InternalError("unexpected public key type")
    except (CryptoInvalidSignature, ValueError):
        raise InvalidSignatureError("The signature does not verify") from None
    return {"KeyId": gw.arn(record.key_id), "SignatureValid": True, "SigningAlgorithm": algorithm}


@_operation("GetPublicKey")
async def _get_public_key(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    record = gw.key(caller, p, "GetPublicKey")
    spec = SPECS[record.key_spec]
    if not spec.signing:
        raise UnsupportedOperationError(
            f"{gw.arn(record.key_id)} is a symmetric key: it has no public key to get"
        )
    key = await gw.cluster.describe_key(record.cluster_name)
    der = serialization.load_pem_public_key(key.public_key_pem().encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "KeyId": gw.arn(record.key_id),
        "PublicKey": b64(der),
        "CustomerMasterKeySpec": record.key_spec,
        "KeySpec": record.key_spec,
        "KeyUsage": record.key_usage,
        "SigningAlgorithms": list(spec.signing),
    }


# -- encryption ----------------------------------------------------------------------------


def _algorithm(p: Params, name: str = "EncryptionAlgorithm") -> str:
    return p.choice(name, ("SYMMETRIC_DEFAULT",), default="SYMMETRIC_DEFAULT") or ""


@_operation("Encrypt")
async def _encrypt(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    record = gw._encryption_key(caller, p, "Encrypt", "KeyId")
    algorithm = _algorithm(p)
    plaintext = p.blob("Plaintext", high=MAX_PLAINTEXT)
    blob = await gw._seal(record, plaintext, _context(p))
    return {
        "CiphertextBlob": b64(blob),
        "KeyId": gw.arn(record.key_id),
        "EncryptionAlgorithm": algorithm,
    }


@_operation("Decrypt")
async def _decrypt(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    p.refuse("Recipient", "DryRun")
    algorithm = _algorithm(p)
    blob = p.blob("CiphertextBlob", high=MAX_BLOB)
    record, plaintext = await gw._open(caller, blob, _context(p), "Decrypt", p.string("KeyId"))
    return {
        "KeyId": gw.arn(record.key_id),
        "Plaintext": b64(plaintext),
        "EncryptionAlgorithm": algorithm,
    }


def _data_key_length(p: Params) -> int:
    spec = p.choice("KeySpec", ("AES_256", "AES_128"))
    count = p.integer("NumberOfBytes", low=1, high=1024)
    if (spec is None) == (count is None):
        raise ValidationError("give exactly one of KeySpec and NumberOfBytes")
    return count if count is not None else (32 if spec == "AES_256" else 16)


async def _data_key(
    gw: Gateway, caller: AccessKey, p: Params, op: str
) -> tuple[KeyRecord, bytes, bytes]:
    p.refuse("Recipient", "DryRun")
    record = gw._encryption_key(caller, p, op, "KeyId")
    length = _data_key_length(p)
    data_key = gw._random(length)
    return record, data_key, await gw._seal(record, data_key, _context(p))


@_operation("GenerateDataKey")
async def _generate_data_key(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    record, data_key, blob = await _data_key(gw, caller, p, "GenerateDataKey")
    return {"CiphertextBlob": b64(blob), "Plaintext": b64(data_key), "KeyId": gw.arn(record.key_id)}


@_operation("GenerateDataKeyWithoutPlaintext")
async def _generate_data_key_without_plaintext(
    gw: Gateway, caller: AccessKey, p: Params
) -> dict[str, Any]:
    record, _, blob = await _data_key(gw, caller, p, "GenerateDataKeyWithoutPlaintext")
    return {"CiphertextBlob": b64(blob), "KeyId": gw.arn(record.key_id)}


@_operation("GenerateRandom")
async def _generate_random(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    p.refuse("CustomKeyStoreId", "Recipient")
    count = p.integer("NumberOfBytes", low=1, high=1024)
    if count is None:
        raise ValidationError("NumberOfBytes is required")
    return {"Plaintext": b64(gw._random(count))}


@_operation("ReEncrypt")
async def _re_encrypt(gw: Gateway, caller: AccessKey, p: Params) -> dict[str, Any]:
    """Decrypt under the source key (ReEncryptFrom) and encrypt under the destination
    (ReEncryptTo); the caller needs ``ReEncrypt`` on both keys."""
    p.refuse("DryRun")
    source_algorithm = _algorithm(p, "SourceEncryptionAlgorithm")
    destination_algorithm = _algorithm(p, "DestinationEncryptionAlgorithm")
    destination = gw._encryption_key(caller, p, "ReEncrypt", "DestinationKeyId")
    blob = p.blob("CiphertextBlob", high=MAX_BLOB)
    source, plaintext = await gw._open(
        caller, blob, _context(p, "SourceEncryptionContext"), "ReEncrypt", p.string("SourceKeyId")
    )
    sealed = await gw._seal(destination, plaintext, _context(p, "DestinationEncryptionContext"))
    return {
        "CiphertextBlob": b64(sealed),
        "SourceKeyId": gw.arn(source.key_id),
        "KeyId": gw.arn(destination.key_id),
        "SourceEncryptionAlgorithm": source_algorithm,
        "DestinationEncryptionAlgorithm": destination_algorithm,
    }
