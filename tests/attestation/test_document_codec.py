"""The strict codec on genuine documents and on hand-made malformed ones."""

from __future__ import annotations

from types import MappingProxyType

import cbor2
import pytest
from attestation_test_ca import make_chain, make_document
from attestation_vectors import SAMPLE_BY_NAME, SAMPLES, Sample, shape_of
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from attestation.codec import (
    MAX_DOCUMENT_SIZE,
    PROTECTED_ES384,
    decode_document,
    decode_payload,
    encode_document,
    encode_envelope,
    encode_payload,
    sig_structure,
)
from attestation.document import PAYLOAD_KEYS, AttestationPayload
from attestation.errors import DocumentFormatError

REFERENCE = SAMPLE_BY_NAME["evervault_beta_valid.bin"]


def _raw_payload(sample: Sample) -> dict[str, object]:
    envelope = cbor2.loads(sample.data)
    raw: dict[str, object] = cbor2.loads(envelope[2])
    return raw


def _with_payload(sample: Sample, payload_bytes: bytes) -> bytes:
    envelope = cbor2.loads(sample.data)
    return encode_envelope(envelope[0], payload_bytes, envelope[3])


def _refused(data: bytes, field: str) -> DocumentFormatError:
    with pytest.raises(DocumentFormatError) as info:
        decode_document(data)
    assert info.value.field == field, str(info.value)
    return info.value


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_genuine_documents_decode_to_the_manifest_values(sample: Sample) -> None:
    doc = decode_document(sample.data)
    payload = doc.payload
    assert payload.module_id == sample.module_id
    assert payload.timestamp_ms == sample.timestamp_ms
    assert payload.digest == "SHA384"
    assert sorted(payload.pcrs) == list(range(16))
    nonzero = {i: v for i, v in payload.pcrs.items() if any(v)}
    assert nonzero == sample.nonzero_pcrs
    assert payload.is_debug_mode is sample.debug_mode
    lengths = (payload.public_key, payload.user_data, payload.nonce)
    expected = (sample.public_key_len, sample.user_data_len, sample.nonce_len)
    assert tuple(None if v is None else len(v) for v in lengths) == expected
    assert len(payload.cabundle) == 4
    assert isinstance(payload.pcrs, MappingProxyType)
    assert doc.protected == PROTECTED_ES384
    assert len(doc.signature) == 96


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_round_trip_is_byte_identical(sample: Sample) -> None:
    doc = decode_document(sample.data)
    assert encode_payload(doc.payload) == doc.payload_bytes
    assert encode_envelope(doc.protected, doc.payload_bytes, doc.signature) == sample.data


def test_indefinite_length_payload_map_is_accepted() -> None:
    raw = _raw_payload(REFERENCE)
    body = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in raw.items())
    indefinite = b"\xbf" + body + b"\xff"
    assert decode_payload(indefinite) == decode_document(REFERENCE.data).payload
    doc = decode_document(_with_payload(REFERENCE, indefinite))
    assert doc.payload_bytes == indefinite


def test_indefinite_pcrs_and_cabundle_are_accepted() -> None:
    raw = _raw_payload(REFERENCE)
    body = b"".join(
        cbor2.dumps(k) + cbor2.dumps(v, indefinite_containers=k in ("pcrs", "cabundle"))
        for k, v in raw.items()
    )
    assert (
        decode_payload(b"\xbf" + body + b"\xff").pcrs
        == decode_document(REFERENCE.data).payload.pcrs
    )


def test_unterminated_indefinite_map_is_refused() -> None:
    raw = _raw_payload(REFERENCE)
    body = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in raw.items())
    with pytest.raises(DocumentFormatError) as info:
        decode_payload(b"\xbf" + body)
    assert info.value.field == "payload"


def test_tagged_cose_sign1_is_refused() -> None:
    err = _refused(b"\xd2" + REFERENCE.data, "envelope")
    assert "tagged (18)" in err.reason


def test_trailing_bytes_are_refused() -> None:
    err = _refused(REFERENCE.data + b"\x00", "envelope")
    assert "1 trailing bytes" in err.reason


def test_oversize_input_is_refused() -> None:
    err = _refused(b"\x00" * (MAX_DOCUMENT_SIZE + 1), "envelope")
    assert "exceeds" in err.reason


