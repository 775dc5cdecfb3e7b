"""Property tests: the decoder meets arbitrary input with typed errors only; round trips hold."""

from __future__ import annotations

import contextlib
import datetime as dt

import cbor2
import pytest
from attestation_test_ca import CaChain, make_chain
from attestation_vectors import SAMPLE_BY_NAME
from hypothesis import given
from hypothesis import strategies as st

from attestation.codec import (
    PROTECTED_ES384,
    decode_document,
    decode_payload,
    encode_document,
    encode_envelope,
    encode_payload,
)
from attestation.document import PAYLOAD_KEYS, AttestationPayload
from attestation.errors import AttestationError, DocumentFormatError
from attestation.verifier import AttestationVerifier

SAMPLE = SAMPLE_BY_NAME["evervault_beta_valid.bin"]
_CHAIN: list[CaChain] = []


def _chain() -> CaChain:
    if not _CHAIN:
        _CHAIN.append(make_chain())
    return _CHAIN[0]


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=64)
)
cbor_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.text(max_size=10) | st.integers(-5, 40), children, max_size=6)
    ),
    max_leaves=30,
)


def _decode_or_typed_error(data: bytes) -> None:
    try:
        doc = decode_document(data)
    except DocumentFormatError:
        return
    # Whatever decodes is canonical: re-encoding the envelope gives the same bytes.
    assert encode_envelope(doc.protected, doc.payload_bytes, doc.signature) == data


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_give_typed_errors_only(data: bytes) -> None:
    _decode_or_typed_error(data)


@given(cbor_values)
def test_arbitrary_cbor_structures_give_typed_errors_only(value: object) -> None:
    data = cbor2.dumps(value)
    _decode_or_typed_error(data)
    with contextlib.suppress(DocumentFormatError):
        decode_payload(data)


@given(st.lists(cbor_values, min_size=4, max_size=4))
def test_arbitrary_envelope_items_give_typed_errors_only(items: list[object]) -> None:
    _decode_or_typed_error(cbor2.dumps(items))


@given(st.fixed_dictionaries({key: cbor_values for key in PAYLOAD_KEYS}))
def test_payload_maps_with_the_right_keys_and_arbitrary_values(raw: dict[str, object]) -> None:
    data = cbor2.dumps(raw)
    try:
        payload = decode_payload(data)
    except DocumentFormatError:
        return
    assert encode_payload(payload) == data


@given(st.binary(max_size=4096))
def test_arbitrary_payload_bytes_inside_a_valid_envelope(payload_bytes: bytes) -> None:
    _decode_or_typed_error(encode_envelope(PROTECTED_ES384, payload_bytes, b"\x00" * 96))


@given(
    st.integers(min_value=0, max_value=len(SAMPLE.data) - 1),
    st.integers(min_value=1, max_value=255),
    st.binary(max_size=8),
)
def test_mutated_genuine_documents_never_verify(position: int, mask: int, insert: bytes) -> None:
    verifier = AttestationVerifier(clock=lambda: SAMPLE.instant)
    data = bytearray(SAMPLE.data)
    data[position] ^= mask
    data[position:position] = insert
    try:
        verifier.verify(bytes(data))
    except AttestationError:
        return
    raise AssertionError("a mutated document verified")


