"""The KMS recipient envelope: ``CiphertextForRecipient`` (CMS EnvelopedData, RFC 5652 section 6).

When an enclave calls KMS ``Decrypt`` / ``GenerateDataKey`` / ``GenerateRandom`` with a ``Recipient``
(its attestation document binding an RSA public key), KMS does not return the plaintext; it returns
``CiphertextForRecipient``, a CMS ``ContentInfo`` carrying ``EnvelopedData`` that only the holder of
the matching RSA private key -- the attested enclave -- can open. Real KMS responses look like this
(checked against two genuine responses in ``tests/data/kms/``)::

    ContentInfo { contentType id-envelopedData, content [0] EnvelopedData {
        version 2,                                   -- because the recipient uses a key identifier
        recipientInfos SET OF { ktri KeyTransRecipientInfo {
            version 2, rid [0] subjectKeyIdentifier (32 bytes),
            keyEncryptionAlgorithm id-RSAES-OAEP { SHA-256, MGF1-SHA-256, pSpecified empty label },
            encryptedKey OCTET STRING } },
        encryptedContentInfo { id-data, aes256-CBC (IV: 16-byte OCTET STRING),
                               encryptedContent [0] IMPLICIT OCTET STRING } } }

encoded in BER with indefinite lengths; the encrypted content may be primitive or constructed
(chunked). Parsing is done by asn1crypto (a vetted BER/DER decoder); the cryptography is done by
``cryptography``. Nothing here is home-made.

Trust and failure model:
- Structure is public: a malformed or unexpected envelope raises :class:`RecipientEnvelopeError`
  naming the field that was wrong. Only the exact shape above is accepted (one recipient, OAEP with
  SHA-256 everywhere, AES-256-CBC); anything else is refused rather than "handled".
- Decryption touches the secret: OAEP failure, bad CBC padding, a wrong key, a content key of the wrong
  length all collapse into one :class:`RecipientDecryptionError` with a fixed message raised
  ``from None``, so a caller (or an attacker replaying mutated envelopes through the parent) learns
  nothing about which step failed (no padding oracle).
- CBC is unauthenticated. That is KMS's format, not our choice; the envelope arrives inside KMS's TLS
  session, which terminates in the enclave, and the plaintext is a data key whose misuse fails closed
  downstream (an AEAD under that key). The emulated KMS produces the same format so both modes run the
  same code.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from asn1crypto import algos, cms
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from attestation.errors import RecipientDecryptionError, RecipientEnvelopeError

__all__ = [
    "MAX_ENVELOPE_SIZE",
    "RecipientEnvelope",
    "decrypt_for_recipient",
    "parse_recipient_envelope",
    "seal_for_recipient",
    "subject_key_identifier",
]

#: KMS plaintexts are at most 4096 bytes; with RSA-4096 and framing an envelope stays far below this.
MAX_ENVELOPE_SIZE = 16 * 1024
_SKI_LEN = 32
_IV_LEN = 16
_AES256_KEY_LEN = 32
_AES_BLOCK = 16
#: RSA-2048, -3072 and -4096 moduli in bytes: the only key sizes KMS and we accept for a recipient.
_RSA_SIZES = frozenset({256, 384, 512})
_OAEP_PARAMS_NATIVE = {
    "hash_algorithm": {"algorithm": "sha256", "parameters": None},
    "mask_gen_algorithm": {
        "algorithm": "mgf1",
        "parameters": {"algorithm": "sha256", "parameters": None},
    },
    "p_source_algorithm": {"algorithm": "p_specified", "parameters": b""},
}


@dataclass(frozen=True, slots=True)
class RecipientEnvelope:
    """The public fields of a parsed ``CiphertextForRecipient``.

    None of these is secret: the content key is RSA-OAEP-encrypted and the content AES-encrypted.
    """

    subject_key_identifier: bytes
    encrypted_key: bytes
    iv: bytes
    encrypted_content: bytes


def subject_key_identifier(public_key: rsa.RSAPublicKey) -> bytes:
    """The 32-byte identifier we put in sealed envelopes: SHA-256 of the SubjectPublicKeyInfo DER.

    KMS does not document how it derives its identifier, so :func:`decrypt_for_recipient` does not
    require it to match; it lets a holder of several keys pick the right one.
    """
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def _bytes_field(value: Any, field: str) -> bytes:
    native = value.native
    if not isinstance(native, bytes):
        raise RecipientEnvelopeError(f"{field} is missing or not an OCTET STRING")
    return native


def _parse_recipient(ri: Any) -> tuple[bytes, bytes]:
    """Check the single KeyTransRecipientInfo; return (subject key identifier, encrypted key)."""
    if ri.name != "ktri":
        raise RecipientEnvelopeError(f"recipient info is {ri.name}, expected ktri")
    ktri = ri.chosen
    if ktri["version"].native != "v2":
        raise RecipientEnvelopeError("ktri version must be 2 (subject key identifier)")
    rid = ktri["rid"]
    if rid.name != "subject_key_identifier":
        raise RecipientEnvelopeError(f"ktri rid is {rid.name}, expected subject_key_identifier")
    ski = _bytes_field(rid.chosen, "subject key identifier")
    if len(ski) != _SKI_LEN:
        raise RecipientEnvelopeError(f"subject key identifier is {len(ski)} bytes, expected 32")
    kea = ktri["key_encryption_algorithm"]
    algorithm = kea["algorithm"].native
    if algorithm != "rsaes_oaep":
        raise RecipientEnvelopeError(f"key encryption algorithm is {algorithm}, expected OAEP")
    params = kea["parameters"].native
    if params != _OAEP_PARAMS_NATIVE:
        raise RecipientEnvelopeError("OAEP parameters must be SHA-256, MGF1-SHA-256, empty label")
    encrypted_key = _bytes_field(ktri["encrypted_key"], "encrypted key")
    if len(encrypted_key) not in _RSA_SIZES:
        raise RecipientEnvelopeError(f"encrypted key is {len(encrypted_key)} bytes, not RSA")
    return ski, encrypted_key


def _parse_content(eci: Any) -> tuple[bytes, bytes]:
    """Check the EncryptedContentInfo; return (IV, encrypted content)."""
    if eci["content_type"].native != "data":
        raise RecipientEnvelopeError("encrypted content type must be id-data")
    cea = eci["content_encryption_algorithm"]
    algorithm = cea["algorithm"].native
    if algorithm != "aes256_cbc":
        raise RecipientEnvelopeError(f"content encryption is {algorithm}, expected aes256_cbc")
    iv = _bytes_field(cea["parameters"], "content encryption IV")
    if len(iv) != _IV_LEN:
        raise RecipientEnvelopeError(f"IV is {len(iv)} bytes, expected 16")
    content = _bytes_field(eci["encrypted_content"], "encrypted content")
    if not content or len(content) % _AES_BLOCK:
        raise RecipientEnvelopeError(
            f"encrypted content is {len(content)} bytes, not a positive multiple of 16"
        )
    return iv, content


# What asn1crypto raises on hostile BER (AttributeError and NotImplementedError included: some
# malformed encodings reach code paths that assume a well-formed tree).
_ASN1_FAILURES = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    OverflowError,
    RecursionError,
)


def parse_recipient_envelope(data: bytes) -> RecipientEnvelope:
    """Parse a ``CiphertextForRecipient`` (BER or DER), refusing anything but KMS's exact shape."""
    if not isinstance(data, bytes):
        raise RecipientEnvelopeError("envelope must be bytes")
    if not data:
        raise RecipientEnvelopeError("envelope is empty")
    if len(data) > MAX_ENVELOPE_SIZE:
        raise RecipientEnvelopeError(f"envelope is {len(data)} bytes, over {MAX_ENVELOPE_SIZE}")
    try:
        info = cms.ContentInfo.load(data, strict=True)
        # asn1crypto parses lazily; force the whole tree now so that every BER error surfaces
        # here, as one typed error, rather than at some later field access.
        info.native  # noqa: B018
        return _check_structure(info)
    except _ASN1_FAILURES as exc:
        raise RecipientEnvelopeError(f"malformed ContentInfo: {exc}") from None


