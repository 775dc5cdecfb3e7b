"""The emulated CA: a chain shaped like AWS's (extensions compared with a genuine document's), a
root persisted per cloud with safe file modes, and leaves that are short-lived and fresh."""

from __future__ import annotations

import datetime as dt
import itertools
import stat
import threading
from pathlib import Path

import cbor2
import pytest
from attestation_vectors import SAMPLE_BY_NAME
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.emulated_ca import (
    LEAF_LIFETIME,
    ROOT_BUNDLE_FILE,
    ROOT_CERT_FILE,
    EmulatedCa,
)
from attestation.roots import certificate_fingerprint

NOW = dt.datetime(2026, 5, 4, 8, 30, 15, 999_000, tzinfo=dt.UTC)
# Extensions of real intermediates that the emulation leaves out on purpose (no CRL server).
OMITTED = {x509.oid.ExtensionOID.CRL_DISTRIBUTION_POINTS}


def real_chain() -> list[x509.Certificate]:
    payload = cbor2.loads(cbor2.loads(SAMPLE_BY_NAME["evervault_ga_valid.bin"].data)[2])
    return [
        x509.load_der_x509_certificate(d) for d in [*payload["cabundle"], payload["certificate"]]
    ]


def emulated_chain(ca: EmulatedCa, now: dt.datetime = NOW) -> list[x509.Certificate]:
    leaf, bundle = ca.issue_leaf("i-0123456789abcdef0-enc0123456789abcdef", now)
    return [x509.load_der_x509_certificate(d) for d in [*bundle, leaf.certificate_der]]


def extension_profile(cert: x509.Certificate) -> dict[str, tuple[bool, object]]:
    """Which extensions a certificate has, their criticality, and the policy-relevant values."""
    profile: dict[str, tuple[bool, object]] = {}
    for extension in cert.extensions:
        if extension.oid in OMITTED:
            continue
        value: object = None
        if isinstance(extension.value, x509.BasicConstraints | x509.KeyUsage):
            value = extension.value
        profile[extension.oid.dotted_string] = (extension.critical, value)
    return profile


@pytest.fixture(scope="module")
def ca() -> EmulatedCa:
    return EmulatedCa.ephemeral(clock=lambda: NOW)


def test_chain_has_the_depth_and_extensions_of_a_genuine_one(ca: EmulatedCa) -> None:
    ours, real = emulated_chain(ca), real_chain()
    assert len(ours) == len(real) == 5
    for position, (mine, theirs) in enumerate(zip(ours, real, strict=True)):
        assert extension_profile(mine) == extension_profile(theirs), position
        assert mine.version == theirs.version == x509.Version.v3


def test_every_certificate_is_p384_ecdsa_sha384_and_issued_by_the_previous(
    ca: EmulatedCa,
) -> None:
    chain = emulated_chain(ca)
    for position, cert in enumerate(chain):
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert isinstance(key.curve, ec.SECP384R1)
        assert cert.signature_hash_algorithm is not None
        assert cert.signature_hash_algorithm.name == "sha384"
        issuer = chain[max(position - 1, 0)]
        cert.verify_directly_issued_by(issuer)
    assert chain[0].subject == chain[0].issuer


def test_certificates_fit_the_document_limits(ca: EmulatedCa) -> None:
    for cert in emulated_chain(ca):
        assert len(cert.public_bytes(Encoding.DER)) <= 1024


def test_leaf_lives_three_hours_from_the_second_of_issue(ca: EmulatedCa) -> None:
    leaf = emulated_chain(ca)[-1]
    assert leaf.not_valid_before_utc == NOW.replace(microsecond=0)
    assert leaf.not_valid_after_utc == NOW.replace(microsecond=0) + LEAF_LIFETIME
    assert dt.timedelta(hours=3) == LEAF_LIFETIME
    constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is False


def test_validity_nests_from_root_to_leaf(ca: EmulatedCa) -> None:
    chain = emulated_chain(ca)
    for parent, child in itertools.pairwise(chain):
        assert parent.not_valid_before_utc <= child.not_valid_before_utc
        assert child.not_valid_after_utc <= parent.not_valid_after_utc


