"""The emulated NSM behind the typed client: PCR semantics, error codes, and documents that the real
verifier accepts with the emulated root pinned, refuses with the AWS root, and that have the same
structure as genuine ones."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from attestation_vectors import SAMPLE_BY_NAME, VALID_SAMPLES, Sample
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from attestation.codec import decode_document
from attestation.emulated_ca import LEAF_LIFETIME, EmulatedCa
from attestation.errors import CertificateNotValidAt, PolicyViolation, UntrustedRoot
from attestation.measure import Measurements, pcr_map
from attestation.nsm.client import NsmClient
from attestation.nsm.emulated import EmulatedNsm
from attestation.nsm.errors import (
    NsmMessageError,
    NsmRefusedError,
    NsmUnexpectedResponseError,
)
from attestation.nsm.messages import (
    Digest,
    ErrorCode,
    ErrorResponse,
    GetRandomResponse,
    decode_response,
    encode_response,
)
from attestation.policy import AttestationPolicy
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier

MEASURED = Measurements(pcr0=b"\xa0" * 48, pcr1=b"\xa1" * 48, pcr2=b"\xa2" * 48)
START = dt.datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=dt.UTC)
MODULE_ID = re.compile(r"^i-[0-9a-f]{17}-enc[0-9a-f]{16}$")


class FixedClock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="module")
def ca() -> EmulatedCa:
    return EmulatedCa.ephemeral(clock=FixedClock(START))


def make(
    ca: EmulatedCa,
    *,
    debug: bool = False,
    clock: Callable[[], dt.datetime] | None = None,
    role: str | None = "keyshard-node",
) -> tuple[EmulatedNsm, NsmClient]:
    pcrs = pcr_map(MEASURED, role=role, instance_id=ca.instance_id)
    nsm = EmulatedNsm(ca, pcrs, debug=debug, clock=clock or FixedClock(START))
    return nsm, NsmClient(nsm)


def test_boot_pcrs_are_the_measurement_and_locked(ca: EmulatedCa) -> None:
    _, client = make(ca)
    expected = pcr_map(MEASURED, role="keyshard-node", instance_id=ca.instance_id)
    for index in range(16):
        state = client.describe_pcr(index)
        assert state.locked
        assert state.value == expected[index]
    assert client.describe_pcr(0).value == MEASURED.pcr0


def test_pcr16_to_31_extend_with_sha384_and_lock(ca: EmulatedCa) -> None:
    _, client = make(ca)
    for index in (16, 31):
        assert client.describe_pcr(index) == (False, bytes(48))
        first = client.extend_pcr(index, b"config")
        assert first == hashlib.sha384(bytes(48) + b"config").digest()
        second = client.extend_pcr(index, b"more")
        assert second == hashlib.sha384(first + b"more").digest()
        assert client.describe_pcr(index) == (False, second)
    client.lock_pcr(16)
    assert client.describe_pcr(16).locked
    with pytest.raises(NsmRefusedError) as info:
        client.extend_pcr(16, b"late")
    assert info.value.code is ErrorCode.READ_ONLY_INDEX
    assert info.value.request == "ExtendPCR"
    assert client.describe_pcr(31).locked is False


@pytest.mark.parametrize("index", [0, 3, 8, 15])
def test_boot_pcrs_refuse_extension(ca: EmulatedCa, index: int) -> None:
    _, client = make(ca)
    before = client.describe_pcr(index).value
    with pytest.raises(NsmRefusedError) as info:
        client.extend_pcr(index, b"x")
    assert info.value.code is ErrorCode.READ_ONLY_INDEX
    assert client.describe_pcr(index).value == before


def test_lock_pcrs_locks_a_prefix(ca: EmulatedCa) -> None:
    _, client = make(ca)
    client.lock_pcrs(20)
    assert [client.describe_pcr(i).locked for i in (16, 19, 20, 31)] == [True, True, False, False]
    with pytest.raises(NsmRefusedError):
        client.extend_pcr(19, b"x")
    client.extend_pcr(20, b"x")
    client.lock_pcrs(32)
    assert client.describe_nsm().locked_pcrs == frozenset(range(32))


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.describe_pcr(32),
        lambda c: c.extend_pcr(32, b"x"),
        lambda c: c.lock_pcr(32),
        lambda c: c.lock_pcrs(33),
        lambda c: c.describe_pcr(0xFFFF),
    ],
)
def test_out_of_range_indices_are_invalid_index(
    ca: EmulatedCa, call: Callable[[NsmClient], object]
) -> None:
    _, client = make(ca)
    with pytest.raises(NsmRefusedError) as info:
        call(client)
    assert info.value.code is ErrorCode.INVALID_INDEX


def test_describe_nsm(ca: EmulatedCa) -> None:
    nsm, client = make(ca)
    description = client.describe_nsm()
    assert description.module_id == nsm.module_id
    assert MODULE_ID.match(description.module_id)
    assert description.module_id.startswith(ca.instance_id + "-enc")
    assert description.max_pcrs == 32
    assert description.digest is Digest.SHA384
    assert description.locked_pcrs == frozenset(range(16))
    assert (description.version_major, description.version_minor) == (1, 0)


def test_get_random_uses_the_injected_source(ca: EmulatedCa) -> None:
    calls: list[int] = []

    def source(n: int) -> bytes:
        calls.append(n)
        return bytes([len(calls)]) * n

    nsm = EmulatedNsm(ca, pcr_map(MEASURED), clock=FixedClock(START), random=source)
    client = NsmClient(nsm)
    assert client.get_random() == b"\x02" * 256  # call 1 made the module id
    assert calls == [2, 256]


def test_malformed_requests_get_invalid_argument_never_an_exception(ca: EmulatedCa) -> None:
    nsm, _ = make(ca)
    for request in (b"", b"\xff", b"\xa0", cbor2.dumps("Reboot"), b"\x00" * 5000):
        assert decode_response(nsm.call(request)) == ErrorResponse(ErrorCode.INVALID_ARGUMENT)


def test_document_fields_and_clock(ca: EmulatedCa) -> None:
    nsm, client = make(ca)
    document = decode_document(client.get_attestation_document(b"user", b"nonce", b"key"))
    payload = document.payload
    assert payload.module_id == nsm.module_id
    assert payload.digest == "SHA384"
    assert payload.timestamp_ms == int(START.timestamp() * 1000)
    assert payload.user_data == b"user"
    assert payload.nonce == b"nonce"
    assert payload.public_key == b"key"
    assert dict(payload.pcrs) == dict(
        pcr_map(MEASURED, role="keyshard-node", instance_id=ca.instance_id)
    )
    leaf = x509.load_der_x509_certificate(payload.certificate)
    assert leaf.not_valid_before_utc <= payload.timestamp <= leaf.not_valid_after_utc
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == LEAF_LIFETIME
    assert payload.module_id in leaf.subject.rfc4514_string()


def test_each_document_has_a_fresh_leaf(ca: EmulatedCa) -> None:
    _, client = make(ca)
    first = decode_document(client.get_attestation_document())
    second = decode_document(client.get_attestation_document())
    assert first.payload.certificate != second.payload.certificate
    assert first.payload.cabundle == second.payload.cabundle


def test_absent_optional_fields_are_null(ca: EmulatedCa) -> None:
    _, client = make(ca)
    document = decode_document(client.get_attestation_document())
    raw = cbor2.loads(document.payload_bytes)
    assert raw["public_key"] is None
    assert raw["user_data"] is None
    assert raw["nonce"] is None


@pytest.mark.parametrize(
    ("field", "limit"), [("user_data", 512), ("nonce", 512), ("public_key", 1024)]
)
def test_input_size_limits_match_the_real_nsm(ca: EmulatedCa, field: str, limit: int) -> None:
    _, client = make(ca)
    document = decode_document(client.get_attestation_document(**{field: b"x" * limit}))
    assert getattr(document.payload, field) == b"x" * limit
    with pytest.raises(NsmRefusedError) as info:
        client.get_attestation_document(**{field: b"x" * (limit + 1)})
    assert info.value.code is ErrorCode.INPUT_TOO_LARGE


def test_debug_mode_zeroes_pcr_0_1_2_8(ca: EmulatedCa) -> None:
    nsm, client = make(ca, debug=True)
    assert nsm.debug
    document = decode_document(client.get_attestation_document())
    assert document.payload.is_debug_mode
    for index in (0, 1, 2, 8):
        assert document.payload.pcrs[index] == bytes(48)
        assert client.describe_pcr(index).value == bytes(48)
    assert document.payload.pcrs[3] != bytes(48)


def test_boot_pcrs_must_be_sixteen_48_byte_values(ca: EmulatedCa) -> None:
    pcrs = dict(pcr_map(MEASURED))
    with pytest.raises(ValueError, match=r"PCR0\.\.PCR15"):
        EmulatedNsm(ca, {i: pcrs[i] for i in range(15)})
    pcrs[5] = b"\x00" * 32
    with pytest.raises(ValueError, match="48 bytes"):
        EmulatedNsm(ca, pcrs)


# ---- the verifier and the policy ---------------------------------------------------------------


def test_emulated_document_verifies_with_the_emulated_root_pinned(ca: EmulatedCa) -> None:
    _, client = make(ca)
    data = client.get_attestation_document(public_key=b"channel key", nonce=b"fresh")
    verifier = AttestationVerifier(TrustedRoots.of([ca.root_certificate]), clock=lambda: START)
    verified = verifier.verify(data)
    assert verified.root_fingerprint == ca.root_fingerprint
    assert not verified.is_debug_mode
    policy = AttestationPolicy(
        pcrs={0: [MEASURED.pcr0], 1: [MEASURED.pcr1], 2: [MEASURED.pcr2]},
        nonce=b"fresh",
        public_key=b"channel key",
    )
    policy.check(verified, now=START)


def test_emulated_document_is_refused_with_the_aws_root(ca: EmulatedCa) -> None:
    _, client = make(ca)
    data = client.get_attestation_document()
    with pytest.raises(UntrustedRoot) as info:
        AttestationVerifier(clock=lambda: START).verify(data)
    assert info.value.fingerprint == ca.root_fingerprint


def test_another_clouds_root_does_not_verify(ca: EmulatedCa) -> None:
    _, client = make(ca)
    other = EmulatedCa.ephemeral(cloud="other", clock=FixedClock(START))
    with pytest.raises(UntrustedRoot):
        AttestationVerifier(TrustedRoots.of([other.root_certificate])).verify(
            client.get_attestation_document(), at=START
        )


def test_a_changed_measurement_fails_the_pcr_policy(ca: EmulatedCa) -> None:
    changed = Measurements(pcr0=b"\xb0" * 48, pcr1=MEASURED.pcr1, pcr2=MEASURED.pcr2)
    nsm = EmulatedNsm(ca, pcr_map(changed), clock=FixedClock(START))
    verified = AttestationVerifier(TrustedRoots.of([ca.root_certificate])).verify(
        NsmClient(nsm).get_attestation_document(), at=START
    )
    with pytest.raises(PolicyViolation, match="PCR0"):
        AttestationPolicy(pcrs={0: [MEASURED.pcr0]}).check(verified, now=START)


def test_debug_document_verifies_but_policy_refuses_it(ca: EmulatedCa) -> None:
    _, client = make(ca, debug=True)
    verified = AttestationVerifier(TrustedRoots.of([ca.root_certificate])).verify(
        client.get_attestation_document(), at=START
    )
    with pytest.raises(PolicyViolation, match="debug"):
        AttestationPolicy().check(verified, now=START)
    AttestationPolicy(allow_debug=True).check(verified, now=START)


def test_documents_keep_verifying_as_the_clock_runs(ca: EmulatedCa) -> None:
    """Intermediates are renewed before a leaf would outlive them (a week of emulated time)."""
    clock = FixedClock(START)
    _, client = make(ca, clock=clock)
    verifier = AttestationVerifier(TrustedRoots.of([ca.root_certificate]), clock=clock)
    for hours in range(0, 24 * 7, 7):
        clock.now = START + dt.timedelta(hours=hours)
        verifier.verify(client.get_attestation_document())


def test_verification_fails_once_the_leaf_has_expired(ca: EmulatedCa) -> None:
    _, client = make(ca)
    data = client.get_attestation_document()
    verifier = AttestationVerifier(TrustedRoots.of([ca.root_certificate]))
    verifier.verify(data, at=START + LEAF_LIFETIME - dt.timedelta(seconds=1))
    with pytest.raises(CertificateNotValidAt) as info:
        verifier.verify(data, at=START + LEAF_LIFETIME + dt.timedelta(seconds=1))
    assert info.value.step == 0
    assert info.value.expired


# ---- same structure as genuine documents --------------------------------------------------------


def _shape(data: bytes) -> dict[str, Any]:
    """Everything about a document's structure that does not depend on its values."""
    envelope = cbor2.loads(data)
    payload = cbor2.loads(envelope[2])
    return {
        "envelope": [type(item).__name__ for item in envelope],
        "protected": envelope[0],
        "unprotected": envelope[1],
        "signature_len": len(envelope[3]),
        "keys": list(payload),
        "types": {k: type(v).__name__ for k, v in payload.items() if v is not None},
        "pcr_indices": sorted(payload["pcrs"]),
        "pcr_lengths": sorted({len(v) for v in payload["pcrs"].values()}),
        "chain_depth": len(payload["cabundle"]),
        "digest": payload["digest"],
        "module_id_format": bool(MODULE_ID.match(payload["module_id"])),
    }


