"""Nitro attestation documents: codec, verifier, policy, NSM interface, KMS recipient envelope."""

from attestation.codec import decode_document, encode_document, encode_payload
from attestation.document import AttestationPayload, SignedDocument
from attestation.errors import (
    AttestationError,
    CertificateNotValidAt,
    ChainInvalid,
    DocumentFormatError,
    PcrMismatch,
    PolicyViolation,
    SignatureInvalid,
    UntrustedRoot,
)
from attestation.policy import AttestationPolicy
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
    "DocumentFormatError",
    "PcrMismatch",
    "PolicyViolation",
    "SignatureInvalid",
    "SignedDocument",
    "TrustedRoots",
    "UntrustedRoot",
    "VerifiedDocument",
    "decode_document",
    "encode_document",
    "encode_payload",
]
