"""NSM messages: serde's exact CBOR shapes, byte snapshots, round trips, and strict refusal."""

from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attestation.nsm.errors import NsmMessageError
from attestation.nsm.messages import (
    MAX_REQUEST_SIZE,
    Attestation,
    AttestationResponse,
    DescribeNsm,
    DescribePcr,
    DescribePcrResponse,
    Digest,
    ErrorCode,
    ErrorResponse,
    ExtendPcr,
    ExtendPcrResponse,
    GetRandom,
    GetRandomResponse,
    LockPcr,
    LockPcrResponse,
    LockPcrs,
    LockPcrsResponse,
    NsmDescription,
    Request,
    Response,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

# Byte snapshots of serde_cbor's encoding of nsm-api's enums (externally tagged). A changed
# snapshot is a wire-format break with the real NSM.
REQUEST_SNAPSHOTS: list[tuple[Request, str]] = [
    (DescribePcr(3), "a16b4465736372696265504352a165696e64657803"),
    (ExtendPcr(16, b"ab"), "a169457874656e64504352a265696e646578106464617461426162"),
    (LockPcr(17), "a1674c6f636b504352a165696e64657811"),
    (LockPcrs(16), "a1684c6f636b50435273a16572616e676510"),
    (DescribeNsm(), "6b44657363726962654e534d"),
    (GetRandom(), "6947657452616e646f6d"),
    (
        Attestation(user_data=b"u", nonce=None, public_key=b"k"),
        "a16b4174746573746174696f6ea369757365725f64617461417565"
        "6e6f6e6365f66a7075626c69635f6b6579416b",
    ),
]
RESPONSE_SNAPSHOTS: list[tuple[Response, str]] = [
    (
        DescribePcrResponse(lock=True, data=b"\x01"),
        "a16b4465736372696265504352a2646c6f636bf5646461746141" + "01",
    ),
    (ExtendPcrResponse(b"\x02"), "a169457874656e64504352a16464617461" + "4102"),
    (LockPcrResponse(), "674c6f636b504352"),
    (LockPcrsResponse(), "684c6f636b50435273"),
    (AttestationResponse(b"d"), "a16b4174746573746174696f6ea168646f63756d656e744164"),
    (GetRandomResponse(b"r"), "a16947657452616e646f6da16672616e646f6d4172"),
    (ErrorResponse(ErrorCode.INVALID_INDEX), "a1654572726f726c496e76616c6964496e646578"),
]


@pytest.mark.parametrize(("request_", "snapshot"), REQUEST_SNAPSHOTS)
def test_request_bytes_match_snapshot_and_round_trip(request_: Request, snapshot: str) -> None:
    data = encode_request(request_)
    assert data.hex() == snapshot
    assert decode_request(data) == request_
    assert encode_request(decode_request(data)) == data


@pytest.mark.parametrize(("response", "snapshot"), RESPONSE_SNAPSHOTS)
def test_response_bytes_match_snapshot_and_round_trip(response: Response, snapshot: str) -> None:
    data = encode_response(response)
    assert data.hex() == snapshot
    assert decode_response(data) == response
    assert encode_response(decode_response(data)) == data


def test_externally_tagged_shapes() -> None:
    """The decoded CBOR values are exactly serde's data model, as in the issue."""
    assert cbor2.loads(encode_request(Attestation(b"u", b"n", b"k"))) == {
        "Attestation": {"user_data": b"u", "nonce": b"n", "public_key": b"k"}
    }
    assert cbor2.loads(encode_request(ExtendPcr(16, b"x"))) == {
        "ExtendPCR": {"index": 16, "data": b"x"}
    }
    assert cbor2.loads(encode_request(LockPcrs(8))) == {"LockPCRs": {"range": 8}}
    assert cbor2.loads(encode_request(DescribeNsm())) == "DescribeNSM"
    assert cbor2.loads(encode_request(GetRandom())) == "GetRandom"
    assert cbor2.loads(encode_response(ErrorResponse(ErrorCode.READ_ONLY_INDEX))) == {
        "Error": "ReadOnlyIndex"
    }


def test_describe_nsm_response_round_trips_with_sorted_set() -> None:
    description = NsmDescription(1, 2, 3, "i-0-enc0", 32, frozenset({2, 0, 1}), Digest.SHA384)
    data = encode_response(description)
    assert cbor2.loads(data) == {
        "DescribeNSM": {
            "version_major": 1,
            "version_minor": 2,
            "version_patch": 3,
            "module_id": "i-0-enc0",
            "max_pcrs": 32,
            "locked_pcrs": [0, 1, 2],
            "digest": "SHA384",
        }
    }
    assert decode_response(data) == description


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_round_trips(code: ErrorCode) -> None:
    data = encode_response(ErrorResponse(code))
    assert decode_response(data) == ErrorResponse(code)
    assert cbor2.loads(data) == {"Error": code.value}


def test_error_codes_are_the_nine_of_the_api() -> None:
    assert [c.value for c in ErrorCode] == [
        "Success",
        "InvalidArgument",
        "InvalidIndex",
        "InvalidResponse",
        "ReadOnlyIndex",
        "InvalidOperation",
        "BufferTooSmall",
        "InputTooLarge",
        "InternalError",
    ]


@pytest.mark.parametrize(
    ("value", "culprit"),
    [
        ("Shutdown", "unknown request variant 'Shutdown'"),
        ({"Reboot": {}}, "unknown request variant 'Reboot'"),
        ("DescribePCR", "needs fields"),
        ({"DescribeNSM": {}}, "takes no fields"),
        ({"GetRandom": None}, "takes no fields"),
        ({"DescribePCR": {}}, "fields"),
        ({"DescribePCR": {"index": 1, "extra": 2}}, "fields"),
        ({"DescribePCR": {"idx": 1}}, "fields"),
        ({"DescribePCR": [1]}, "expected a map of fields"),
        ({"DescribePCR": {"index": "1"}}, "DescribePCR.index: expected u16"),
        ({"DescribePCR": {"index": -1}}, "DescribePCR.index: expected u16"),
        ({"DescribePCR": {"index": 65536}}, "DescribePCR.index: expected u16"),
        ({"DescribePCR": {"index": True}}, "DescribePCR.index: expected u16"),
        ({"DescribePCR": {"index": 1.0}}, "DescribePCR.index: expected u16"),
        ({"ExtendPCR": {"index": 16, "data": "text"}}, "ExtendPCR.data: expected bytes"),
        ({"Attestation": {"user_data": None, "nonce": None}}, "fields"),
        ({"Attestation": {"user_data": 1, "nonce": None, "public_key": None}}, "user_data"),
        ({"DescribePCR": {"index": 1}, "LockPCR": {"index": 1}}, "one-entry map"),
        ([], "variant name or a one-entry map"),
        (7, "variant name or a one-entry map"),
        ({1: {"index": 1}}, "unknown request variant 1"),
    ],
)
def test_malformed_requests_name_the_culprit(value: object, culprit: str) -> None:
    with pytest.raises(NsmMessageError, match=culprit):
        decode_request(cbor2.dumps(value))


@pytest.mark.parametrize(
    ("value", "culprit"),
    [
        ({"Error": "Panic"}, "unknown error code 'Panic'"),
        ({"Error": 3}, "expected a error code string"),
        ({"DescribePCR": {"lock": 1, "data": b""}}, "DescribePCR.lock: expected bool"),
        ({"GetRandom": {"random": None}}, "GetRandom.random: expected bytes"),
        ({"Attestation": {"document": b"", "more": b""}}, "fields"),
        (
            {
                "DescribeNSM": {
                    "version_major": 1,
                    "version_minor": 0,
                    "version_patch": 0,
                    "module_id": "m",
                    "max_pcrs": 32,
                    "locked_pcrs": [1, 1],
                    "digest": "SHA384",
                }
            },
            "strictly ascending",
        ),
        (
            {
                "DescribeNSM": {
                    "version_major": 1,
                    "version_minor": 0,
                    "version_patch": 0,
                    "module_id": "m",
                    "max_pcrs": 32,
                    "locked_pcrs": [],
                    "digest": "MD5",
                }
            },
            "unknown digest 'MD5'",
        ),
        ("Attestation", "needs fields"),
    ],
)
def test_malformed_responses_name_the_culprit(value: object, culprit: str) -> None:
    with pytest.raises(NsmMessageError, match=culprit):
        decode_response(cbor2.dumps(value))


@pytest.mark.parametrize(
    ("hex_bytes", "culprit"),
    [
        ("", "empty"),
        ("6947657452616e646f6d00", "1 trailing bytes"),
        ("a16b4465736372696265504352a165696e646578c24103", "tags are not allowed"),
        ("c16947657452616e646f6d", "tags are not allowed"),
        ("d9d9f76947657452616e646f6d", "tags are not allowed"),
        ("da000100006947657452616e646f6d", "tags are not allowed"),
        ("a16b4465736372696265504352a265696e6465780165696e64657801", "Duplicate"),
        ("a16b44657363726962655043", "not valid CBOR"),
        ("ff", "not valid CBOR"),
    ],
)
def test_bad_cbor_is_refused(hex_bytes: str, culprit: str) -> None:
    for decode in (decode_request, decode_response):
        with pytest.raises(NsmMessageError, match=culprit):
            decode(bytes.fromhex(hex_bytes))


def test_requests_must_be_canonical_but_responses_may_stream() -> None:
    # DescribePCR index 3 with a non-minimal integer (0x18 0x03) and with an indefinite-length map.
    non_minimal = bytes.fromhex("a16b4465736372696265504352a165696e6465781803")
    indefinite = bytes.fromhex("bf6b4465736372696265504352a165696e64657803ff")
    for data in (non_minimal, indefinite):
        with pytest.raises(NsmMessageError, match="not canonically encoded"):
            decode_request(data)
    # The same shapes from a device are accepted (newer NSM firmware streams its CBOR).
    streamed = cbor2.dumps({"ExtendPCR": {"data": b"\x01"}}, indefinite_containers=True)
    assert decode_response(streamed) == ExtendPcrResponse(b"\x01")
    reordered = cbor2.dumps({"DescribePCR": {"data": b"\x01", "lock": False}})
    assert decode_response(reordered) == DescribePcrResponse(lock=False, data=b"\x01")
    with pytest.raises(NsmMessageError, match="not canonically encoded"):
        decode_request(cbor2.dumps({"ExtendPCR": {"data": b"\x01", "index": 16}}))


def test_oversize_messages_are_refused_before_decoding() -> None:
    big = encode_request(ExtendPcr(16, b"x" * MAX_REQUEST_SIZE))
    with pytest.raises(NsmMessageError, match="over 4096"):
        decode_request(big)


@pytest.mark.parametrize(
    "build",
    [
        lambda: DescribePcr(-1),
        lambda: DescribePcr(65536),
        lambda: DescribePcr("1"),  # type: ignore[arg-type]
        lambda: ExtendPcr(1, bytearray(b"x")),  # type: ignore[arg-type]
        lambda: Attestation(user_data="text"),  # type: ignore[arg-type]
        lambda: DescribePcrResponse(lock=1, data=b""),  # type: ignore[arg-type]
        lambda: ErrorResponse("InvalidIndex"),  # type: ignore[arg-type]
        lambda: NsmDescription(1, 0, 0, "m", 32, {1, 2}, Digest.SHA384),  # type: ignore[arg-type]
    ],
)
def test_constructors_validate_types(build: object) -> None:
    with pytest.raises(NsmMessageError):
        build()  # type: ignore[operator]


def test_messages_are_frozen() -> None:
    message = DescribePcr(1)
    with pytest.raises(AttributeError):
        message.index = 2  # type: ignore[misc]


_u16 = st.integers(0, 0xFFFF)
_opt_bytes = st.none() | st.binary(max_size=64)
requests = st.one_of(
    st.builds(DescribePcr, _u16),
    st.builds(ExtendPcr, _u16, st.binary(max_size=64)),
    st.builds(LockPcr, _u16),
    st.builds(LockPcrs, _u16),
    st.just(DescribeNsm()),
    st.just(GetRandom()),
    st.builds(Attestation, _opt_bytes, _opt_bytes, _opt_bytes),
)
responses = st.one_of(
    st.builds(DescribePcrResponse, st.booleans(), st.binary(max_size=64)),
    st.builds(ExtendPcrResponse, st.binary(max_size=64)),
    st.just(LockPcrResponse()),
    st.just(LockPcrsResponse()),
    st.builds(
        NsmDescription,
        _u16,
        _u16,
        _u16,
        st.text(max_size=40),
        _u16,
        st.frozensets(_u16, max_size=40),
        st.sampled_from(Digest),
    ),
    st.builds(AttestationResponse, st.binary(max_size=64)),
    st.builds(GetRandomResponse, st.binary(max_size=64)),
    st.builds(ErrorResponse, st.sampled_from(ErrorCode)),
)


@given(requests)
def test_every_request_round_trips(request_: Request) -> None:
    data = encode_request(request_)
    assert decode_request(data) == request_
    assert encode_request(decode_request(data)) == data


@given(responses)
def test_every_response_round_trips(response: Response) -> None:
    data = encode_response(response)
    assert decode_response(data) == response
    assert encode_response(decode_response(data)) == data


@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_typed_errors(data: bytes) -> None:
    for decode in (decode_request, decode_response):
        with contextlib.suppress(NsmMessageError):
            decode(data)


_cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.binary(max_size=8)
    | st.sampled_from(["DescribePCR", "ExtendPCR", "GetRandom", "Error", "index", "data", "lock"])
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["DescribePCR", "ExtendPCR", "Attestation", "index", "data", "Error"])
            | st.text(max_size=4),
            children,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@given(_cbor_values)
def test_arbitrary_structures_only_raise_typed_errors(value: object) -> None:
    data = cbor2.dumps(value)
    for decode in (decode_request, decode_response):
        with contextlib.suppress(NsmMessageError):
            decode(data)
