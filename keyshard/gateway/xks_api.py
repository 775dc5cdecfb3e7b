"""The AWS KMS External Key Store (XKS) proxy API, v1: AES-256-GCM under keys that never exist
whole (specification: aws/aws-kms-xksproxy-api-spec, ``xks_proxy_api_spec.md``).

Routes under ``<uri_prefix>/kms/xks/v1``: ``/keys/<externalKeyId>/metadata|encrypt|decrypt`` and
``/health``, each a POST of JSON, SigV4-signed for service ``kms-xks-proxy`` (any region: the
one KMS calls from) within 5 minutes of this clock; a GET of a route is 405. Errors are the
specification's ``{"errorName", "errorMessage"}`` with its HTTP codes.

Each message gets its own AES-256 key from the cluster's threshold PRF (:mod:`enclave.mpc.prf`):

* Encrypt: the PRF is evaluated in *encrypt mode* on a fresh random nonce; the nodes evaluate at
  ``seed = H(nonce)[:16]``, whose output is the AES key. ``ciphertextMetadata`` is
  ``version (1) || seed`` (17 bytes of the 20 allowed), the IV 12 random bytes, and the AES-GCM
  AAD is exactly the specification's ``len16(aad) || aad || len8(metadata) || metadata``, so a
  changed metadata (seed) or AAD fails the tag. When ``ciphertextDataIntegrityValueAlgorithm``
  is ``SHA_256`` the CDIV is SHA-256 over ``aad || metadata || iv || ciphertext || tag``,
  computed first and then checked by decrypting the output (Appendix C's order).
* Decrypt: the seed is read from ``ciphertextMetadata`` and the PRF evaluated in *decrypt mode*.

Why an encrypt-only caller never obtains a decryption capability: the proxy refuses
``decrypt`` for a key without the DECRYPT usage; ``encrypt`` never takes a seed from the caller —
the proxy draws the nonce, and the nodes themselves hash it into the seed — so no encrypt
request, however crafted, evaluates the PRF at the seed of an existing ciphertext (that would
need a SHA-256 preimage), and the AES key never leaves the proxy. See README "XKS".
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclave.mpc.prf import SEED_LENGTH
from keyshard.client.batching import Coalescer
from keyshard.client.errors import ClientError, RemoteError
from keyshard.client.sdk import AsyncClient
from keyshard.gateway.config import XksConfig, XksKey
from keyshard.gateway.http_server import Response
from keyshard.gateway.sigv4 import SignatureError, SignedRequest, verify_request
from wire.errors import ErrorCode
from wire.messages import MAX_BATCH

__all__ = ["SERVICE", "XksEndpoint", "XksError"]

log = logging.getLogger(__name__)
#: The SigV4 service name of the XKS proxy API (specification, Appendix A).
SERVICE = "kms-xks-proxy"
_VERSION = 1
_MAX_SKEW = dt.timedelta(minutes=5)
_MAX_PLAINTEXT = 4300  # the specification's minimum, and what this proxy serves
_MAX_AAD = 8192
_OPERATIONS = ("metadata", "encrypt", "decrypt")


class XksError(Exception):
    """One of the specification's errors: HTTP status, ``errorName``, printable message."""

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message[:500]


def _validation(message: str) -> XksError:
    return XksError(400, "ValidationException", message)


