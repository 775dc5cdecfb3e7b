"""The AWS KMS JSON 1.1 endpoint: one HTTP request in, one KMS answer out.

``POST /`` with ``X-Amz-Target: TrentService.<Operation>`` and a JSON body, SigV4-signed for
service ``kms`` in the gateway's region (what botocore sends for ``boto3.client("kms",
endpoint_url=...)`` and ``aws kms ... --endpoint-url``). Authentication comes first: an unsigned
or badly signed request learns nothing about keys. Answers are ``application/x-amz-json-1.1``;
errors carry KMS's ``__type`` so botocore raises the exception class its callers catch.

Logged per request: the operation, the access key id, and the outcome's error type. Never a
body: bodies carry plaintexts and data keys.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from keyshard.gateway.errors import (
    InternalError,
    KmsError,
    SerializationError,
    SignatureMismatchError,
    UnknownOperationError,
    UnrecognizedClientError,
)
from keyshard.gateway.http_server import Response
from keyshard.gateway.operations import Gateway
from keyshard.gateway.sigv4 import SignatureError, SignedRequest, verify_request

__all__ = ["CONTENT_TYPE", "KmsEndpoint"]

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/x-amz-json-1.1"
_TARGET_PREFIX = "TrentService."
#: The signing name AWS KMS uses in SigV4 credential scopes.
SERVICE = "kms"


class KmsEndpoint:
    """A :data:`~keyshard.gateway.http_server.Handler` for the KMS API over ``gateway``."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._gateway = gateway
        self._clock = clock

    async def __call__(self, request: SignedRequest) -> Response:
        request_id = str(uuid.uuid4())
        operation = "?"
        caller_id = "-"
        try:
            if request.method != "POST" or request.target.partition("?")[0] != "/":
                raise UnknownOperationError("the KMS API is POST / with X-Amz-Target")
            config = self._gateway.config
            try:
                caller_id = verify_request(
                    request,
                    config.secret_of,
                    region=config.region,
                    service=SERVICE,
                    now=self._clock(),
                )
            except SignatureError as error:
                if error.unknown_key:
                    raise UnrecognizedClientError(
                        "The security token included in the request is invalid."
                    ) from None
                raise SignatureMismatchError(
                    f"The request signature is not valid: {error.reason}"
                ) from None
            caller = config.access_key(caller_id)
            if caller is None:  # pragma: no cover -- verify_request knew the key
                raise UnrecognizedClientError(
                    "The security token included in the request is invalid."
                )
            target = request.header("x-amz-target") or ""
            if not target.startswith(_TARGET_PREFIX):
                raise UnknownOperationError("X-Amz-Target must be TrentService.<Operation>")
            operation = target[len(_TARGET_PREFIX) :]
            body = _json_body(request.body)
            result = await self._gateway.handle(operation, caller, body)
        except KmsError as error:
            log.info(
                "kms request refused",
                extra={
                    "fields": {
                        "event": "kms",
                        "op": operation,
                        "caller": caller_id,
                        "error": error.type_name,
                    }
                },
            )
            return _answer(error.status, error.body(), request_id)
        except Exception:  # the process boundary of one request: answer, never crash the server
            log.exception(
                "kms request failed",
                extra={"fields": {"event": "kms", "op": operation, "caller": caller_id}},
            )
            return _answer(500, InternalError("internal error").body(), request_id)
        log.info(
            "kms request", extra={"fields": {"event": "kms", "op": operation, "caller": caller_id}}
        )
        return _answer(200, result, request_id)


def _json_body(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise SerializationError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise SerializationError("the request body is not a JSON object")
    return body


def _answer(status: int, body: dict[str, Any], request_id: str) -> Response:
    return Response(
        status,
        json.dumps(body, separators=(",", ":")).encode(),
        (("content-type", CONTENT_TYPE), ("x-amzn-requestid", request_id)),
    )
