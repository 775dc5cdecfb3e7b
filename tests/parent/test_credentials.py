"""IMDSv2 against a real HTTP server on 127.0.0.1 that enforces the token handshake."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from parent.credentials import ImdsCredentials, StaticCredentials
from parent.errors import CredentialsError
from transport.hostproto import Credentials

TOKEN = "AQAEAFakeSessionToken=="
ROLE = "keyshard-node"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@dataclass
class FakeImds:
    document: object = field(
        default_factory=lambda: {
            "Code": "Success",
            "LastUpdated": "2026-11-24T10:00:00Z",
            "Type": "AWS-HMAC",
            "AccessKeyId": "ASIAEXAMPLE",
            "SecretAccessKey": SECRET,
            "Token": "IQoJb3JpZ2luX2VjEXAMPLE",
            "Expiration": "2026-11-24T16:00:00Z",
        }
    )
    roles: str = ROLE + "\n"
    requests: list[tuple[str, str]] = field(default_factory=list)
    base_url: str = ""


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    state = FakeImds()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: str) -> None:
            raw = body.encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_PUT(self) -> None:
            state.requests.append(("PUT", self.path))
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if self.path != "/latest/api/token" or ttl is None or not 1 <= int(ttl) <= 21600:
                self._send(400, "")
                return
            self._send(200, TOKEN)

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                self._send(401, "")
            elif self.path == "/latest/meta-data/iam/security-credentials/":
                self._send(200 if state.roles else 404, state.roles)
            elif self.path == f"/latest/meta-data/iam/security-credentials/{ROLE}":
                doc = state.document
                self._send(200, doc if isinstance(doc, str) else json.dumps(doc))
            else:
                self._send(404, "")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_imdsv2_handshake_and_document(imds: FakeImds, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # must be ignored for IMDS
    creds = ImdsCredentials(imds.base_url, clock=lambda: 0.0).get()
    assert creds == Credentials(
        "ASIAEXAMPLE", SECRET, "IQoJb3JpZ2luX2VjEXAMPLE", "2026-11-24T16:00:00Z"
    )
    assert imds.requests == [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/iam/security-credentials/"),
        ("GET", f"/latest/meta-data/iam/security-credentials/{ROLE}"),
    ]


def test_cached_until_close_to_expiry(imds: FakeImds) -> None:
    expiry = 1795536000.0  # 2026-11-24T16:00:00Z
    now = [expiry - 3600]
    provider = ImdsCredentials(imds.base_url, clock=lambda: now[0])
    provider.get()
    provider.get()
    assert len(imds.requests) == 3  # second call served from the cache
    now[0] = expiry - 60  # within the refresh margin
    provider.get()
    assert len(imds.requests) == 6


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json " + SECRET, "not JSON"),
        ({"Code": "Failure"}, "reports a failure"),
        ({"Code": "Success", "AccessKeyId": "A", "SecretAccessKey": SECRET}, "lacks Token"),
        (
            {
                "Code": "Success",
                "AccessKeyId": "A",
                "SecretAccessKey": SECRET,
                "Token": "t",
                "Expiration": "tomorrow",
            },
            "invalid Expiration",
        ),
    ],
)
def test_bad_documents_are_refused_without_echoing_secrets(
    imds: FakeImds, document: object, message: str
) -> None:
    imds.document = document
    with pytest.raises(CredentialsError, match=message) as info:
        ImdsCredentials(imds.base_url).get()
    assert SECRET not in str(info.value)


def test_no_role_and_bad_role_names(imds: FakeImds) -> None:
    imds.roles = ""
    with pytest.raises(CredentialsError, match="HTTP 404"):
        ImdsCredentials(imds.base_url).get()
    imds.roles = "../../etc"
    with pytest.raises(CredentialsError, match="invalid role name"):
        ImdsCredentials(imds.base_url).get()


def test_unreachable_imds() -> None:
    with pytest.raises(CredentialsError, match="unreachable"):
        ImdsCredentials("http://127.0.0.1:9", timeout=1.0).get()


def test_static_provider() -> None:
    creds = Credentials("AKIDEMU", "emulated", "none", "2099-01-01T00:00:00Z")
    assert StaticCredentials(creds).get() is creds
