"""Strict codec for Nitro attestation documents (COSE_Sign1, RFC 9052 §4.2, with ES384).

Decoding accepts exactly what real NSMs emit and refuses everything else with a
:class:`~attestation.errors.DocumentFormatError` naming the culprit:

* the envelope is an **untagged** CBOR array of four items: protected header ``{1: -35}`` (ES384)
  as a byte string, an empty unprotected map, the payload byte string, and a 96-byte signature;
* the payload is a map with exactly the nine keys of :data:`attestation.document.PAYLOAD_KEYS`,
  in that order, written with definite length (older firmware) or indefinite length (newer
  firmware); absent optional fields are CBOR ``null``;
* every item is in shortest-form CBOR: no tags, no non-minimal lengths, no indefinite strings, no
  duplicate keys, no trailing bytes. ``cbor2`` by itself keeps the last of duplicate keys and
  ignores trailing bytes, so after decoding we re-encode each item and require the input to be
  byte-for-byte that encoding. For a definite-length document this makes
  ``encode_payload(decode(x).payload) == x.payload_bytes`` an invariant.

Decoding never lets a ``cbor2`` exception escape: the input is attacker-controlled, so anything
``cbor2`` raises on it becomes a ``DocumentFormatError``.

Encoding (for the emulated NSM and for tests) writes the definite-length form and signs the
Sig_structure with ES384, producing the raw ``r || s`` signature real NSMs produce.

COSE is written here rather than taken from ``pycose``: Nitro uses one fixed shape of it, whose
Sig_structure is a single ``cbor2.dumps``; pycose 1.1 verifies and signs ECDSA with pure-Python
``ecdsa`` (about 9x slower per document check) and its decoder is looser than this one (README,
"Dependencies").
"""

from __future__ import annotations

from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from attestation.document import PAYLOAD_KEYS, AttestationPayload, SignedDocument
from attestation.errors import DocumentFormatError

__all__ = [
    "MAX_DOCUMENT_SIZE",
    "PROTECTED_ES384",
    "SIGNATURE_SIZE",
    "decode_document",
    "decode_payload",
    "encode_document",
    "encode_envelope",
    "encode_payload",
    "sig_structure",
]

#: ``{1: -35}``: COSE header "alg" = ES384, the only protected header Nitro writes.
PROTECTED_ES384 = b"\xa1\x01\x38\x22"
#: ES384 signatures are raw ``r || s``, 48 bytes each.
SIGNATURE_SIZE = 96
#: Real documents are about 4.5 KiB; the largest the payload limits allow is about 14 KiB.
MAX_DOCUMENT_SIZE = 16 * 1024
_SCALAR_SIZE = SIGNATURE_SIZE // 2
_DEFINITE_MAP_OF_9 = 0xA9
_INDEFINITE_MAP = 0xBF
_BREAK = 0xFF
# The nesting of a valid document is at most 3 (envelope or payload > pcrs/cabundle > item).
_MAX_DEPTH = 4
# What cbor2 can raise on hostile input: its own errors, plus Python errors from building values.
_CBOR_FAILURES = (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError, KeyError)
# Containers whose newer-firmware encoding may also be indefinite-length.
_MAY_BE_INDEFINITE = frozenset({"pcrs", "cabundle"})


def _loads(data: bytes, field: str) -> Any:
    try:
        return cbor2.loads(data, allow_duplicate_keys=False, max_depth=_MAX_DEPTH)
    except _CBOR_FAILURES as exc:
        raise DocumentFormatError(field, f"not valid CBOR ({type(exc).__name__}: {exc})") from None


def _dumps(value: object, *, indefinite: bool = False) -> bytes:
    return cbor2.dumps(value, indefinite_containers=indefinite)


def sig_structure(protected: bytes, payload_bytes: bytes) -> bytes:
    """The COSE Sig_structure (RFC 9052 §4.4) that ES384 signs for a COSE_Sign1.

    ``["Signature1", protected, external_aad = b"", payload]``; Nitro uses no external AAD.
    """
    return _dumps(["Signature1", protected, b"", payload_bytes])


def _check_canonical_payload(data: bytes, raw: dict[str, object]) -> None:
    """Require ``data`` to be exactly the shortest-form encoding of ``raw`` (see module doc)."""
    if data[0] == _DEFINITE_MAP_OF_9:
        indefinite = False
    elif data[0] == _INDEFINITE_MAP:
        indefinite = True
    else:
        raise DocumentFormatError(
            "payload", f"map header 0x{data[0]:02x} is neither a 9-entry map nor indefinite"
        )
    position = 1
    for key, value in raw.items():
        encoded_key = _dumps(key)
        if not data.startswith(encoded_key, position):
            raise DocumentFormatError(key, f"key not in shortest-form CBOR at offset {position}")
        position += len(encoded_key)
        candidates = [_dumps(value)]
        if key in _MAY_BE_INDEFINITE:
            candidates.append(_dumps(value, indefinite=True))
        for candidate in candidates:
            if data.startswith(candidate, position):
                position += len(candidate)
                break
        else:
            raise DocumentFormatError(key, f"value not in shortest-form CBOR at offset {position}")
    if indefinite:
        if position >= len(data) or data[position] != _BREAK:
            raise DocumentFormatError("payload", "indefinite-length map is not terminated")
        position += 1
    if position != len(data):
        raise DocumentFormatError("payload", f"{len(data) - position} trailing bytes")


