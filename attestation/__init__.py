"""Nitro attestation documents: codec, verifier, policy, NSM interface, KMS recipient envelope."""

from attestation.codec import decode_document, encode_document, encode_payload
from attestation.document import AttestationPayload, SignedDocument
from attestation.emulated_ca import EmulatedCa
from attestation.errors import (
    AttestationError,
    CertificateNotValidAt,
    ChainInvalid,
    DocumentFormatError,
    MeasurementError,
    NsmError,
    PcrMismatch,
    PolicyViolation,
    RecipientDecryptionError,
    RecipientEnvelopeError,
    SignatureInvalid,
    UntrustedRoot,
)
from attestation.measure import Measurements, measure_image, pcr_map
from attestation.nsm import DevNsm, EmulatedNsm, ErrorCode, NsmClient, NsmRefusedError, RawNsm
from attestation.policy import AttestationPolicy
from attestation.recipient import (
    RecipientEnvelope,
    decrypt_for_recipient,
    parse_recipient_envelope,
    seal_for_recipient,
)
from attestation.roots import AWS_NITRO_ROOT_G1_SHA256, TrustedRoots
from attestation.verifier import AttestationVerifier, VerifiedDocument

__all__ = [
    "AWS_NITRO_ROOT_G1_SHA256",
    "AttestationError",
    "AttestationPayload",
    "AttestationPolicy",
    "AttestationVerifier",
    "CertificateNotValidAt",
    "ChainInvalid",
    "DevNsm",
    "DocumentFormatError",
    "EmulatedCa",
    "EmulatedNsm",
    "ErrorCode",
    "MeasurementError",
    "Measurements",
    "NsmClient",
    "NsmError",
    "NsmRefusedError",
    "PcrMismatch",
    "PolicyViolation",
    "RawNsm",
    "RecipientDecryptionError",
    "RecipientEnvelope",
    "RecipientEnvelopeError",
    "SignatureInvalid",
    "SignedDocument",
    "TrustedRoots",
    "UntrustedRoot",
    "VerifiedDocument",
    "decode_document",
    "decrypt_for_recipient",
    "encode_document",
    "encode_payload",
    "measure_image",
    "parse_recipient_envelope",
    "pcr_map",
    "seal_for_recipient",
]
