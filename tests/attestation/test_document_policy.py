"""The policy on verified documents: each rule accepts the right document and names itself."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from attestation_test_ca import T0, CaChain, make_chain, make_document
from attestation_vectors import DATA_DIR, SAMPLE_BY_NAME, VALID_SAMPLES, Sample
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from attestation.codec import decode_document
from attestation.errors import PcrMismatch, PolicyViolation
from attestation.policy import AttestationPolicy
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier, VerifiedDocument


def _verified(sample: Sample) -> VerifiedDocument:
    return AttestationVerifier().verify(sample.data, at="document")


@pytest.fixture(scope="module")
def chain() -> CaChain:
    return make_chain()


def _test_doc(chain: CaChain, **changes: object) -> VerifiedDocument:
    verifier = AttestationVerifier(TrustedRoots.of([chain.root]), clock=lambda: T0)
    return verifier.verify(make_document(chain, **changes))


@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=lambda s: s.name)
def test_manifest_pcrs_satisfy_a_policy_pinning_them(sample: Sample) -> None:
    policy = AttestationPolicy(
        pcrs={i: [v] for i, v in sample.nonzero_pcrs.items()}, allow_debug=sample.debug_mode
    )
    policy.check(_verified(sample), now=sample.instant)


@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=lambda s: s.name)
def test_debug_documents_need_allow_debug(sample: Sample) -> None:
    verified = _verified(sample)
    if sample.debug_mode:
        with pytest.raises(PolicyViolation) as info:
            AttestationPolicy().check(verified)
        assert info.value.rule == "debug"
        AttestationPolicy(allow_debug=True).check(verified)
    else:
        AttestationPolicy().check(verified)


def test_wrong_pcr_names_index_expected_and_actual() -> None:
    sample = SAMPLE_BY_NAME["evervault_beta_valid.bin"]
    wrong = b"\xab" * 48
    with pytest.raises(PcrMismatch) as info:
        AttestationPolicy(pcrs={0: [sample.nonzero_pcrs[0]], 8: [wrong]}).check(_verified(sample))
    assert info.value.rule == "pcr"
    assert info.value.index == 8
    assert info.value.expected == (wrong,)
    assert info.value.actual == sample.nonzero_pcrs[8]
    assert sample.nonzero_pcrs[8].hex() in str(info.value)


def test_pcr_alternatives_allow_a_rolling_upgrade() -> None:
    sample = SAMPLE_BY_NAME["base_nitro_validator_2024-11-30.bin"]
    old, new = b"\x01" * 48, sample.nonzero_pcrs[0]
    AttestationPolicy(pcrs={0: [old, new]}).check(_verified(sample))
    with pytest.raises(PcrMismatch):
        AttestationPolicy(pcrs={0: [old]}).check(_verified(sample))


def test_absent_pcr_is_a_mismatch(chain: CaChain) -> None:
    doc = _test_doc(chain, pcrs={0: b"\x01" * 48, 1: b"\x02" * 48, 2: b"\x03" * 48})
    with pytest.raises(PcrMismatch) as info:
        AttestationPolicy(pcrs={4: [b"\x00" * 48]}).check(doc)
    assert info.value.actual is None


def test_debug_mode_means_pcr_0_1_2_8_zero(chain: CaChain) -> None:
    zero = b"\x00" * 48
    debug = {i: zero for i in range(16)}
    assert _test_doc(chain, pcrs=debug).is_debug_mode
    for index in (0, 1, 2, 8):
        production = {**debug, index: b"\x01" * 48}
        assert not _test_doc(chain, pcrs=production).is_debug_mode
    assert _test_doc(chain, pcrs={**debug, 3: b"\x01" * 48}).is_debug_mode


def test_max_age_and_future(chain: CaChain) -> None:
    doc = _test_doc(chain)
    policy = AttestationPolicy(max_age=dt.timedelta(minutes=5))
    policy.check(doc, now=T0 + dt.timedelta(minutes=5))
    with pytest.raises(PolicyViolation) as info:
        policy.check(doc, now=T0 + dt.timedelta(minutes=5, seconds=1))
    assert info.value.rule == "max_age"
    policy.check(doc, now=T0 - dt.timedelta(seconds=60))
    with pytest.raises(PolicyViolation) as info:
        policy.check(doc, now=T0 - dt.timedelta(seconds=61))
    assert info.value.rule == "future"
    with pytest.raises(ValueError, match="aware"):
        policy.check(doc, now=dt.datetime(2026, 1, 1))


def test_nonce(chain: CaChain) -> None:
    doc = _test_doc(chain, nonce=b"challenge-0001")
    AttestationPolicy(nonce=b"challenge-0001").check(doc)
    for expected in (b"challenge-0002", b"challenge-000", b""):
        with pytest.raises(PolicyViolation) as info:
            AttestationPolicy(nonce=expected).check(doc)
        assert info.value.rule == "nonce"
    with pytest.raises(PolicyViolation) as info:
        AttestationPolicy(nonce=b"x").check(_test_doc(chain, nonce=None))
    assert info.value.rule == "nonce"


def test_public_key_binding(chain: CaChain) -> None:
    doc = _test_doc(chain, public_key=b"key-A")
    AttestationPolicy(public_key=b"key-A").check(doc)
    with pytest.raises(PolicyViolation) as info:
        AttestationPolicy(public_key=b"key-B").check(doc)
    assert info.value.rule == "public_key"
    with pytest.raises(PolicyViolation) as info:
        AttestationPolicy(public_key=b"key-A").check(_test_doc(chain, public_key=None))
    assert info.value.rule == "public_key"


def test_user_data_equality_and_containment(chain: CaChain) -> None:
    digest = hashlib.sha256(b"channel key").digest()
    doc = _test_doc(chain, user_data=b"prefix:" + digest)
    AttestationPolicy(user_data_contains=digest).check(doc)
    AttestationPolicy(user_data=b"prefix:" + digest).check(doc)
    with pytest.raises(PolicyViolation) as info:
        AttestationPolicy(user_data=digest).check(doc)
    assert info.value.rule == "user_data"
    with pytest.raises(PolicyViolation) as info:
        AttestationPolicy(user_data_contains=hashlib.sha256(b"other").digest()).check(doc)
    assert info.value.rule == "user_data"
    with pytest.raises(PolicyViolation):
        AttestationPolicy(user_data_contains=digest).check(_test_doc(chain, user_data=None))


def test_evervault_user_data_binds_its_tls_certificate() -> None:
    sample = SAMPLE_BY_NAME["evervault_ga_valid.bin"]
    cert = x509.load_der_x509_certificate(
        (DATA_DIR / "evervault_ga_valid-certificate.der").read_bytes()
    )
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    doc = _verified(sample)
    # The document binds the TLS key by carrying its SubjectPublicKeyInfo as user_data.
    AttestationPolicy(allow_debug=True, user_data=spki).check(doc)
    other = x509.load_der_x509_certificate(
        AttestationVerifier().verify(sample.data, at="document").payload.certificate
    ).public_key()
    other_spki = other.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(PolicyViolation) as info:
        AttestationPolicy(allow_debug=True, user_data=other_spki).check(doc)
    assert info.value.rule == "user_data"


def test_policy_refuses_unverified_documents() -> None:
    doc = decode_document(VALID_SAMPLES[0].data)
    with pytest.raises(TypeError):
        AttestationPolicy().check(doc)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "pcrs",
    [{32: [b"\x00" * 48]}, {0: []}, {0: [b"\x00" * 47]}, {0: b"\x00" * 48}, {-1: [b"\x00" * 48]}],
)
def test_policy_construction_is_validated(pcrs: dict[int, object]) -> None:
    with pytest.raises(ValueError):
        AttestationPolicy(pcrs=pcrs)  # type: ignore[arg-type]


def test_policy_is_immutable() -> None:
    policy = AttestationPolicy(pcrs={0: [b"\x00" * 48]})
    with pytest.raises(TypeError):
        policy.pcrs[1] = (b"\x00" * 48,)  # type: ignore[index]
    assert policy.pcrs[0] == (b"\x00" * 48,)
