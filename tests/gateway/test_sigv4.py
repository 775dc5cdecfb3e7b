"""SigV4 verification against botocore's own signer: what boto3 sends verifies, and every
tampering or misuse is refused with its own reason."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from keyshard.gateway.sigv4 import SignatureError, SignedRequest, verify_request

KEY_ID, SECRET = "AKIAKEYSHARDTEST0001", "secret-access-key-for-tests-only"
SECRETS = {KEY_ID: SECRET}
BODY = b'{"KeyId": "alias/x"}'


def _signed(
    url: str = "https://gw.example:8443/",
    body: bytes = BODY,
    *,
    service: str = "kms",
    region: str = "us-east-1",
    secret: str = SECRET,
    headers: dict[str, str] | None = None,
) -> tuple[SignedRequest, dt.datetime]:
    request = AWSRequest(
        "POST",
        url,
        data=body,
        headers={"X-Amz-Target": "TrentService.Sign", **(headers or {})},
    )
    SigV4Auth(Credentials(KEY_ID, secret), service, region).add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    items = [(k, v if isinstance(v, str) else v.decode()) for k, v in prepared.headers.items()]
    items.append(("Host", parts.netloc))
    signed_at = dt.datetime.strptime(prepared.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    return SignedRequest("POST", target, tuple(items), body), signed_at.replace(tzinfo=dt.UTC)


def _verify(request: SignedRequest, now: dt.datetime, **kw: str) -> str:
    return verify_request(
        request,
        SECRETS.get,
        region=kw.get("region", "us-east-1"),
        service=kw.get("service", "kms"),
        now=now,
    )


def test_botocore_signature_verifies() -> None:
    request, now = _signed()
    assert _verify(request, now) == KEY_ID


def test_path_and_query_as_xks_sends_them() -> None:
    request, now = _signed(
        "https://gw.example/keyshard/xks/kms/xks/v1/keys/key%201/encrypt?b=2&a=1",
        service="kms-xks-proxy",
    )
    assert _verify(request, now, service="kms-xks-proxy") == KEY_ID


@given(st.binary(max_size=300))
def test_any_body_verifies_and_one_changed_byte_does_not(body: bytes) -> None:
    request, now = _signed(body=body)
    assert _verify(request, now) == KEY_ID
    changed = SignedRequest(request.method, request.target, request.headers, body + b"x")
    with pytest.raises(SignatureError, match="does not match"):
        _verify(changed, now)


def _replace(request: SignedRequest, name: str, value: str) -> SignedRequest:
    headers = tuple((k, value if k.lower() == name else v) for k, v in request.headers)
    return SignedRequest(request.method, request.target, headers, request.body)


def test_refusals_each_with_its_reason() -> None:
    request, now = _signed()
    with pytest.raises(SignatureError, match="does not match"):
        _verify(_replace(request, "x-amz-target", "TrentService.Decrypt"), now)
    with pytest.raises(SignatureError, match="does not match"):
        _verify(_signed(secret="another-secret-of-the-same-length")[0], now)
    with pytest.raises(SignatureError, match="scope") as scope:
        _verify(request, now, region="eu-west-1")
    assert not scope.value.unknown_key
    with pytest.raises(SignatureError, match="scope"):
        _verify(request, now, service="kms-xks-proxy")
    with pytest.raises(SignatureError, match="skew"):
        _verify(request, now + dt.timedelta(minutes=16))
    headers = tuple((k, v) for k, v in request.headers if k.lower() != "authorization")
    with pytest.raises(SignatureError, match="not signed"):
        _verify(SignedRequest("POST", "/", headers, BODY), now)
    with pytest.raises(SignatureError, match="not known") as unknown:
        verify_request(request, {}.get, region="us-east-1", service="kms", now=now)
    assert unknown.value.unknown_key


def test_a_request_method_or_path_changed_is_refused() -> None:
    request, now = _signed("https://gw.example/a")
    with pytest.raises(SignatureError, match="does not match"):
        _verify(SignedRequest("POST", "/b", request.headers, request.body), now)
    with pytest.raises(SignatureError, match="does not match"):
        _verify(SignedRequest("PUT", "/a", request.headers, request.body), now)


def test_host_must_be_signed() -> None:
    request, now = _signed()
    auth = request.header("authorization") or ""
    unsigned_host = auth.replace("SignedHeaders=host;", "SignedHeaders=")
    with pytest.raises(SignatureError, match="include host"):
        _verify(_replace(request, "authorization", unsigned_host), now)
