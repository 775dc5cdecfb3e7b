"""The verifier on genuine AWS documents and on documents from a throwaway test CA."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from attestation_test_ca import (
    T0,
    CaChain,
    make_chain,
    make_document,
    make_payload,
    with_spec,
)
from attestation_vectors import (
    AWS_ROOT_SHA256,
    INVALID_SAMPLE,
    SAMPLE_BY_NAME,
    SAMPLES,
    VALID_SAMPLES,
    Sample,
)
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.codec import (
    decode_document,
    encode_document,
    encode_envelope,
    encode_payload,
    sig_structure,
)
from attestation.errors import (
    AttestationError,
    CertificateNotValidAt,
    ChainInvalid,
    DocumentFormatError,
    SignatureInvalid,
    UntrustedRoot,
)
from attestation.roots import TrustedRoots, aws_nitro_root, certificate_fingerprint
from attestation.verifier import AttestationVerifier, VerifiedDocument

P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
    "581a0db248b0a77aecec196accc52973",
    16,
)


@pytest.fixture(scope="module")
def chain() -> CaChain:
    return make_chain()


@pytest.fixture(scope="module")
def test_verifier(chain: CaChain) -> AttestationVerifier:
    return AttestationVerifier(TrustedRoots.of([chain.root]), clock=lambda: T0)


def _ids(sample: Sample) -> str:
    return sample.name


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=_ids)
def test_genuine_documents_verify_at_their_own_timestamp(sample: Sample, workers: int) -> None:
    with AttestationVerifier(workers=workers) as verifier:
        verified = verifier.verify(sample.data, at="document")
    assert verified.root_fingerprint == AWS_ROOT_SHA256
    assert verified.checked_at == sample.instant
    assert verified.payload.module_id == sample.module_id
    assert verified.is_debug_mode is sample.debug_mode


@pytest.mark.parametrize("workers", [0, 2])
def test_invalid_sample_is_refused_for_its_signature(workers: int) -> None:
    with AttestationVerifier(workers=workers) as verifier, pytest.raises(SignatureInvalid):
        verifier.verify(SAMPLE_BY_NAME[INVALID_SAMPLE].data, at="document")


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids)
def test_every_sample_is_expired_now(sample: Sample) -> None:
    with pytest.raises(CertificateNotValidAt) as info:
        AttestationVerifier().verify(sample.data)
    assert info.value.step == 0
    assert info.value.expired
    assert "certificate expired at" in str(info.value)


@pytest.mark.parametrize("sample", SAMPLES, ids=_ids)
def test_every_sample_is_refused_against_another_root(sample: Sample, chain: CaChain) -> None:
    verifier = AttestationVerifier(TrustedRoots.of([chain.root]))
    with pytest.raises(UntrustedRoot) as info:
        verifier.verify(sample.data, at="document")
    assert info.value.step == 4
    assert info.value.fingerprint == AWS_ROOT_SHA256


def test_sample_refused_before_its_leaf_was_issued() -> None:
    sample = VALID_SAMPLES[0]
    with pytest.raises(CertificateNotValidAt) as info:
        AttestationVerifier().verify(sample.data, at=sample.instant - dt.timedelta(days=1))
    assert info.value.step == 0
    assert not info.value.expired


def test_bundled_root_is_the_pinned_one() -> None:
    assert certificate_fingerprint(aws_nitro_root().public_bytes(Encoding.DER)) == AWS_ROOT_SHA256
    assert list(TrustedRoots.aws()) == [AWS_ROOT_SHA256]


def test_test_ca_document_verifies_with_its_root_only(
    chain: CaChain, test_verifier: AttestationVerifier
) -> None:
    data = make_document(chain)
    verified = test_verifier.verify(data)
    assert verified.checked_at == T0
    with pytest.raises(UntrustedRoot):
        AttestationVerifier(clock=lambda: T0).verify(data)


def test_high_s_signature_is_accepted(chain: CaChain, test_verifier: AttestationVerifier) -> None:
    payload_bytes = encode_payload(make_payload(chain))
    protected = b"\xa1\x01\x38\x22"
    der = chain.keys["leaf"].sign(
        sig_structure(protected, payload_bytes), ec.ECDSA(hashes.SHA384())
    )
    r, s = decode_dss_signature(der)
    high_s = s if s > P384_ORDER // 2 else P384_ORDER - s
    assert high_s > P384_ORDER // 2
    signature = r.to_bytes(48, "big") + high_s.to_bytes(48, "big")
    test_verifier.verify(encode_envelope(protected, payload_bytes, signature))


def test_signature_by_another_key_is_refused(
    chain: CaChain, test_verifier: AttestationVerifier
) -> None:
    forged = encode_document(make_payload(chain), ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(SignatureInvalid):
        test_verifier.verify(forged)


@pytest.mark.parametrize("value", [0, P384_ORDER, 2**384 - 1])
def test_out_of_range_signature_scalars_are_refused(
    chain: CaChain, test_verifier: AttestationVerifier, value: int
) -> None:
    doc = decode_document(make_document(chain))
    for signature in (
        value.to_bytes(48, "big") + doc.signature[48:],
        doc.signature[:48] + value.to_bytes(48, "big"),
    ):
        with pytest.raises(SignatureInvalid):
            test_verifier.verify(encode_envelope(doc.protected, doc.payload_bytes, signature))


def test_document_timestamp_outside_leaf_validity_is_refused(
    chain: CaChain, test_verifier: AttestationVerifier
) -> None:
    late = int((T0 + dt.timedelta(hours=3)).timestamp() * 1000)
    with pytest.raises(ChainInvalid) as info:
        test_verifier.verify(make_document(chain, timestamp_ms=late))
    assert info.value.step == 0
    assert "outside the leaf's validity" in info.value.reason


def test_at_document_uses_the_document_timestamp(chain: CaChain) -> None:
    verifier = AttestationVerifier(
        TrustedRoots.of([chain.root]), clock=lambda: T0 + dt.timedelta(days=30)
    )
    data = make_document(chain)
    with pytest.raises(CertificateNotValidAt):
        verifier.verify(data)
    assert verifier.verify(data, at="document").checked_at == T0


def test_naive_or_bogus_instant_is_refused(
    chain: CaChain, test_verifier: AttestationVerifier
) -> None:
    data = make_document(chain)
    with pytest.raises(ValueError, match="timezone-aware"):
        test_verifier.verify(data, at=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="must be"):
        test_verifier.verify(data, at="yesterday")  # type: ignore[arg-type]


def test_verified_document_cannot_be_forged(
    chain: CaChain, test_verifier: AttestationVerifier
) -> None:
    doc = decode_document(make_document(chain))
    with pytest.raises(TypeError):
        VerifiedDocument(document=doc, checked_at=T0, root_fingerprint="x", _mint=object())
    genuine = test_verifier.verify(make_document(chain))
    forged = decode_document(
        encode_document(make_payload(chain), ec.generate_private_key(ec.SECP384R1()))
    )
    with pytest.raises(ValueError, match="_mint"):
        dataclasses.replace(genuine, document=forged)  # type: ignore[call-arg]


# ---- one broken property per certificate: refused at exactly that step ----------------------


@pytest.mark.parametrize(
    ("overrides", "step", "words"),
    [
        (with_spec("zonal", ca=False), 2, "not a CA"),
        (with_spec("instance", ca=None), 1, "no basicConstraints"),
        (with_spec("regional", key_cert_sign=False), 3, "keyCertSign"),
        (with_spec("zonal", key_cert_sign=None), 2, "no keyUsage"),
        (with_spec("regional", path_length=1), 3, "pathLenConstraint"),
        (with_spec("instance", extra_critical=True), 1, "critical extension"),
        (with_spec("leaf", extra_critical=True), 0, "critical extension"),
        (with_spec("leaf", ca=True, path_length=0, key_cert_sign=True), 0, "leaf is a CA"),
        (with_spec("leaf", digital_signature=False), 0, "digitalSignature"),
        (with_spec("leaf", curve=ec.SECP256R1()), 0, "P-384"),
    ],
)
@pytest.mark.parametrize("workers", [0, 2])
def test_chain_faults_name_their_step(
    overrides: dict[str, object], step: int, words: str, workers: int
) -> None:
    bad = make_chain(**overrides)  # type: ignore[arg-type]
    verifier = AttestationVerifier(TrustedRoots.of([bad.root]), clock=lambda: T0, workers=workers)
    # A P-256 leaf cannot sign ES384; sign with a P-384 key: the chain check comes first anyway.
    data = encode_document(make_payload(bad), ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ChainInvalid) as info:
        verifier.verify(data)
    assert info.value.step == step, str(info.value)
    assert words in info.value.reason


@pytest.mark.parametrize(("level", "step"), [("regional", 3), ("zonal", 2), ("instance", 1)])
def test_expired_intermediate_is_refused_at_its_step(level: str, step: int) -> None:
    bad = make_chain(**with_spec(level, not_after=T0 - dt.timedelta(minutes=1)))
    verifier = AttestationVerifier(TrustedRoots.of([bad.root]), clock=lambda: T0)
    with pytest.raises(CertificateNotValidAt) as info:
        verifier.verify(make_document(bad))
    assert info.value.step == step


def test_expired_root_is_refused() -> None:
    bad = make_chain(**with_spec("root", not_after=T0 - dt.timedelta(minutes=1)))
    verifier = AttestationVerifier(TrustedRoots.of([bad.root]), clock=lambda: T0)
    with pytest.raises(CertificateNotValidAt) as info:
        verifier.verify(make_document(bad))
    assert info.value.step == 4


def test_cabundle_from_another_chain_is_refused(chain: CaChain) -> None:
    other = make_chain()
    verifier = AttestationVerifier(TrustedRoots.of([chain.root, other.root]), clock=lambda: T0)
    # Leaf of `chain`, intermediates of `other`: names match, signatures do not.
    mixed = make_document(chain, cabundle=other.cabundle)
    with pytest.raises(ChainInvalid) as info:
        verifier.verify(mixed)
    assert info.value.step == 0
    # Swap one intermediate: the link above and below it breaks.
    spliced = (*chain.cabundle[:2], other.cabundle[2], chain.cabundle[3])
    with pytest.raises(ChainInvalid) as info:
        verifier.verify(make_document(chain, cabundle=spliced))
    assert info.value.step in (1, 2)


def test_cabundle_in_wrong_order_is_refused(
    chain: CaChain, test_verifier: AttestationVerifier
) -> None:
    reordered = tuple(reversed(chain.cabundle))
    with pytest.raises(UntrustedRoot):
        test_verifier.verify(make_document(chain, cabundle=reordered))
    swapped = (chain.cabundle[0], chain.cabundle[2], chain.cabundle[1], chain.cabundle[3])
    with pytest.raises(ChainInvalid):
        test_verifier.verify(make_document(chain, cabundle=swapped))


def test_garbage_certificate_is_refused(chain: CaChain, test_verifier: AttestationVerifier) -> None:
    bundle = (chain.cabundle[0], b"\x30\x03\x02\x01\x00", *chain.cabundle[2:])
    with pytest.raises(ChainInvalid) as info:
        test_verifier.verify(make_document(chain, cabundle=bundle))
    assert info.value.step == 3
    with pytest.raises(ChainInvalid) as info:
        test_verifier.verify(make_document(chain, certificate=b"\x30\x00"))
    assert info.value.step == 0


def test_root_only_bundle_with_leaf_issued_by_root() -> None:
    short = make_chain()
    verifier = AttestationVerifier(TrustedRoots.of([short.root]), clock=lambda: T0)
    # The leaf was issued by "instance", not by the root: refused at step 0.
    with pytest.raises(ChainInvalid) as info:
        verifier.verify(make_document(short, cabundle=short.cabundle[:1]))
    assert info.value.step == 0


# ---- caching ---------------------------------------------------------------------------------


def test_cache_serves_a_stream_and_honours_validity(chain: CaChain) -> None:
    now = [T0]
    verifier = AttestationVerifier(TrustedRoots.of([chain.root]), clock=lambda: now[0])
    data = make_document(chain)
    verifier.verify(data)
    assert verifier.cache_sizes() == (1, 1)
    second = make_document(chain, nonce=b"\x33" * 20)
    assert verifier.verify(second).payload.nonce == b"\x33" * 20
    # The leaf expires at T0 + 2h: past it, the cached chain must not be served.
    now[0] = T0 + dt.timedelta(hours=2, seconds=1)
    with pytest.raises(CertificateNotValidAt) as info:
        verifier.verify(data)
    assert info.value.step == 0
    # A forged signature is refused even when the chain is cached.
    now[0] = T0
    with pytest.raises(SignatureInvalid):
        verifier.verify(
            encode_document(make_payload(chain), ec.generate_private_key(ec.SECP384R1()))
        )


def test_cached_intermediates_expire_too(chain: CaChain) -> None:
    short = make_chain(**with_spec("zonal", not_after=T0 + dt.timedelta(minutes=30)))
    now = [T0]
    verifier = AttestationVerifier(TrustedRoots.of([short.root]), clock=lambda: now[0])
    verifier.verify(make_document(short))
    now[0] = T0 + dt.timedelta(minutes=31)
    with pytest.raises(CertificateNotValidAt) as info:
        verifier.verify(make_document(short))
    assert info.value.step == 2


def test_cache_is_bounded(chain: CaChain) -> None:
    leaves = [make_chain() for _ in range(3)]
    roots = TrustedRoots.of([c.root for c in leaves])
    verifier = AttestationVerifier(roots, cache_entries=2, clock=lambda: T0)
    for c in leaves:
        verifier.verify(make_document(c))
    assert verifier.cache_sizes() == (2, 2)
    verifier.clear_cache()
    assert verifier.cache_sizes() == (0, 0)


def test_only_attestation_errors_escape(chain: CaChain, test_verifier: AttestationVerifier) -> None:
    for data in (b"", b"\x84", make_document(chain)[:-1], b"\xff" * 100):
        with pytest.raises(AttestationError):
            test_verifier.verify(data)


def test_parallel_verifier_prefers_chain_errors_over_signature_errors() -> None:
    bad = make_chain(**with_spec("zonal", ca=False))
    forged = encode_document(make_payload(bad), ec.generate_private_key(ec.SECP384R1()))
    for workers in (0, 2):
        verifier = AttestationVerifier(
            TrustedRoots.of([bad.root]), clock=lambda: T0, workers=workers
        )
        with verifier, pytest.raises(ChainInvalid) as info:
            verifier.verify(forged)
        assert info.value.step == 2


def test_negative_workers_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        AttestationVerifier(workers=-1)


def test_a_signed_document_with_a_substituted_payload_is_refused(
    chain: CaChain, test_verifier: AttestationVerifier
) -> None:
    genuine = decode_document(make_document(chain))
    assert test_verifier.verify(genuine).payload == genuine.payload
    other = decode_document(make_document(chain, nonce=b"attacker")).payload
    forged = dataclasses.replace(genuine, payload=other)
    with pytest.raises(DocumentFormatError) as info:
        test_verifier.verify(forged)
    assert info.value.field == "payload"