def decode_payload(payload_bytes: bytes) -> AttestationPayload:
    """Decode and validate the signed payload map into an :class:`AttestationPayload`."""
    if not payload_bytes:
        raise DocumentFormatError("payload", "empty")
    raw = _loads(payload_bytes, "payload")
    if type(raw) is not dict:
        raise DocumentFormatError("payload", f"must be a map, not {type(raw).__name__}")
    keys = list(raw)
    unknown = [key for key in keys if key not in PAYLOAD_KEYS]
    if unknown:
        raise DocumentFormatError("payload", f"unexpected keys {unknown!r}")
    missing = [key for key in PAYLOAD_KEYS if key not in raw]
    if missing:
        raise DocumentFormatError("payload", f"missing keys {missing!r}")
    if tuple(keys) != PAYLOAD_KEYS:
        raise DocumentFormatError("payload", f"keys out of order: {keys!r}")
    pcrs = raw["pcrs"]
    if type(pcrs) is not dict:
        raise DocumentFormatError("pcrs", f"must be a map, not {type(pcrs).__name__}")
    cabundle = raw["cabundle"]
    if type(cabundle) is not list:
        raise DocumentFormatError("cabundle", f"must be an array, not {type(cabundle).__name__}")
    payload = AttestationPayload(
        module_id=raw["module_id"],
        digest=raw["digest"],
        timestamp_ms=raw["timestamp"],
        pcrs=pcrs,
        certificate=raw["certificate"],
        cabundle=tuple(cabundle),
        public_key=raw["public_key"],
        user_data=raw["user_data"],
        nonce=raw["nonce"],
    )
    _check_canonical_payload(payload_bytes, raw)
    return payload


def decode_document(data: bytes) -> SignedDocument:
    """Decode a COSE_Sign1 attestation document strictly; refuse anything a real NSM never emits.

    Raises :class:`DocumentFormatError` (and nothing else) on malformed input. The result is only
    well-formed: pass it to the verifier before trusting any field.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DocumentFormatError("envelope", f"expected bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise DocumentFormatError("envelope", "empty input")
    if len(data) > MAX_DOCUMENT_SIZE:
        raise DocumentFormatError(
            "envelope", f"{len(data)} bytes exceeds the limit of {MAX_DOCUMENT_SIZE}"
        )
    envelope = _loads(data, "envelope")
    if isinstance(envelope, cbor2.CBORTag):
        raise DocumentFormatError(
            "envelope", f"tagged ({envelope.tag}); Nitro documents are untagged"
        )
    if type(envelope) is not list or len(envelope) != 4:
        raise DocumentFormatError("envelope", "not a COSE_Sign1 array of 4 items")
    protected, unprotected, payload_bytes, signature = envelope
    if type(protected) is not bytes or protected != PROTECTED_ES384:
        raise DocumentFormatError("protected", "protected header must be exactly {1: -35} (ES384)")
    if type(unprotected) is not dict or unprotected:
        raise DocumentFormatError("unprotected", "unprotected header must be an empty map")
    if type(payload_bytes) is not bytes:
        raise DocumentFormatError("payload", "must be a byte string")
    if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
        raise DocumentFormatError("signature", f"must be a {SIGNATURE_SIZE}-byte byte string")
    canonical = encode_envelope(protected, payload_bytes, signature)
    if data != canonical:
        if data.startswith(canonical):
            raise DocumentFormatError("envelope", f"{len(data) - len(canonical)} trailing bytes")
        raise DocumentFormatError("envelope", "not in shortest-form definite-length CBOR")
    payload = decode_payload(payload_bytes)
    return SignedDocument(
        protected=protected, payload_bytes=payload_bytes, signature=signature, payload=payload
    )


def encode_payload(payload: AttestationPayload) -> bytes:
    """The definite-length payload map, keys in NSM order, absent optionals as ``null``."""
    return _dumps(
        {
            "module_id": payload.module_id,
            "digest": payload.digest,
            "timestamp": payload.timestamp_ms,
            "pcrs": dict(payload.pcrs),
            "certificate": payload.certificate,
            "cabundle": list(payload.cabundle),
            "public_key": payload.public_key,
            "user_data": payload.user_data,
            "nonce": payload.nonce,
        }
    )


def encode_envelope(protected: bytes, payload_bytes: bytes, signature: bytes) -> bytes:
    """The untagged COSE_Sign1 array around already-encoded parts (no checks, no signing)."""
    return _dumps([protected, {}, payload_bytes, signature])


def encode_document(payload: AttestationPayload, signing_key: ec.EllipticCurvePrivateKey) -> bytes:
    """Encode and sign a document exactly as a real NSM does (ES384, raw ``r || s``).

    ``signing_key`` must be a P-384 key; the caller is responsible for ``payload.certificate``
    carrying its public key (the emulated NSM's leaf certificate).
    """
    if not isinstance(signing_key.curve, ec.SECP384R1):
        raise ValueError("ES384 needs a P-384 signing key")
    payload_bytes = encode_payload(payload)
    der = signing_key.sign(sig_structure(PROTECTED_ES384, payload_bytes), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(_SCALAR_SIZE, "big") + s.to_bytes(_SCALAR_SIZE, "big")
    return encode_envelope(PROTECTED_ES384, payload_bytes, signature)
