"""The emulated KMS: AWS KMS's JSON protocol on a local port, with attested ``Recipient`` requests.

Why moto underneath: moto's KMS already speaks ``TrentService`` JSON exactly as boto3 expects (key
creation, aliases, key policies, Encrypt/Decrypt/GenerateDataKey ciphertext blobs, AWS's error shapes)
and is maintained against botocore's models. It ignores two things Keyshard depends on, and this
module adds exactly those as a WSGI layer in front of moto:

1. **Key-policy evaluation with conditions** (:mod:`keyshard.dev.kms_policy`). Every request is
   decided on the policy of every key it touches, for the action AWS checks on that key — the
   ciphertext's own key for ``Decrypt``, ``kms:ReEncryptFrom`` and ``kms:ReEncryptTo`` for
   ``ReEncrypt``, the alias's keys for alias changes (:mod:`keyshard.dev.kms_requests`). An
   operation without a plan there never reaches moto. The attestation condition keys
   ``kms:RecipientAttestation:ImageSha384`` and ``kms:RecipientAttestation:PCR<n>`` are present only
   when the request carried a verified attestation document.
2. **``Recipient``** on ``Decrypt``, ``GenerateDataKey`` and ``GenerateRandom``: the attestation
   document is verified against the *pinned emulated root* (never anything the caller sends), must be
   fresh and must bind an RSA public key; the plaintext is then sealed to that key as CMS
   EnvelopedData (:func:`attestation.recipient.seal_for_recipient`) in ``CiphertextForRecipient`` and
   ``Plaintext`` is omitted — as AWS does.

In a cluster it serves TLS only (:mod:`keyshard.dev.kms_tls`): the enclave verifies the
certificate against the dev CA measured into its image, as a real enclave verifies AWS's, so a parent
that answers in KMS's place cannot choose a node's data key.

Callers are identified by the access key id of their SigV4 ``Authorization`` header, mapped to a
principal ARN by configuration; an unknown key id gets ``UnrecognizedClientException`` like AWS.
Signatures themselves are not checked: the emulator authorises, it does not authenticate (it listens on
loopback only, and emulation is not a security boundary). moto never sees the caller's request
itself: the layer forwards a request it builds (target, region, body with key references replaced by
the authorised ARNs), and holds moto's answer to the keys it authorised.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import io
import json
import logging
import re
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import BaseWSGIServer, make_server

from attestation.errors import AttestationError
from attestation.recipient import seal_for_recipient
from attestation.roots import TrustedRoots, load_pem_root
from attestation.verifier import AttestationVerifier
from keyshard.dev.kms_policy import (
    ATTESTATION_KEY_PREFIX,
    Decision,
    RequestContext,
    evaluate,
)
from keyshard.dev.kms_requests import ACCOUNT_OPERATIONS, KmsError, Plan, is_known, plan
from keyshard.dev.kms_state import KmsKeyState
from keyshard.dev.kms_tls import KmsTls, server_context

__all__ = [
    "ACCOUNT_OPERATIONS",
    "KmsError",
    "KmsServer",
    "RecipientKms",
    "attestation_condition_keys",
    "start_kms_server",
]

log = logging.getLogger("keyshard.dev.kms")

WsgiEnviron = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[WsgiEnviron, StartResponse], Iterable[bytes]]

#: Operations that accept ``Recipient`` (those Keyshard uses; AWS also has DeriveSharedSecret and
#: GenerateDataKeyPair).
RECIPIENT_OPERATIONS = frozenset({"Decrypt", "GenerateDataKey", "GenerateRandom"})
RECIPIENT_ALGORITHM = "RSAES_OAEP_SHA_256"
#: How old an attestation document KMS accepts. AWS does not publish its window; documents are
#: requested just before the call, so five minutes leaves room for clock skew only.
DEFAULT_MAX_DOCUMENT_AGE = dt.timedelta(minutes=5)

_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/\d{8}/([a-z0-9-]+)/kms/aws4_request")


def attestation_condition_keys(pcrs: Mapping[int, bytes]) -> dict[str, str]:
    """The ``kms:RecipientAttestation:*`` condition keys for a verified document's PCRs.

    ``ImageSha384`` is PCR0, the measurement of the whole enclave image file.
    """
    keys = {f"{ATTESTATION_KEY_PREFIX}PCR{index}": value.hex() for index, value in pcrs.items()}
    if 0 in pcrs:
        keys[f"{ATTESTATION_KEY_PREFIX}ImageSha384"] = pcrs[0].hex()
    return keys


@dataclass(frozen=True, slots=True)
class _Recipient:
    public_key: rsa.RSAPublicKey
    condition_keys: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Caller:
    principal_arn: str
    region: str


@dataclass(frozen=True, slots=True)
class _Resolver:
    """Key references resolved by moto itself (DescribeKey), in the caller's region."""

    kms: RecipientKms
    caller: _Caller

    def key_arn(self, key_id: str) -> str | None:
        return self.kms._key_arn(key_id, self.caller)