@pytest.mark.parametrize(
    ("envelope", "field"),
    [
        ([PROTECTED_ES384, {}, b"x"], "envelope"),
        ([PROTECTED_ES384, {}, b"x", b"s" * 96, b""], "envelope"),
        ({"a": 1}, "envelope"),
        ([b"\xa1\x01\x26", {}, b"x", b"s" * 96], "protected"),  # ES256
        ([cbor2.dumps({1: -35}) + b"", {4: b"kid"}, b"x", b"s" * 96], "unprotected"),
        ([PROTECTED_ES384, {}, "text", b"s" * 96], "payload"),
        ([PROTECTED_ES384, {}, b"x", b"s" * 95], "signature"),
        ([PROTECTED_ES384, {}, b"x", None], "signature"),
    ],
)
def test_envelope_shape_is_enforced(envelope: object, field: str) -> None:
    _refused(cbor2.dumps(envelope), field)


def test_non_shortest_envelope_is_refused() -> None:
    # Same array, but the 96-byte signature's length written in two bytes instead of one.
    data = REFERENCE.data
    short = bytes([0x58, 96])
    position = data.rindex(short)
    long_form = data[:position] + bytes([0x59, 0, 96]) + data[position + 2 :]
    err = _refused(long_form, "envelope")
    assert "shortest-form" in err.reason


def _payload_variant(**changes: object) -> bytes:
    raw = _raw_payload(REFERENCE)
    raw.update(changes)
    return cbor2.dumps(raw)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"digest": "SHA256"}, "digest"),
        ({"digest": b"SHA384"}, "digest"),
        ({"module_id": ""}, "module_id"),
        ({"module_id": 7}, "module_id"),
        ({"timestamp": -1}, "timestamp"),
        ({"timestamp": 0}, "timestamp"),
        ({"timestamp": 1.5}, "timestamp"),
        ({"timestamp": True}, "timestamp"),
        ({"timestamp": 253_402_300_800_000}, "timestamp"),
        ({"timestamp": 2**64 - 1}, "timestamp"),
        ({"pcrs": {32: b"\x00" * 48}}, "pcrs"),
        ({"pcrs": {-1: b"\x00" * 48}}, "pcrs"),
        ({"pcrs": {"0": b"\x00" * 48}}, "pcrs"),
        ({"pcrs": {0: b"\x00" * 47}}, "pcrs[0]"),
        ({"pcrs": {3: "00" * 48}}, "pcrs[3]"),
        ({"pcrs": {}}, "pcrs"),
        ({"pcrs": [b"\x00" * 48]}, "pcrs"),
        ({"certificate": b""}, "certificate"),
        ({"certificate": b"\x30" * 1025}, "certificate"),
        ({"certificate": None}, "certificate"),
        ({"cabundle": []}, "cabundle"),
        ({"cabundle": b"\x30"}, "cabundle"),
        ({"cabundle": [b"\x30" * 1025]}, "cabundle[0]"),
        ({"cabundle": [b"\x30"] * 9}, "cabundle"),
        ({"public_key": b"k" * 1025}, "public_key"),
        ({"public_key": "key"}, "public_key"),
        ({"user_data": b"u" * 513}, "user_data"),
        ({"nonce": b"n" * 513}, "nonce"),
        ({"nonce": 5}, "nonce"),
    ],
)
def test_payload_fields_are_validated(changes: dict[str, object], field: str) -> None:
    with pytest.raises(DocumentFormatError) as info:
        decode_payload(_payload_variant(**changes))
    assert info.value.field == field, str(info.value)


def test_limits_are_inclusive() -> None:
    payload = decode_payload(
        _payload_variant(user_data=b"u" * 512, nonce=b"n" * 512, public_key=b"k" * 1024)
    )
    assert (len(payload.user_data or b""), len(payload.nonce or b"")) == (512, 512)
    assert len(payload.public_key or b"") == 1024


def test_missing_extra_and_misordered_keys_are_refused() -> None:
    raw = _raw_payload(REFERENCE)
    missing = {k: v for k, v in raw.items() if k != "nonce"}
    extra = {**raw, "extra": 1}
    misordered = {k: raw[k] for k in reversed(PAYLOAD_KEYS)}
    for variant, word in ((missing, "missing"), (extra, "unexpected"), (misordered, "order")):
        with pytest.raises(DocumentFormatError) as info:
            decode_payload(cbor2.dumps(variant))
        assert info.value.field == "payload"
        assert word in info.value.reason