pcr_values = st.sampled_from([32, 48, 64]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
payloads = st.builds(
    AttestationPayload,
    module_id=st.text(min_size=1, max_size=64),
    digest=st.just("SHA384"),
    timestamp_ms=st.integers(min_value=1, max_value=253_402_300_799_999),
    pcrs=st.dictionaries(st.integers(0, 31), pcr_values, min_size=1, max_size=32),
    certificate=st.binary(min_size=1, max_size=1024),
    cabundle=st.lists(st.binary(min_size=1, max_size=1024), min_size=1, max_size=8).map(tuple),
    public_key=st.none() | st.binary(max_size=1024),
    user_data=st.none() | st.binary(max_size=512),
    nonce=st.none() | st.binary(max_size=512),
)


@given(payloads)
def test_valid_payloads_round_trip(payload: AttestationPayload) -> None:
    data = encode_payload(payload)
    assert decode_payload(data) == payload
    assert encode_payload(decode_payload(data)) == data


@given(payloads)
def test_signed_documents_round_trip(payload: AttestationPayload) -> None:
    data = encode_document(payload, _chain().keys["leaf"])
    doc = decode_document(data)
    assert doc.payload == payload
    assert encode_envelope(doc.protected, doc.payload_bytes, doc.signature) == data


@given(st.integers(min_value=1, max_value=253_402_300_799_999))
def test_timestamps_map_to_datetimes(timestamp_ms: int) -> None:
    payload = decode_document(SAMPLE.data).payload
    fields = {name: getattr(payload, name) for name in AttestationPayload.__slots__}
    fields["timestamp_ms"] = timestamp_ms
    moved = AttestationPayload(**fields)
    assert moved.timestamp.tzinfo is dt.UTC
    assert abs(moved.timestamp.timestamp() * 1000 - timestamp_ms) < 1


# Hand-picked CBOR corners that random bytes rarely reach: tags cbor2 interprets itself (shared
# references, string references, self-describe, bignums, dates), undefined and simple values,
# indefinite strings, absurd declared lengths, deep nesting, and break codes out of place.
ODD_ITEMS = [
    b"\xd9\xd9\xf7\xa0",  # tag 55799 (self-describe) around {}
    b"\xd8\x1c\x80",  # tag 28 (shareable) around []
    b"\xd8\x1d\x00",  # tag 29 (shared ref 0) with nothing shared
    b"\xd9\x01\x00\xd8\x19\x00",  # tag 256 (stringref namespace), tag 25 ref 0
    b"\xc1\x1a\x65\x00\x00\x00",  # tag 1 (epoch datetime)
    b"\xc0\x60",  # tag 0 with empty string
    b"\xc2\x40",  # tag 2 bignum with empty bytes
    b"\xf7",  # undefined
    b"\xf0",  # simple value 16
    b"\xf8\xff",  # simple value 255
    b"\xf9\x7e\x00",  # half-float NaN
    b"\x5f\x41\x00\x41\x01\xff",  # indefinite byte string
    b"\x7f\x61\x61\xff",  # indefinite text string
    b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff",  # byte string of 2**64-1 bytes
    b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",  # array of 2**64-1 items
    b"\xbb\x00\x00\x00\x01\x00\x00\x00\x00",  # map of 2**32 pairs
    b"\x81" * 500 + b"\x00",  # deep nesting
    b"\xff",  # break outside an indefinite item
    b"\x1c",  # reserved additional information
    b"\x62\xc3\x28",  # invalid UTF-8
    b"\xa1\x80\x00",  # map with an array key
    b"\xa1\xa0\x00",  # map with a map key
]


@pytest.mark.parametrize("item", ODD_ITEMS, ids=lambda b: b[:6].hex())
@pytest.mark.parametrize("slot", range(4))
def test_odd_cbor_items_in_every_envelope_slot(item: bytes, slot: int) -> None:
    parts = [cbor2.dumps(PROTECTED_ES384), b"\xa0", cbor2.dumps(b"x"), cbor2.dumps(b"s" * 96)]
    parts[slot] = item
    _decode_or_typed_error(b"\x84" + b"".join(parts))
    _decode_or_typed_error(item)


@pytest.mark.parametrize("item", ODD_ITEMS, ids=lambda b: b[:6].hex())
@pytest.mark.parametrize("key", PAYLOAD_KEYS)
def test_odd_cbor_items_as_every_payload_value(item: bytes, key: str) -> None:
    raw = cbor2.loads(decode_document(SAMPLE.data).payload_bytes)
    body = b"".join(cbor2.dumps(k) + (item if k == key else cbor2.dumps(v)) for k, v in raw.items())
    try:
        decode_payload(b"\xa9" + body)
    except DocumentFormatError:
        return
    raise AssertionError(f"odd item {item[:8].hex()} accepted as {key}")