def test_intermediates_are_renewed_before_a_leaf_outlives_them(ca: EmulatedCa) -> None:
    first = emulated_chain(ca, NOW)
    same = emulated_chain(ca, NOW + dt.timedelta(hours=1))
    assert [c.serial_number for c in first[:4]] == [c.serial_number for c in same[:4]]
    later = emulated_chain(ca, NOW + dt.timedelta(hours=22))
    assert later[0].serial_number == first[0].serial_number  # the root never changes
    assert later[3].serial_number != first[3].serial_number
    assert later[3].not_valid_after_utc >= later[4].not_valid_after_utc


def test_every_leaf_has_its_own_key(ca: EmulatedCa) -> None:
    one, _ = ca.issue_leaf("i-0123456789abcdef0-enc0123456789abcdef", NOW)
    two, _ = ca.issue_leaf("i-0123456789abcdef0-enc0123456789abcdef", NOW)
    assert one.certificate_der != two.certificate_der
    assert one.key.public_key() != two.key.public_key()
    assert "<redacted>" in repr(one)
    assert "PRIVATE" not in repr(one)


def test_root_fingerprint_is_sha256_of_der(ca: EmulatedCa) -> None:
    assert ca.root_fingerprint == certificate_fingerprint(ca.root_der)
    assert ca.cabundle()[0] == ca.root_der
    assert len(ca.cabundle()) == 4


def test_instance_id_has_the_ec2_format(ca: EmulatedCa) -> None:
    assert len(ca.instance_id) == 19
    assert ca.instance_id.startswith("i-")
    int(ca.instance_id[2:], 16)


def test_root_is_persisted_and_reloaded(tmp_path: Path) -> None:
    directory = tmp_path / "cloud-a"
    first = EmulatedCa.load_or_create(directory, clock=lambda: NOW)
    second = EmulatedCa.load_or_create(directory, clock=lambda: NOW)
    assert first.root_fingerprint == second.root_fingerprint
    # Intermediates are per process; only the root is shared.
    assert first.cabundle()[1] != second.cabundle()[1]
    bundle = directory / ROOT_BUNDLE_FILE
    cert = directory / ROOT_CERT_FILE
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.stat().st_mode) == 0o644
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    pinned = x509.load_pem_x509_certificate(cert.read_bytes())
    assert pinned.public_bytes(Encoding.DER) == first.root_der
    assert b"PRIVATE KEY" in bundle.read_bytes()
    assert b"PRIVATE KEY" not in cert.read_bytes()
    assert sorted(p.name for p in directory.iterdir()) == sorted([ROOT_CERT_FILE, ROOT_BUNDLE_FILE])


def test_separate_clouds_have_separate_roots(tmp_path: Path) -> None:
    a = EmulatedCa.load_or_create(tmp_path / "a", clock=lambda: NOW)
    b = EmulatedCa.load_or_create(tmp_path / "b", clock=lambda: NOW)
    assert a.root_fingerprint != b.root_fingerprint


def test_concurrent_creation_converges_on_one_root(tmp_path: Path) -> None:
    directory = tmp_path / "race"
    fingerprints: list[str] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait()
        fingerprints.append(
            EmulatedCa.load_or_create(directory, clock=lambda: NOW).root_fingerprint
        )

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fingerprints) == 4
    assert len(set(fingerprints)) == 1
    assert sorted(p.name for p in directory.iterdir()) == sorted([ROOT_CERT_FILE, ROOT_BUNDLE_FILE])


def test_a_bundle_whose_certificate_does_not_match_its_key_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    EmulatedCa.load_or_create(a, clock=lambda: NOW)
    EmulatedCa.load_or_create(b, clock=lambda: NOW)
    key_a = (a / ROOT_BUNDLE_FILE).read_bytes().split(b"-----BEGIN CERTIFICATE-----")[0]
    cert_b = (b / ROOT_CERT_FILE).read_bytes()
    (a / ROOT_BUNDLE_FILE).write_bytes(key_a + cert_b)
    with pytest.raises(ValueError, match="does not match"):
        EmulatedCa.load_or_create(a, clock=lambda: NOW)