@dataclass
class RecipientKms:
    """WSGI middleware adding key-policy conditions and ``Recipient`` to moto's KMS."""

    inner: WsgiApp
    verifier: AttestationVerifier
    principals: Mapping[str, str]
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    max_document_age: dt.timedelta = DEFAULT_MAX_DOCUMENT_AGE
    #: Called after every successful request that may change keys (the cluster's key state on
    #: disk, :mod:`keyshard.dev.kms_state`); reads and cryptographic uses change nothing.
    on_change: Callable[[], object] | None = None

    def __call__(self, environ: WsgiEnviron, start_response: StartResponse) -> Iterable[bytes]:
        # moto takes the action from whatever follows the target's last dot (or from an Action
        # query parameter): anything but a POST naming a planned TrentService operation is
        # refused here, never passed on.
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = target.removeprefix("TrentService.")
        try:
            if (
                environ.get("REQUEST_METHOD") != "POST"
                or not target.startswith("TrentService.")
                or not is_known(operation)
            ):
                raise KmsError("UnknownOperationException", f"unknown operation {target!r}")
            status, body = self._handle(operation, environ)
            if status == 200 and self.on_change is not None and _may_change(operation):
                self.on_change()
        except KmsError as error:
            log.info(
                "kms refused",
                extra={
                    "fields": {"event": "kms_refused", "operation": operation, "code": error.code}
                },
            )
            status, body = error.status, {"__type": error.code, "message": error.message}
        payload = json.dumps(body).encode()
        start_response(
            f"{status} {'OK' if status == 200 else 'Bad Request'}",
            [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    # -- request handling -------------------------------------------------------------------------

    def _handle(self, operation: str, environ: WsgiEnviron) -> tuple[int, dict[str, Any]]:
        caller = self._caller(environ)
        request = _read_json(environ)
        recipient = self._recipient(request.pop("Recipient", None))
        condition_keys = recipient.condition_keys if recipient else {}

        # Every key the request touches, each for the action AWS checks on it, before moto runs.
        planned = plan(operation, request, _Resolver(self, caller))
        for touch in planned.touches:
            self._authorise(touch.action, caller, touch.key_arn, condition_keys)
        if recipient is not None and operation not in RECIPIENT_OPERATIONS:
            raise KmsError(
                "ValidationException", f"the emulated KMS does not accept Recipient on {operation}"
            )

        status, response = self._forward(operation, request | dict(planned.rewrite), caller)
        if status != 200:
            return status, response
        _check_answer(operation, response, planned)
        if recipient is not None:
            response = _seal_response(response, recipient.public_key)
        return status, response

    def _caller(self, environ: WsgiEnviron) -> _Caller:
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        principal = self.principals.get(match.group(1)) if match else None
        if match is None or principal is None:
            raise KmsError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        return _Caller(principal, match.group(2))

    def _recipient(self, recipient: object) -> _Recipient | None:
        if recipient is None:
            return None
        if not isinstance(recipient, dict):
            raise KmsError("ValidationException", "Recipient must be a structure")
        if recipient.get("KeyEncryptionAlgorithm") != RECIPIENT_ALGORITHM:
            raise KmsError(
                "ValidationException", f"KeyEncryptionAlgorithm must be {RECIPIENT_ALGORITHM}"
            )
        try:
            document = base64.b64decode(recipient.get("AttestationDocument", ""), validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise KmsError("ValidationException", "AttestationDocument is not base64") from None
        now = self.clock()
        try:
            verified = self.verifier.verify(document, at=now)
        except AttestationError as error:
            raise KmsError(
                "ValidationException", f"Invalid attestation document: {error}"
            ) from None
        payload = verified.payload
        age = now - payload.timestamp
        if age > self.max_document_age or age < -self.max_document_age:
            raise KmsError(
                "ValidationException",
                f"Invalid attestation document: timestamp {payload.timestamp.isoformat()} is "
                f"outside the accepted window of {self.max_document_age}",
            )
        return _Recipient(
            _rsa_public_key(payload.public_key), attestation_condition_keys(payload.pcrs)
        )

    def _authorise(
        self, action: str, caller: _Caller, key_arn: str, condition_keys: Mapping[str, str]
    ) -> None:
        policy = self._inner_json(
            "GetKeyPolicy", {"KeyId": key_arn, "PolicyName": "default"}, caller
        )
        document = policy.get("Policy") if isinstance(policy, dict) else None
        context = RequestContext(
            principal_arn=caller.principal_arn,
            action=action,
            resource_arn=key_arn,
            condition_keys=condition_keys,
        )
        decision = evaluate(document if isinstance(document, str) else "", context)
        if decision is not Decision.ALLOW:
            reason = (
                "with an explicit deny in a resource-based policy"
                if decision is Decision.EXPLICIT_DENY
                else f"because no resource-based policy allows the {action} action"
            )
            raise KmsError(
                "AccessDeniedException",
                f"User: {caller.principal_arn} is not authorized to perform: {action} "
                f"on resource: {key_arn} {reason}",
            )

    def _key_arn(self, key_id: str, caller: _Caller) -> str | None:
        """The ARN of ``key_id`` (id, ARN, alias), or None if no such key exists."""
        described = self._inner_json("DescribeKey", {"KeyId": key_id}, caller)
        metadata = described.get("KeyMetadata") if isinstance(described, dict) else None
        arn = metadata.get("Arn") if isinstance(metadata, dict) else None
        return arn if isinstance(arn, str) else None

    # -- talking to moto --------------------------------------------------------------------------

    def _forward(
        self, operation: str, request: dict[str, Any], caller: _Caller
    ) -> tuple[int, dict[str, Any]]:
        """The authorised request, rebuilt: moto sees only the target, region and body we chose."""
        return self._call_inner(_moto_environ(operation, request, caller))

    def _inner_json(self, operation: str, request: dict[str, Any], caller: _Caller) -> Any:
        """A call to moto that bypasses authorisation: the emulator's own bookkeeping."""
        status, response = self._call_inner(_moto_environ(operation, request, caller))
        return response if status == 200 else None

    def _call_inner(self, environ: WsgiEnviron) -> tuple[int, dict[str, Any]]:
        captured: dict[str, int] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> None:
            captured["status"] = int(status.split(" ", 1)[0])

        chunks = self.inner(environ, start_response)
        try:
            raw = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"__type": "InternalFailure", "message": "the emulated KMS answered non-JSON"}
        return captured.get("status", 500), body if isinstance(body, dict) else {}


#: Operations that never change a key (reads, and cryptographic uses of one).
_UNCHANGING_PREFIXES = ("Describe", "Get", "List", "Encrypt", "Decrypt", "ReEncrypt", "Generate")


def _may_change(operation: str) -> bool:
    return not operation.startswith(_UNCHANGING_PREFIXES)


def _moto_environ(operation: str, request: dict[str, Any], caller: _Caller) -> WsgiEnviron:
    """A request to moto in the one shape it gets: our target, the caller's region, our body.

    Every request runs as one emulator identity in one account, so the keys moto acts on are the
    keys :meth:`RecipientKms._key_arn` resolved (moto would otherwise take the region from a
    ``User-Agent`` or the URL, and the action from any target's last dot)."""
    body = json.dumps(request).encode()
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": f"kms.{caller.region}.amazonaws.com",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/x-amz-json-1.1",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_AMZ_TARGET": f"TrentService.{operation}",
        "HTTP_AUTHORIZATION": (
            "AWS4-HMAC-SHA256 Credential=KEYSHARDEMULATOR/20260101/"
            f"{caller.region}/kms/aws4_request, SignedHeaders=host, Signature=0"
        ),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _check_answer(operation: str, response: Mapping[str, Any], planned: Plan) -> None:
    """moto must have acted on exactly the keys that were authorised; else nothing is returned."""
    for name, arn in planned.answers.items():
        answered = response.get(name)
        if answered is not None and answered not in (arn, arn.rsplit("/", 1)[-1]):
            log.error(
                "kms answered for another key",
                extra={
                    "fields": {
                        "event": "kms_wrong_key",
                        "operation": operation,
                        "field": name,
                        "answered": str(answered),
                        "authorised": arn,
                    }
                },
            )
            raise KmsError(
                "InternalFailure", f"{operation} acted on a key it was not authorised for", 500
            )


def _read_json(environ: WsgiEnviron) -> dict[str, Any]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise KmsError("SerializationException", "bad Content-Length") from None
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        request = json.loads(raw) if raw else {}
    except ValueError:
        raise KmsError("SerializationException", "the request body is not JSON") from None
    if not isinstance(request, dict):
        raise KmsError("SerializationException", "the request body must be a JSON object")
    return request


def _rsa_public_key(public_key: bytes | None) -> rsa.RSAPublicKey:
    if public_key is None:
        raise KmsError("ValidationException", "Invalid attestation document: no public_key")
    try:
        key = serialization.load_der_public_key(public_key)
    except ValueError:
        raise KmsError(
            "ValidationException", "Invalid attestation document: public_key is not a DER key"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise KmsError(
            "ValidationException",
            "Invalid attestation document: public_key must be an RSA key of at least 2048 bits",
        )
    return key


def _seal_response(response: dict[str, Any], public_key: rsa.RSAPublicKey) -> dict[str, Any]:
    """Replace ``Plaintext`` by ``CiphertextForRecipient`` sealed to the enclave's key."""
    sealed = dict(response)
    plaintext_b64 = sealed.pop("Plaintext", None)
    if not isinstance(plaintext_b64, str):
        raise KmsError("InternalFailure", "no plaintext to seal for the recipient", 500)
    envelope = seal_for_recipient(base64.b64decode(plaintext_b64), public_key)
    sealed["CiphertextForRecipient"] = base64.b64encode(envelope).decode()
    return sealed


@dataclass
class KmsServer:
    """A running emulated KMS (a WSGI server on a thread); stop it with :meth:`stop`."""

    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def endpoint_url(self) -> str:
        host, port = self.server.server_address[:2]
        scheme = "https" if self.server.ssl_context is not None else "http"
        return f"{scheme}://{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def __enter__(self) -> KmsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_kms_server(
    verifier: AttestationVerifier,
    principals: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], dt.datetime] | None = None,
    max_document_age: dt.timedelta = DEFAULT_MAX_DOCUMENT_AGE,
    tls: ssl.SSLContext | None = None,
    state_file: Path | None = None,
) -> KmsServer:
    """Serve the emulated KMS on ``host:port`` (0 picks a free port) in a background thread.

    With ``tls`` (:func:`keyshard.dev.kms_tls.server_context`) it speaks HTTPS only, as a cluster's
    KMS does; without, plain HTTP, for in-process tests of the KMS itself. With ``state_file``
    its keys are restored from that file first and saved to it after every change
    (:mod:`keyshard.dev.kms_state`)."""
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 -- moto is an emulation-only dependency
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    app = RecipientKms(
        inner=DomainDispatcherApplication(create_backend_app),
        verifier=verifier,
        principals=dict(principals),
        max_document_age=max_document_age,
    )
    if clock is not None:
        app.clock = clock
    if state_file is not None:
        state = KmsKeyState(state_file)
        state.restore()
        app.on_change = state.save
    server = make_server(
        host, port, app, threaded=True, request_handler=MotoRequestHandler, ssl_context=tls
    )
    thread = threading.Thread(target=server.serve_forever, name="emulated-kms", daemon=True)
    thread.start()
    return KmsServer(server, thread)


