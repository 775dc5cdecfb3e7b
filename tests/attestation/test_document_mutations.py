"""Tampering with a genuine document never yields a verified one, and only typed errors escape.

The verifier is the production one, with its caches: a mutated chain hashes differently, so the
cache can only make tampering cheaper to refuse, never accepted. Every byte position is covered.
"""

from __future__ import annotations

import cbor2
import pytest
from attestation_vectors import SAMPLE_BY_NAME, Sample

from attestation.codec import decode_document, encode_envelope, encode_payload
from attestation.document import AttestationPayload
from attestation.errors import (
    AttestationError,
    ChainInvalid,
    DocumentFormatError,
    SignatureInvalid,
)
from attestation.verifier import AttestationVerifier

SAMPLE = SAMPLE_BY_NAME["evervault_beta_debug_mode.bin"]
SECOND = SAMPLE_BY_NAME["base_nitro_validator_2024-11-30.bin"]


def _primed_verifier(sample: Sample) -> AttestationVerifier:
    verifier = AttestationVerifier(clock=lambda: sample.instant)
    verifier.verify(sample.data)  # genuine: verifies, and primes the caches
    return verifier


def _assert_never_verifies(verifier: AttestationVerifier, data: bytes) -> type[Exception]:
    try:
        verifier.verify(data)
    except AttestationError as exc:
        return type(exc)
    raise AssertionError("a tampered document verified")


# Some flips give a certificate with a non-positive serial: cryptography warns, the chain refuses.
@pytest.mark.filterwarnings(
    "ignore:Parsed a serial number:cryptography.utils.CryptographyDeprecationWarning"
)
@pytest.mark.parametrize(("sample", "mask"), [(SAMPLE, 0xFF), (SECOND, 0x01)], ids=["xff", "x01"])
def test_flipping_any_single_byte_never_verifies(sample: Sample, mask: int) -> None:
    verifier = _primed_verifier(sample)
    data = bytearray(sample.data)
    seen: dict[type[Exception], int] = {}
    for position in range(len(data)):
        data[position] ^= mask
        kind = _assert_never_verifies(verifier, bytes(data))
        seen[kind] = seen.get(kind, 0) + 1
        data[position] ^= mask
    assert bytes(data) == sample.data
    assert sum(seen.values()) == len(sample.data)
    # Every layer takes its share: decoding, the chain and the signature all refuse something.
    assert seen.get(DocumentFormatError, 0) > 0
    assert seen.get(SignatureInvalid, 0) > 0
    assert sum(n for k, n in seen.items() if issubclass(k, ChainInvalid)) > 0
    verifier.verify(sample.data)  # the genuine document still verifies afterwards


def test_flipping_bytes_with_a_parallel_verifier() -> None:
    # Every 7th position: the threaded path must refuse exactly like the serial one.
    serial = _primed_verifier(SAMPLE)
    with AttestationVerifier(clock=lambda: SAMPLE.instant, workers=2) as parallel:
        data = bytearray(SAMPLE.data)
        for position in range(0, len(data), 7):
            data[position] ^= 0xFF
            parallel.clear_cache()
            kind = _assert_never_verifies(parallel, bytes(data))
            assert kind is _assert_never_verifies(serial, bytes(data))
            data[position] ^= 0xFF


def test_every_truncation_is_refused_by_the_decoder() -> None:
    verifier = _primed_verifier(SAMPLE)
    for length in range(len(SAMPLE.data)):
        with pytest.raises(DocumentFormatError):
            verifier.verify(SAMPLE.data[:length])


@pytest.mark.parametrize("suffix", [b"\x00", b"\xff", b"\xf6", b"\x84", SAMPLE.data])
def test_appended_bytes_are_refused(suffix: bytes) -> None:
    with pytest.raises(DocumentFormatError):
        _primed_verifier(SAMPLE).verify(SAMPLE.data + suffix)


def _payload(sample: Sample) -> AttestationPayload:
    return decode_document(sample.data).payload


def _resigned_with_original_signature(sample: Sample, **changes: object) -> bytes:
    doc = decode_document(sample.data)
    fields = {name: getattr(doc.payload, name) for name in AttestationPayload.__slots__}
    fields.update(changes)
    payload = AttestationPayload(**fields)
    return encode_envelope(doc.protected, encode_payload(payload), doc.signature)


@pytest.mark.parametrize(
    "changes",
    [
        {"module_id": "i-0000000000000000-enc0000000000000000"},
        {"timestamp_ms": SAMPLE.timestamp_ms + 1},
        {"pcrs": {**_payload(SAMPLE).pcrs, 0: b"\x01" * 48}},
        {"pcrs": {i: v for i, v in _payload(SAMPLE).pcrs.items() if i != 15}},
        {"public_key": b"attacker key"},
        {"user_data": None},
        {"nonce": b"\x00" * 32},
    ],
    ids=["module_id", "timestamp", "pcr0", "drop-pcr15", "public_key", "user_data", "nonce"],
)
def test_changed_field_under_the_original_signature_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(SignatureInvalid):
        _primed_verifier(SAMPLE).verify(_resigned_with_original_signature(SAMPLE, **changes))


def test_indefinite_reencoding_under_the_original_signature_is_refused() -> None:
    doc = decode_document(SAMPLE.data)
    raw = cbor2.loads(doc.payload_bytes)
    body = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in raw.items())
    data = encode_envelope(doc.protected, b"\xbf" + body + b"\xff", doc.signature)
    # Same payload values, other bytes: the signature covers bytes, so it fails.
    with pytest.raises(SignatureInvalid):
        _primed_verifier(SAMPLE).verify(data)


def test_certificates_from_another_document_are_refused() -> None:
    other = _payload(SECOND)
    variants: list[dict[str, object]] = [
        {"certificate": other.certificate},
        {"cabundle": other.cabundle},
        {"certificate": other.certificate, "cabundle": other.cabundle},
    ]
    for changes in variants:
        data = _resigned_with_original_signature(SAMPLE, **changes)
        with pytest.raises((ChainInvalid, SignatureInvalid)):
            AttestationVerifier().verify(data, at="document")


def test_swapped_certificates_are_refused() -> None:
    payload = _payload(SAMPLE)
    bundle = payload.cabundle
    variants: list[dict[str, object]] = [
        {"certificate": bundle[-1], "cabundle": (*bundle[:-1], payload.certificate)},
        {"cabundle": (bundle[0], bundle[2], bundle[1], bundle[3])},
        {"cabundle": (bundle[0], bundle[1], bundle[3], bundle[2])},
        {"cabundle": tuple(reversed(bundle))},
        {"cabundle": bundle[1:]},
        {"cabundle": (bundle[0], *bundle[2:])},
        {"cabundle": (*bundle, bundle[-1])},
    ]
    for changes in variants:
        data = _resigned_with_original_signature(SAMPLE, **changes)
        with pytest.raises(ChainInvalid):
            AttestationVerifier().verify(data, at="document")
