"""Temporary AWS credentials for the enclave's KMS calls, relayed by the parent.

An enclave has no network, so it cannot reach the instance metadata service itself. The parent
fetches the instance role's temporary credentials and hands them over host services. This gives the
parent nothing new — it could call KMS with the same role anyway — and KMS still releases key
material only to an attested enclave (``Recipient``), so the credentials are not what guards the key.

Real mode: :class:`ImdsCredentials` speaks IMDSv2 — ``PUT /latest/api/token`` with a TTL header for a
session token, then ``GET /latest/meta-data/iam/security-credentials/`` (the role name) and
``.../<role>`` (the JSON document) with that token. Emulated mode: :class:`StaticCredentials`.
Environment proxies are ignored (IMDS must never be fetched through a proxy).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from parent.errors import CredentialsError
from transport.hostproto import Credentials

IMDS_URL = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 21600
REFRESH_MARGIN_SECONDS = 300.0
"""Credentials expiring within this margin are fetched again."""
ROLE_RE = re.compile(r"[\w+=,.@-]{1,64}")
"""IAM role name alphabet (AWS documents ``[\\w+=,.@-]+``, at most 64 characters)."""


class CredentialsProvider(Protocol):
    def get(self) -> Credentials: ...


class StaticCredentials:
    """Fixed credentials (emulated mode: the local KMS accepts any well-formed ones)."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def get(self) -> Credentials:
        return self._credentials


class ImdsCredentials:
    """The instance role's credentials over IMDSv2, cached until shortly before they expire."""

    def __init__(
        self,
        base_url: str = IMDS_URL,
        *,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._clock = clock
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._cached: tuple[Credentials, float] | None = None

    def get(self) -> Credentials:
        if self._cached is not None:
            credentials, expires_at = self._cached
            if self._clock() < expires_at - REFRESH_MARGIN_SECONDS:
                return credentials
        credentials = self._fetch()
        self._cached = (credentials, _parse_expiration(credentials.expiration))
        return credentials

    def _fetch(self) -> Credentials:
        token = self._request(
            "PUT",
            "/latest/api/token",
            {"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
        ).strip()
        if not token:
            raise CredentialsError("IMDS returned an empty session token")
        auth = {"X-aws-ec2-metadata-token": token}
        roles = self._request("GET", "/latest/meta-data/iam/security-credentials/", auth).split()
        if not roles:
            raise CredentialsError("the instance has no IAM role attached")
        role = roles[0]
        if not ROLE_RE.fullmatch(role):
            raise CredentialsError("IMDS returned an invalid role name")
        body = self._request("GET", f"/latest/meta-data/iam/security-credentials/{role}", auth)
        return _parse_document(body)

    def _request(self, method: str, path: str, headers: dict[str, str]) -> str:
        request = urllib.request.Request(self._base + path, method=method, headers=headers)  # noqa: S310
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                raw: bytes = response.read(64 * 1024)
        except urllib.error.HTTPError as exc:
            raise CredentialsError(f"IMDS {method} {path} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise CredentialsError(
                f"IMDS {method} {path} unreachable: {type(exc).__name__}"
            ) from None
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise CredentialsError(f"IMDS {method} {path} answered non-ASCII text") from None


def _parse_document(body: str) -> Credentials:
    """Validate the IMDS credentials document; errors never echo its (secret) content."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise CredentialsError("IMDS credentials document is not JSON") from None
    if not isinstance(doc, dict):
        raise CredentialsError("IMDS credentials document is not an object")
    if doc.get("Code") != "Success":
        raise CredentialsError("IMDS credentials document reports a failure")
    fields = {}
    for key in ("AccessKeyId", "SecretAccessKey", "Token", "Expiration"):
        value = doc.get(key)
        if not isinstance(value, str) or not value:
            raise CredentialsError(f"IMDS credentials document lacks {key}")
        fields[key] = value
    _parse_expiration(fields["Expiration"])
    return Credentials(
        access_key_id=fields["AccessKeyId"],
        secret_access_key=fields["SecretAccessKey"],
        session_token=fields["Token"],
        expiration=fields["Expiration"],
    )


def _parse_expiration(text: str) -> float:
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CredentialsError("IMDS credentials document has an invalid Expiration") from None
    if instant.tzinfo is None:
        raise CredentialsError("IMDS credentials Expiration lacks a time zone")
    return instant.timestamp()