def main(argv: list[str] | None = None) -> int:
    """``python -m keyshard.dev.kms_server``: run the emulated KMS in the foreground."""
    parser = argparse.ArgumentParser(
        prog="python -m keyshard.dev.kms_server",
        description=(
            "The emulated AWS KMS: moto's KMS plus key-policy conditions and attested Recipient "
            "requests verified against a pinned emulated Nitro root."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: loopback)")
    parser.add_argument("--port", type=int, default=0, help="listen port (0: pick a free one)")
    parser.add_argument("--root", required=True, help="PEM file of the emulated root to pin")
    parser.add_argument(
        "--principal",
        action="append",
        default=[],
        metavar="ACCESS_KEY_ID=ARN",
        help="map a caller's access key id to its principal ARN (repeatable)",
    )
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument(
        "--tls-dir",
        type=Path,
        help="serve HTTPS with server.pem / server-key.pem of this directory (keyshard.dev.kms_tls)",
    )
    args = parser.parse_args(argv)
    principals = dict(item.split("=", 1) for item in args.principal)
    verifier = AttestationVerifier(TrustedRoots.of([load_pem_root(args.root)]))
    tls = None if args.tls_dir is None else server_context(KmsTls(args.tls_dir))
    server = start_kms_server(verifier, principals, host=args.host, port=args.port, tls=tls)
    if args.port_file:
        with open(args.port_file, "w", encoding="ascii") as handle:
            handle.write(str(server.server.server_address[1]))
    print(f"emulated KMS listening on {server.endpoint_url}", file=sys.stderr)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
