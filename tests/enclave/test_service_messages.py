"""The node service's wire codec: closed types, strict canonical CBOR, validation on construction."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.service.errors import MalformedMessageError
from enclave.service.messages import (
    DecryptPartial,
    DkgOutbox,
    DkgStep,
    EcdsaSign,
    ErrorReply,
    Hello,
    KeyCreate,
    KeyInfoReply,
    Presigned,
    PresignStart,
    PresignStep,
    SignCommit,
    decode,
    encode,
)

SESSION = b"s" * 32

SAMPLES = [
    Hello(b"n" * 32),
    KeyCreate("payroll", "ed25519", 1, SESSION, {"node-1": b"d1", "node-2": b"d2"}),
    DkgStep("payroll", (b"e1", b"e2")),
    DkgOutbox({"node-2": b"e"}),
    KeyInfoReply("secp256k1", 2, b"pkg"),
    SignCommit("payroll", SESSION, bytes(32), (b"approval",)),
    DecryptPartial("payroll", b"ct", SESSION, b"context", (b"a1", b"a2")),
    PresignStart("wallet", SESSION, {"node-1": b"d1", "node-2": b"d2", "node-3": b"d3"}),
    PresignStep("wallet", SESSION, (b"e1", b"e2")),
    Presigned(b"p" * 32, b"\x02" + b"r" * 32),
    EcdsaSign("wallet", b"p" * 32, b"tx", b"e" * 32, (b"approval",)),
    ErrorReply("KeyExistsError", "key 'payroll' already exists"),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: m.OP)
def test_round_trip_is_byte_exact(message: object) -> None:
    encoded = encode(message)  # type: ignore[arg-type]
    assert decode(encoded) == message
    assert encode(decode(encoded)) == encoded


def test_snapshot_of_hello() -> None:
    # A changed snapshot is a wire-format break.
    assert encode(Hello(bytes(32))).hex() == ("a2626f706568656c6c6f656e6f6e63655820" + "00" * 32)


def test_non_canonical_encoding_is_refused() -> None:
    body = {"nonce": b"n" * 32, "op": "hello"}  # keys out of canonical order
    with pytest.raises(MalformedMessageError) as caught:
        decode(cbor2.dumps(body))
    assert caught.value.field == "frame"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"op": "launch_missiles"}, "op"),
        ({"op": "hello", "nonce": b"n" * 32, "extra": 1}, "hello"),
        ({"op": "hello"}, "hello"),
        ({"op": "hello", "nonce": "text"}, "nonce"),
        ({"op": "hello", "nonce": b"short"}, "nonce"),
        ({"op": "key_info", "key_name": "Bad Name"}, "key_name"),
        (
            {
                "op": "sign_commit",
                "key_name": "k",
                "session_id": b"x",
                "message_digest": bytes(32),
                "approvals": [],
            },
            "session_id",
        ),
    ],
)
def test_malformed_requests_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(MalformedMessageError) as caught:
        decode(cbor2.dumps(body, canonical=True))
    assert caught.value.field == field


def test_key_create_validates_threshold_and_participants() -> None:
    with pytest.raises(MalformedMessageError, match="threshold"):
        KeyCreate("k", "ed25519", 2, SESSION, {"a": b"1", "b": b"2"})
    with pytest.raises(MalformedMessageError, match="suite"):
        KeyCreate("k", "p256", 1, SESSION, {"a": b"1", "b": b"2"})
    with pytest.raises(MalformedMessageError, match="participants"):
        KeyCreate("k", "ed25519", 1, SESSION, {"a": b"1"})
    with pytest.raises(MalformedMessageError, match="node_id"):
        KeyCreate("k", "ed25519", 1, SESSION, {"a": b"1", "../b": b"2"})


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_the_typed_error(data: bytes) -> None:
    try:
        message = decode(data)
    except MalformedMessageError:
        return
    assert encode(message) == data