class XksEndpoint:
    """The XKS routes under ``config.uri_prefix`` over one cluster client."""

    def __init__(
        self,
        config: XksConfig,
        cluster: AsyncClient,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._config = config
        self._cluster = cluster
        self._clock = clock
        self._random = random
        self.base = config.uri_prefix + "/kms/xks/v1"
        # Concurrent calls on one cluster key share one PRF request per node (up to MAX_BATCH
        # inputs): N calls in flight cost one round trip, not N.
        self._sealing: dict[str, Coalescer[None, tuple[bytes, bytes]]] = {}
        self._opening: dict[str, Coalescer[bytes, bytes]] = {}

    def _sealer(self, cluster_key: str) -> Coalescer[None, tuple[bytes, bytes]]:
        async def run(items: list[None]) -> list[tuple[bytes, bytes]]:
            return await self._cluster.encryption_keys(cluster_key, len(items))

        if cluster_key not in self._sealing:
            self._sealing[cluster_key] = Coalescer(run, max_items=MAX_BATCH, isolate=_never)
        return self._sealing[cluster_key]

    def _opener(self, cluster_key: str) -> Coalescer[bytes, bytes]:
        async def run(seeds: list[bytes]) -> list[bytes]:
            return await self._cluster.decryption_keys(cluster_key, seeds)

        if cluster_key not in self._opening:
            self._opening[cluster_key] = Coalescer(run, max_items=MAX_BATCH, isolate=_never)
        return self._opening[cluster_key]

    def serves(self, path: str) -> bool:
        return path == self.base or path.startswith(self.base + "/")

    async def __call__(self, request: SignedRequest) -> Response:
        started = time.perf_counter()
        operation, key_id = "?", "-"
        metadata: dict[str, Any] = {}
        try:
            verify_request(
                request,
                self._config.secret_of,
                region=None,
                service=SERVICE,
                now=self._clock(),
                max_skew=_MAX_SKEW,
            )
            operation, key_id = self._route(request.target.partition("?")[0])
            if request.method != "POST":
                raise XksError(405, "ValidationException", "XKS API calls are POST requests")
            body = _json(request.body)
            given = body.get("requestMetadata")
            if not isinstance(given, dict):
                raise _validation("requestMetadata is required")
            metadata = given
            result = await self._dispatch(operation, key_id, body)
        except SignatureError as error:
            return self._answer(
                started,
                operation,
                key_id,
                {},
                XksError(401, "AuthenticationFailedException", error.reason),
            )
        except XksError as error:
            return self._answer(started, operation, key_id, metadata, error)
        except Exception:  # the process boundary of one request
            log.exception("xks request failed", extra={"fields": {"event": "xks", "op": operation}})
            return self._answer(
                started,
                operation,
                key_id,
                metadata,
                XksError(500, "InternalException", "internal error"),
            )
        return self._answer(started, operation, key_id, metadata, result)

    def _route(self, path: str) -> tuple[str, str]:
        rest = path[len(self.base) :] if self.serves(path) else ""
        if rest == "/health":
            return "health", "-"
        parts = rest.split("/")
        if len(parts) == 4 and parts[0] == "" and parts[1] == "keys" and parts[3] in _OPERATIONS:
            return parts[3], parts[2]
        raise XksError(404, "InvalidUriPathException", "no XKS API at this path")

    def _answer(
        self,
        started: float,
        operation: str,
        key_id: str,
        metadata: dict[str, Any],
        outcome: dict[str, Any] | XksError,
    ) -> Response:
        fields: dict[str, object] = {
            "event": "xks",
            "op": operation,
            "key": key_id,
            "kms_request_id": str(metadata.get("kmsRequestId", "-"))[:128],
            "kms_operation": str(metadata.get("kmsOperation", "-"))[:64],
            "ms": round((time.perf_counter() - started) * 1000, 2),
        }
        if isinstance(outcome, XksError):
            fields["error"] = outcome.name
            log.info("xks request refused", extra={"fields": fields})
            body = {"errorName": outcome.name, "errorMessage": outcome.message}
            status = outcome.status
        else:
            log.info("xks request", extra={"fields": fields})
            body, status = outcome, 200
        return Response(status, json.dumps(body).encode(), (("content-type", "application/json"),))

    # -- operations ---------------------------------------------------------------------

    async def _dispatch(self, operation: str, key_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if operation == "health":
            return await self._health()
        key = self._config.key(key_id)
        if key is None:
            raise XksError(404, "KeyNotFoundException", f"no external key {key_id}")
        if operation == "metadata":
            return {"keySpec": "AES_256", "keyUsage": sorted(key.usage), "keyStatus": "ENABLED"}
        if body.get("encryptionAlgorithm") != "AES_GCM":
            raise _validation("encryptionAlgorithm must be AES_GCM")
        aad = _blob(body, "additionalAuthenticatedData", required=False, high=_MAX_AAD)
        if operation == "encrypt":
            return await self._encrypt(key, body, aad)
        return await self._decrypt(key, body, aad)

    async def _encrypt(self, key: XksKey, body: dict[str, Any], aad: bytes) -> dict[str, Any]:
        if "ENCRYPT" not in key.usage:
            raise XksError(400, "InvalidKeyUsageException", "this external key does not encrypt")
        plaintext = _blob(body, "plaintext", high=_MAX_PLAINTEXT)
        cdiv = body.get("ciphertextDataIntegrityValueAlgorithm")
        if cdiv is not None and cdiv != "SHA_256":
            raise _validation("ciphertextDataIntegrityValueAlgorithm must be SHA_256")
        seed, aes_key = await self._keys(self._sealer(key.cluster_key).submit(None))
        metadata = bytes([_VERSION]) + seed
        iv = self._random(12)
        sealed = AESGCM(aes_key).encrypt(iv, plaintext, _aad(aad, metadata))
        ciphertext, tag = sealed[:-16], sealed[-16:]
        answer = {
            "ciphertext": _b64(ciphertext),
            "ciphertextMetadata": _b64(metadata),
            "initializationVector": _b64(iv),
            "authenticationTag": _b64(tag),
        }
        if cdiv is not None:
            digest = hashlib.sha256(aad + metadata + iv + ciphertext + tag).digest()
            try:  # Appendix C: the CDIV first, then proof that what it covers decrypts
                AESGCM(aes_key).decrypt(iv, ciphertext + tag, _aad(aad, metadata))
            except InvalidTag:  # pragma: no cover -- only a fault in this process gets here
                raise XksError(500, "InternalException", "encryption did not verify") from None
            answer["ciphertextDataIntegrityValue"] = _b64(digest)
        return answer

    async def _decrypt(self, key: XksKey, body: dict[str, Any], aad: bytes) -> dict[str, Any]:
        if "DECRYPT" not in key.usage:
            raise XksError(400, "InvalidKeyUsageException", "this external key does not decrypt")
        ciphertext = _blob(body, "ciphertext", low=0, high=_MAX_PLAINTEXT)
        iv = _blob(body, "initializationVector", high=16)
        tag = _blob(body, "authenticationTag", high=16)
        metadata = _blob(body, "ciphertextMetadata", required=False, high=20)
        if len(iv) not in (12, 16) or len(tag) != 16:
            raise _validation("the IV is 12 or 16 bytes and the tag 16")
        if len(metadata) != 1 + SEED_LENGTH or metadata[0] != _VERSION:
            raise XksError(
                400, "InvalidCiphertextException", "ciphertextMetadata is not this proxy's"
            )
        aes_key = await self._keys(self._opener(key.cluster_key).submit(metadata[1:]))
        try:
            plaintext = AESGCM(aes_key).decrypt(iv, ciphertext + tag, _aad(aad, metadata))
        except InvalidTag:
            raise XksError(
                400,
                "InvalidCiphertextException",
                "the ciphertext, IV, tag, metadata or AAD is not the one encrypted",
            ) from None
        return {"plaintext": _b64(plaintext)}

    async def _health(self) -> dict[str, Any]:
        """Deep: one encrypt-mode PRF evaluation by t+1 enclaves on the first key (no decrypt
        capability is exercised, and nothing is stored)."""
        status = "ACTIVE"
        if self._config.keys:
            try:
                await self._cluster.encryption_keys(self._config.keys[0].cluster_key, 1)
            except ClientError:
                status = "UNAVAILABLE"
        nodes = [n.node_id for n in self._cluster.profile.nodes][:10]
        return {
            "xksProxyFleetSize": 1,
            "xksProxyVendor": "Keyshard",
            "xksProxyModel": "Keyshard gateway XKS proxy 1",
            "ekmVendor": "Keyshard",
            "ekmFleetDetails": [
                {"id": node, "model": "Keyshard threshold cluster node", "healthStatus": status}
                for node in nodes
            ],
        }

    @staticmethod
    async def _keys(work: Any) -> Any:
        try:
            return await work
        except RemoteError as error:
            if error.error_code in (ErrorCode.QUORUM_NOT_MET, ErrorCode.APPROVAL_UNLISTED):
                raise XksError(
                    403, "AccessDeniedException", "the key's policy requires approvals"
                ) from None
            if error.error_code is ErrorCode.UNKNOWN_KEY:
                raise XksError(
                    404, "KeyNotFoundException", "the cluster holds no such key"
                ) from None
            raise XksError(
                500, "InternalException", f"a node refused: {error.error_code.value}"
            ) from None
        except ClientError as error:
            raise XksError(
                503, "DependencyTimeoutException", f"the cluster did not answer: {error.code}"
            ) from None


def _never(error: BaseException) -> bool:
    """A PRF batch fails for its key (unreachable nodes, a policy), never for one input."""
    return False


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise _validation("the body is not JSON") from None
    if not isinstance(body, dict):
        raise _validation("the body is not a JSON object")
    return body


def _blob(
    body: dict[str, Any], name: str, *, required: bool = True, low: int = 1, high: int
) -> bytes:
    value = body.get(name)
    if value is None:
        if required:
            raise _validation(f"{name} is required")
        return b""
    if not isinstance(value, str):
        raise _validation(f"{name} must be a Base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _validation(f"{name} is not Base64") from None
    if len(data) > high:
        raise XksError(501, "UnsupportedOperationException", f"{name} is longer than {high} bytes")
    if len(data) < low:
        raise _validation(f"{name} is empty")
    return data


def _aad(aad: bytes, metadata: bytes) -> bytes:
    """The specification's AES-GCM AAD: ``len16(aad) || aad || len8(metadata) || metadata``."""
    return len(aad).to_bytes(2, "big") + aad + len(metadata).to_bytes(1, "big") + metadata


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