def _check_structure(info: cms.ContentInfo) -> RecipientEnvelope:
    content_type = info["content_type"].native
    enveloped = info["content"]
    if content_type != "enveloped_data" or not isinstance(enveloped, cms.EnvelopedData):
        raise RecipientEnvelopeError(f"content type is {content_type}, expected enveloped_data")
    if enveloped["version"].native != "v2":
        raise RecipientEnvelopeError("EnvelopedData version must be 2")
    if enveloped["originator_info"].native is not None:
        raise RecipientEnvelopeError("unexpected originator info")
    if enveloped["unprotected_attrs"].native is not None:
        raise RecipientEnvelopeError("unexpected unprotected attributes")
    recipients = enveloped["recipient_infos"]
    if len(recipients) != 1:
        raise RecipientEnvelopeError(f"{len(recipients)} recipient infos, expected exactly 1")
    ski, encrypted_key = _parse_recipient(recipients[0])
    iv, content = _parse_content(enveloped["encrypted_content_info"])
    return RecipientEnvelope(
        subject_key_identifier=ski, encrypted_key=encrypted_key, iv=iv, encrypted_content=content
    )


def _oaep() -> OAEP:
    return OAEP(mgf=MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def decrypt_for_recipient(data: bytes, private_key: rsa.RSAPrivateKey) -> bytes:
    """Open a ``CiphertextForRecipient`` with the recipient's RSA key and return the plaintext.

    Structural problems raise :class:`RecipientEnvelopeError` (public data). Every failure after the
    structure checks -- wrong key, OAEP failure, a content key that is not 32 bytes, bad CBC padding --
    raises the same opaque :class:`RecipientDecryptionError`, ``from None``.
    """
    envelope = parse_recipient_envelope(data)
    try:
        if len(envelope.encrypted_key) != private_key.key_size // 8:
            raise ValueError
        content_key = private_key.decrypt(envelope.encrypted_key, _oaep())
        if len(content_key) != _AES256_KEY_LEN:
            raise ValueError
        decryptor = Cipher(algorithms.AES256(content_key), modes.CBC(envelope.iv)).decryptor()
        padded = decryptor.update(envelope.encrypted_content) + decryptor.finalize()
        unpadder = padding.PKCS7(algorithms.AES256.block_size).unpadder()
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise RecipientDecryptionError() from None


def seal_for_recipient(plaintext: bytes, recipient_public_key: rsa.RSAPublicKey) -> bytes:
    """Build a ``CiphertextForRecipient`` the way KMS does (used by the emulated KMS).

    A fresh AES-256 content key and IV come from the OS CSPRNG for every envelope; the content key is
    wrapped with RSAES-OAEP (SHA-256, MGF1-SHA-256, empty label). The output is DER, which is a subset
    of the BER that :func:`parse_recipient_envelope` accepts, with the same fields as KMS's responses.
    """
    if not isinstance(plaintext, bytes):
        raise TypeError("plaintext must be bytes")
    if recipient_public_key.key_size // 8 not in _RSA_SIZES:
        raise ValueError("recipient key must be RSA-2048, -3072 or -4096")
    content_key = os.urandom(_AES256_KEY_LEN)
    iv = os.urandom(_IV_LEN)
    padder = padding.PKCS7(algorithms.AES256.block_size).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES256(content_key), modes.CBC(iv)).encryptor()
    encrypted_content = encryptor.update(padded) + encryptor.finalize()
    encrypted_key = recipient_public_key.encrypt(content_key, _oaep())
    oaep_params = algos.RSAESOAEPParams(
        {
            "hash_algorithm": {"algorithm": "sha256"},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
        }
    )
    ktri = cms.KeyTransRecipientInfo(
        {
            "version": "v2",
            "rid": cms.RecipientIdentifier(
                name="subject_key_identifier", value=subject_key_identifier(recipient_public_key)
            ),
            "key_encryption_algorithm": {"algorithm": "rsaes_oaep", "parameters": oaep_params},
            "encrypted_key": encrypted_key,
        }
    )
    enveloped = cms.EnvelopedData(
        {
            "version": "v2",
            "recipient_infos": [cms.RecipientInfo(name="ktri", value=ktri)],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {
                    "algorithm": "aes256_cbc",
                    "parameters": iv,
                },
                "encrypted_content": encrypted_content,
            },
        }
    )
    info = cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped})
    return bytes(info.dump())
