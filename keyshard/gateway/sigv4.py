"""AWS Signature Version 4, verified (sans-I/O): a request's bytes in, the access key out.

The gateway and the XKS proxy authenticate every request this way, because that is what boto3,
the AWS CLI and AWS KMS itself send. Verification recomputes the signature the client computed —
canonical request, string to sign, the derived signing key — and compares in constant time; the
steps are AWS's published ones ("Create a signed AWS API request", SigV4 for the AWS JSON
protocols), checked against botocore's own signer in the tests.

What is refused, each with its own :class:`SignatureError` reason: no ``Authorization`` header or
another scheme; an unknown access key; a scope for another region or service, or whose date is not
the request's; ``host`` or ``x-amz-date`` left unsigned; a request time more than
:data:`MAX_SKEW` from the verifier's clock; a signature that does not match. Query-string
(presigned) authentication is not accepted: these APIs are called by SDKs, which sign headers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

__all__ = ["MAX_SKEW", "SignatureError", "SignedRequest", "verify_request"]

#: How far a request's X-Amz-Date may lie from the verifier's clock (AWS allows 15 minutes).
MAX_SKEW = dt.timedelta(minutes=15)
_ALGORITHM = "AWS4-HMAC-SHA256"
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*"
)
_SPACES = re.compile(r"\s+")


class SignatureError(Exception):
    """The request is not authenticated. ``unknown_key`` separates an access key this verifier
    does not know (AWS: UnrecognizedClientException) from a bad signature or scope."""

    def __init__(self, reason: str, *, unknown_key: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unknown_key = unknown_key


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """One HTTP request as received: ``target`` is the request target exactly as sent (path and
    query, still percent-encoded); header names in any case, repeated headers kept in order."""

    method: str
    target: str
    headers: Sequence[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of ``name`` (repeated headers joined with commas, as HTTP allows)."""
        values = [v for k, v in self.headers if k.lower() == name]
        return ",".join(values) if values else None


def verify_request(
    request: SignedRequest,
    secret_of: Callable[[str], str | None],
    *,
    region: str | None,
    service: str,
    now: dt.datetime,
    max_skew: dt.timedelta = MAX_SKEW,
) -> str:
    """The access key id that signed ``request``, or :class:`SignatureError`. ``region`` None
    accepts the scope's region (XKS: the region AWS KMS calls from)."""
    authorization = request.header("authorization")
    if authorization is None:
        raise SignatureError("the request is not signed (no Authorization header)")
    match = _AUTH.fullmatch(authorization.strip())
    if match is None:
        raise SignatureError(f"the Authorization header is not {_ALGORITHM} with three fields")
    parts = match["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureError("the credential scope is malformed")
    access_key, date, scope_region, scope_service, _ = parts
    secret = secret_of(access_key)
    if secret is None:
        raise SignatureError("the access key is not known here", unknown_key=True)
    if (region is not None and scope_region != region) or scope_service != service:
        raise SignatureError(
            f"the credential scope must be region {region or 'any'}, service {service}"
        )
    signed = match["signed"].split(";")
    if signed != sorted(set(signed)) or not {"host", "x-amz-date"} <= set(signed):
        raise SignatureError(
            "SignedHeaders must be sorted, distinct, and include host and x-amz-date"
        )
    amz_date = request.header("x-amz-date") or ""
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise SignatureError("X-Amz-Date is not a basic ISO 8601 UTC time") from None
    if amz_date[:8] != date:
        raise SignatureError("the credential scope's date is not X-Amz-Date's")
    if abs(now - when) > max_skew:
        raise SignatureError("the signature expired or is from the future (clock skew)")
    canonical = canonical_request(request, signed)
    scope = "/".join(parts)
    string_to_sign = "\n".join(
        (_ALGORITHM, amz_date, scope.split("/", 1)[1], _sha256_hex(canonical.encode()))
    )
    key = signing_key(secret, date, scope_region, service)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureError("the signature does not match")
    return access_key


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def canonical_request(request: SignedRequest, signed_headers: Sequence[str]) -> str:
    """The canonical request over ``signed_headers`` (for every service but S3: the path is
    normalised and each segment URI-encoded again)."""
    path, _, query = request.target.partition("?")
    headers = _canonical_headers(request.headers, signed_headers)
    return "\n".join(
        (
            request.method.upper(),
            _canonical_path(path),
            _canonical_query(query),
            headers,
            ";".join(signed_headers),
            _sha256_hex(request.body),
        )
    )


def _canonical_path(path: str) -> str:
    if not path:
        return "/"
    normalized = posixpath.normpath(path)
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    if normalized.startswith("//"):  # normpath keeps a leading "//"
        normalized = "/" + normalized.lstrip("/")
    return quote(normalized, safe="/~")


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _canonical_headers(headers: Sequence[tuple[str, str]], signed: Sequence[str]) -> str:
    values: Mapping[str, list[str]] = {name: [] for name in signed}
    for name, value in headers:
        lower = name.lower()
        if lower in values:
            values[lower].append(_SPACES.sub(" ", value.strip()))
    missing = [name for name, found in values.items() if not found]
    if missing:
        raise SignatureError(f"signed header(s) not in the request: {', '.join(missing)}")
    return "".join(f"{name}:{','.join(values[name])}\n" for name in signed)


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