def test_duplicate_payload_key_is_refused() -> None:
    raw = _raw_payload(REFERENCE)
    body = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in raw.items())
    # A 10-entry map whose last entry repeats "nonce": cbor2 alone would keep the last value.
    duplicate = b"\xaa" + body + cbor2.dumps("nonce") + cbor2.dumps(b"evil")
    with pytest.raises(DocumentFormatError) as info:
        decode_payload(duplicate)
    assert "Duplicate" in info.value.reason


def test_duplicate_pcr_index_is_refused() -> None:
    raw = _raw_payload(REFERENCE)
    pcrs = b"\xa2" + cbor2.dumps(0) + cbor2.dumps(b"\x00" * 48) + cbor2.dumps(0)
    pcrs += cbor2.dumps(b"\x01" * 48)
    body = b"".join(
        cbor2.dumps(k) + (pcrs if k == "pcrs" else cbor2.dumps(v)) for k, v in raw.items()
    )
    with pytest.raises(DocumentFormatError):
        decode_payload(b"\xa9" + body)


def test_bignum_tagged_timestamp_is_refused() -> None:
    raw = _raw_payload(REFERENCE)
    stamp = int(str(raw["timestamp"]))
    tagged = b"\xc2" + cbor2.dumps(stamp.to_bytes(8, "big"))  # tag 2: decodes to the same int
    body = b"".join(
        cbor2.dumps(k) + (tagged if k == "timestamp" else cbor2.dumps(v)) for k, v in raw.items()
    )
    with pytest.raises(DocumentFormatError) as info:
        decode_payload(b"\xa9" + body)
    assert info.value.field == "timestamp"


def test_payload_trailing_bytes_are_refused() -> None:
    raw_bytes = decode_document(REFERENCE.data).payload_bytes
    with pytest.raises(DocumentFormatError) as info:
        decode_payload(raw_bytes + b"\xf6")
    assert "trailing" in info.value.reason


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(DocumentFormatError):
        decode_document("text")  # type: ignore[arg-type]


def test_encode_document_signs_what_a_verifier_checks() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    payload = decode_document(REFERENCE.data).payload
    data = encode_document(payload, key)
    doc = decode_document(data)
    assert doc.payload == payload
    assert doc.payload_bytes == encode_payload(payload)
    r = int.from_bytes(doc.signature[:48], "big")
    s = int.from_bytes(doc.signature[48:], "big")
    key.public_key().verify(
        encode_dss_signature(r, s),
        sig_structure(doc.protected, doc.payload_bytes),
        ec.ECDSA(hashes.SHA384()),
    )


def test_encode_document_needs_a_p384_key() -> None:
    payload = decode_document(REFERENCE.data).payload
    with pytest.raises(ValueError, match="P-384"):
        encode_document(payload, ec.generate_private_key(ec.SECP256R1()))


def test_payload_model_is_immutable() -> None:
    payload = decode_document(REFERENCE.data).payload
    with pytest.raises(AttributeError):
        payload.nonce = b"x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        payload.pcrs[0] = b"\x00" * 48  # type: ignore[index]


def test_payload_constructor_validates() -> None:
    payload = decode_document(REFERENCE.data).payload
    with pytest.raises(DocumentFormatError) as info:
        AttestationPayload(
            module_id=payload.module_id,
            digest="SHA512",
            timestamp_ms=payload.timestamp_ms,
            pcrs=payload.pcrs,
            certificate=payload.certificate,
            cabundle=payload.cabundle,
        )
    assert info.value.field == "digest"


def test_encoded_documents_have_the_shape_of_real_ones() -> None:
    chain = make_chain()
    real = SAMPLE_BY_NAME["base_nitro_validator_2024-11-30.bin"]
    ours = make_document(chain, public_key=b"\x04" * 65, user_data=None, nonce=None)
    assert shape_of(ours) == shape_of(real.data)
    # and the helper does see differences
    assert shape_of(make_document(chain, nonce=b"n")) != shape_of(real.data)