def _chain_shape(payload_cabundle: list[bytes], leaf: bytes) -> list[tuple[object, ...]]:
    shapes: list[tuple[object, ...]] = []
    for der in [*payload_cabundle, leaf]:
        cert = x509.load_der_x509_certificate(der)
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        shapes.append(
            (
                type(cert.public_key().curve).__name__,  # type: ignore[union-attr]
                cert.signature_hash_algorithm.name,  # type: ignore[union-attr]
                constraints.value.ca,
                constraints.value.path_length,
            )
        )
    return shapes


@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=lambda s: s.name)
def test_emulated_document_has_the_structure_of_a_real_one(ca: EmulatedCa, sample: Sample) -> None:
    _, client = make(ca)
    ours = client.get_attestation_document(user_data=b"u", nonce=b"n", public_key=b"k")
    real = sample.data
    ours_shape, real_shape = _shape(ours), _shape(real)
    # Optional fields present in one and absent in the other are compared only when both are set.
    common = set(ours_shape["types"]) & set(real_shape["types"])
    for shape in (ours_shape, real_shape):
        shape["types"] = {k: v for k, v in shape["types"].items() if k in common}
    assert ours_shape == real_shape
    ours_payload = cbor2.loads(cbor2.loads(ours)[2])
    real_payload = cbor2.loads(cbor2.loads(real)[2])
    assert _chain_shape(ours_payload["cabundle"], ours_payload["certificate"]) == _chain_shape(
        real_payload["cabundle"], real_payload["certificate"]
    )


