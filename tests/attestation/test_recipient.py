"""The KMS recipient envelope: real KMS samples parse exactly; sealed envelopes round-trip; every
malformed or tampered envelope fails with a typed error only."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from attestation.errors import RecipientDecryptionError, RecipientEnvelopeError
from attestation.recipient import (
    MAX_ENVELOPE_SIZE,
    decrypt_for_recipient,
    parse_recipient_envelope,
    seal_for_recipient,
    subject_key_identifier,
)

KMS_DIR = Path(__file__).resolve().parent.parent / "data" / "kms"
EXPECTED = json.loads((KMS_DIR / "expected_fields.json").read_text())
SAMPLE_NAMES = sorted(k for k in EXPECTED if k.endswith(".ber"))


@cache
def rsa_key(tag: int = 0) -> rsa.RSAPrivateKey:
    """One RSA-2048 key per tag for the whole module (key generation is the slow part)."""
    del tag
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sample(name: str) -> bytes:
    return (KMS_DIR / name).read_bytes()


def test_both_real_samples_are_present() -> None:
    assert SAMPLE_NAMES == [
        "kms_ciphertext_for_recipient_1.ber",
        "kms_ciphertext_for_recipient_2.ber",
    ]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_real_kms_response_parses_to_expected_fields(name: str) -> None:
    expected = EXPECTED[name]
    envelope = parse_recipient_envelope(sample(name))
    assert envelope.encrypted_key.hex() == expected["encrypted_key"]
    assert envelope.iv.hex() == expected["iv"]
    assert envelope.encrypted_content.hex() == expected["encrypted_content"]
    assert len(envelope.subject_key_identifier) == 32
    assert expected["key_encryption"] == "RSAES-OAEP, SHA-256, MGF1-SHA-256"
    assert expected["content_encryption"] == "AES-256-CBC"


def test_samples_use_indefinite_lengths_and_sample_2_a_primitive_content() -> None:
    """The samples really exercise BER: indefinite outer length, and two content encodings."""
    first, second = (sample(n) for n in SAMPLE_NAMES)
    assert first[:2] == b"\x30\x80"
    assert second[:2] == b"\x30\x80"
    content = cms.ContentInfo.load(second)["content"]["encrypted_content_info"]["encrypted_content"]
    assert content.method == 0  # primitive [0]
    content = cms.ContentInfo.load(first)["content"]["encrypted_content_info"]["encrypted_content"]
    assert content.method == 1  # constructed [0]


@pytest.mark.parametrize("plaintext", [b"", b"k", b"\x00" * 16, bytes(range(32)), b"x" * 4096])
def test_seal_then_decrypt_round_trips(plaintext: bytes) -> None:
    key = rsa_key()
    sealed = seal_for_recipient(plaintext, key.public_key())
    assert decrypt_for_recipient(sealed, key) == plaintext


def test_sealed_envelope_has_the_kms_shape() -> None:
    key = rsa_key()
    sealed = seal_for_recipient(b"data key", key.public_key())
    envelope = parse_recipient_envelope(sealed)
    assert envelope.subject_key_identifier == subject_key_identifier(key.public_key())
    assert len(envelope.encrypted_key) == 256
    assert len(envelope.iv) == 16
    assert len(envelope.encrypted_content) == 16
    # Same ASN.1 shape as a real KMS response (the parsed tree differs only in values).
    real = cms.ContentInfo.load(sample(SAMPLE_NAMES[0]))["content"]
    ours = cms.ContentInfo.load(sealed)["content"]
    real_ri = real["recipient_infos"][0].chosen
    our_ri = ours["recipient_infos"][0].chosen
    assert our_ri["key_encryption_algorithm"].native == real_ri["key_encryption_algorithm"].native
    assert ours["version"].native == real["version"].native == "v2"
    assert our_ri["version"].native == "v2"


def test_each_seal_uses_a_fresh_content_key_and_iv() -> None:
    key = rsa_key()
    first = parse_recipient_envelope(seal_for_recipient(b"same", key.public_key()))
    second = parse_recipient_envelope(seal_for_recipient(b"same", key.public_key()))
    assert first.iv != second.iv
    assert first.encrypted_key != second.encrypted_key
    assert first.encrypted_content != second.encrypted_content


def test_wrong_private_key_is_an_opaque_decryption_error() -> None:
    sealed = seal_for_recipient(b"secret", rsa_key(0).public_key())
    with pytest.raises(RecipientDecryptionError) as info:
        decrypt_for_recipient(sealed, rsa_key(1))
    assert str(info.value) == RecipientDecryptionError.MESSAGE
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_real_sample_with_our_key_is_an_opaque_decryption_error() -> None:
    with pytest.raises(RecipientDecryptionError):
        decrypt_for_recipient(sample(SAMPLE_NAMES[0]), rsa_key())


def test_rsa_3072_key_does_not_open_a_2048_envelope() -> None:
    big = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    sealed = seal_for_recipient(b"secret", rsa_key().public_key())
    with pytest.raises(RecipientDecryptionError):
        decrypt_for_recipient(sealed, big)


def _rebuild(sealed: bytes, edit: str) -> bytes:
    """Re-encode a sealed envelope with one structural field changed (all else intact)."""
    info = cms.ContentInfo.load(sealed)
    enveloped = info["content"]
    ktri = enveloped["recipient_infos"][0].chosen
    eci = enveloped["encrypted_content_info"]
    if edit == "content_algorithm":
        eci["content_encryption_algorithm"] = {"algorithm": "aes128_cbc", "parameters": b"\0" * 16}
    elif edit == "oaep_sha1":
        ktri["key_encryption_algorithm"] = {
            "algorithm": "rsaes_oaep",
            "parameters": {"hash_algorithm": {"algorithm": "sha1"}},
        }
    elif edit == "pkcs1v15":
        ktri["key_encryption_algorithm"] = {"algorithm": "rsaes_pkcs1v15"}
    elif edit == "two_recipients":
        enveloped["recipient_infos"] = [
            enveloped["recipient_infos"][0],
            enveloped["recipient_infos"][0],
        ]
    elif edit == "short_iv":
        eci["content_encryption_algorithm"] = {"algorithm": "aes256_cbc", "parameters": b"\0" * 8}
    elif edit == "ragged_content":
        eci["encrypted_content"] = eci["encrypted_content"].native + b"\0"
    elif edit == "no_content":
        eci["encrypted_content"] = None
    elif edit == "ktri_version":
        ktri["version"] = "v0"
    elif edit == "short_ski":
        ktri["rid"] = cms.RecipientIdentifier(name="subject_key_identifier", value=b"\1" * 20)
    elif edit == "content_type":
        eci["content_type"] = "signed_data"
    else:  # pragma: no cover - test bug
        raise AssertionError(edit)
    return bytes(info.dump(force=True))


@pytest.mark.parametrize(
    ("edit", "culprit"),
    [
        ("content_algorithm", "content encryption"),
        ("oaep_sha1", "OAEP parameters"),
        ("pkcs1v15", "key encryption algorithm"),
        ("two_recipients", "2 recipient infos"),
        ("short_iv", "IV is 8 bytes"),
        ("ragged_content", "encrypted content is"),
        ("no_content", "encrypted content is missing"),
        ("ktri_version", "ktri version"),
        ("short_ski", "subject key identifier is 20 bytes"),
        ("content_type", "encrypted content type"),
    ],
)
def test_structural_changes_name_the_culprit(edit: str, culprit: str) -> None:
    sealed = seal_for_recipient(b"payload", rsa_key().public_key())
    with pytest.raises(RecipientEnvelopeError, match=culprit):
        parse_recipient_envelope(_rebuild(sealed, edit))


def test_not_enveloped_data_is_refused() -> None:
    data = cms.ContentInfo({"content_type": "data", "content": b"plain"}).dump()
    with pytest.raises(RecipientEnvelopeError, match="expected enveloped_data"):
        parse_recipient_envelope(data)


@pytest.mark.parametrize(
    ("data", "culprit"),
    [
        (b"", "empty"),
        (b"\x30", "malformed ContentInfo"),
        (b"\x00" * (MAX_ENVELOPE_SIZE + 1), "over"),
    ],
)
def test_degenerate_inputs(data: bytes, culprit: str) -> None:
    with pytest.raises(RecipientEnvelopeError, match=culprit):
        parse_recipient_envelope(data)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(RecipientEnvelopeError, match="trailing"):
        parse_recipient_envelope(sample(SAMPLE_NAMES[0]) + b"\x00")


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_every_truncation_of_a_real_sample_is_a_typed_error(name: str) -> None:
    data = sample(name)
    for cut in range(len(data)):
        with pytest.raises(RecipientEnvelopeError):
            parse_recipient_envelope(data[:cut])


def test_every_single_byte_flip_of_a_sealed_envelope_fails_typed() -> None:
    """Flipping any byte is either caught structurally or by decryption; never another exception,
    and never the original plaintext silently returned."""
    key = rsa_key()
    plaintext = b"0123456789abcdef0123456789abcdef"
    sealed = seal_for_recipient(plaintext, key.public_key())
    outcomes: dict[str, int] = {}
    for position in range(len(sealed)):
        mutated = bytearray(sealed)
        mutated[position] ^= 0x01
        try:
            result = decrypt_for_recipient(bytes(mutated), key)
        except (RecipientEnvelopeError, RecipientDecryptionError) as exc:
            outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            continue
        # CBC is malleable (KMS's format): a flip in the IV or a non-final block can still decrypt,
        # and the subject key identifier is not authenticated. It must then differ from the original
        # unless the flipped byte is outside the ciphertext (the identifier).
        envelope = parse_recipient_envelope(bytes(mutated))
        if envelope.subject_key_identifier == subject_key_identifier(key.public_key()):
            assert result != plaintext, position
        outcomes["decrypted"] = outcomes.get("decrypted", 0) + 1
    assert outcomes.get("RecipientEnvelopeError", 0) > 0
    assert outcomes.get("RecipientDecryptionError", 0) > 0


@given(st.binary(max_size=600))
def test_arbitrary_bytes_only_raise_typed_errors(data: bytes) -> None:
    with pytest.raises(RecipientEnvelopeError):
        parse_recipient_envelope(data)


@given(st.data())
def test_arbitrary_mutations_of_a_real_sample_only_raise_typed_errors(data: st.DataObject) -> None:
    original = sample(SAMPLE_NAMES[1])
    position = data.draw(st.integers(0, len(original) - 1))
    replacement = data.draw(st.binary(min_size=0, max_size=8))
    mutated = original[:position] + replacement + original[position + 1 :]
    try:
        parse_recipient_envelope(mutated)
    except RecipientEnvelopeError:
        return
    with pytest.raises((RecipientDecryptionError, RecipientEnvelopeError)):
        decrypt_for_recipient(mutated, rsa_key())


def test_seal_refuses_non_bytes_and_small_keys() -> None:
    with pytest.raises(TypeError):
        seal_for_recipient("text", rsa_key().public_key())  # type: ignore[arg-type]
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="RSA-2048"):
        seal_for_recipient(b"x", small.public_key())