def test_structure_comparison_can_fail() -> None:
    """The shape function sees the differences it is meant to see (guards the test above)."""
    real = SAMPLE_BY_NAME["evervault_ga_valid.bin"].data
    envelope = cbor2.loads(real)
    payload = cbor2.loads(envelope[2])
    del payload["cabundle"][1]
    envelope[2] = cbor2.dumps(payload)
    assert _shape(cbor2.dumps(envelope))["chain_depth"] == 3
    assert _shape(real)["chain_depth"] == 4


# ---- the client against a misbehaving device ----------------------------------------------------


class ScriptedDevice:
    """A RawNsm that answers every request with one fixed response (a broken or hostile NSM)."""

    def __init__(self, response: bytes) -> None:
        self.response = response

    def call(self, request: bytes) -> bytes:
        return self.response


def test_client_refuses_a_response_of_the_wrong_variant() -> None:
    client = NsmClient(ScriptedDevice(encode_response(GetRandomResponse(b"r"))))
    with pytest.raises(NsmUnexpectedResponseError, match="GetRandom to DescribePCR"):
        client.describe_pcr(0)


def test_client_refuses_garbage_from_the_device() -> None:
    client = NsmClient(ScriptedDevice(b"\xff\xff"))
    with pytest.raises(NsmMessageError):
        client.get_random()


# ---- the emulator never raises on enclave input ------------------------------------------------

_CA = EmulatedCa.ephemeral(clock=FixedClock(START))
_EMULATOR = EmulatedNsm(_CA, pcr_map(MEASURED), clock=FixedClock(START))


@given(st.binary(max_size=300))
def test_arbitrary_request_bytes_always_get_a_decodable_response(data: bytes) -> None:
    response = decode_response(_EMULATOR.call(data))
    assert isinstance(response, ErrorResponse)


def _expected_error(tag: str, index: int) -> ErrorCode | None:
    """The NSM's answer for a fresh module, from the rules in the emulator's docstring."""
    if tag == "LockPCRs":
        return ErrorCode.INVALID_INDEX if index > 32 else None
    if index >= 32:
        return ErrorCode.INVALID_INDEX
    if tag == "ExtendPCR" and index < 16:
        return ErrorCode.READ_ONLY_INDEX
    return None


@pytest.mark.parametrize("tag", ["DescribePCR", "ExtendPCR", "LockPCR", "LockPCRs"])
def test_every_pcr_index_follows_the_nsm_rules(tag: str) -> None:
    """Exhaustive over 0..40 and the u16 edge, each on a fresh module."""
    for index in [*range(41), 0xFFFE, 0xFFFF]:
        nsm = EmulatedNsm(_CA, pcr_map(MEASURED), clock=FixedClock(START))
        body: dict[str, object] = {"range" if tag == "LockPCRs" else "index": index}
        if tag == "ExtendPCR":
            body["data"] = b"x"
        response = decode_response(nsm.call(cbor2.dumps({tag: body})))
        expected = _expected_error(tag, index)
        if expected is None:
            assert tag == response.TAG, index
        else:
            assert response == ErrorResponse(expected), index
