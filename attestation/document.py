"""The typed model of a Nitro attestation document.

A document is a COSE_Sign1 (RFC 9052 §4.2) whose payload is a CBOR map of exactly nine fields, in
this order: ``module_id``, ``digest``, ``timestamp``, ``pcrs``, ``certificate``, ``cabundle``,
``public_key``, ``user_data``, ``nonce`` (AWS, "Verifying the root of trust", and the
``aws-nitro-enclaves-nsm-api`` ``AttestationDoc``). The limits below are the ones AWS documents
for that payload; :class:`AttestationPayload` enforces them on construction, so a value of this type
is always something a real NSM could have emitted — whether it was decoded from bytes or built by
the emulator.

Nothing here says the document is *genuine*: a :class:`SignedDocument` is merely well-formed. Only
:mod:`attestation.verifier` turns one into a ``VerifiedDocument``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from attestation.errors import DocumentFormatError

__all__ = [
    "DEBUG_PCR_INDICES",
    "DIGEST_SHA384",
    "MAX_CABUNDLE_ENTRIES",
    "MAX_CERTIFICATE_SIZE",
    "MAX_MODULE_ID_LENGTH",
    "MAX_NONCE_SIZE",
    "MAX_PCR_INDEX",
    "MAX_PUBLIC_KEY_SIZE",
    "MAX_TIMESTAMP_MS",
    "MAX_USER_DATA_SIZE",
    "PAYLOAD_KEYS",
    "PCR_LENGTHS",
    "AttestationPayload",
    "SignedDocument",
]

#: The payload keys, in the order a real NSM writes them.
PAYLOAD_KEYS: tuple[str, ...] = (
    "module_id",
    "digest",
    "timestamp",
    "pcrs",
    "certificate",
    "cabundle",
    "public_key",
    "user_data",
    "nonce",
)
#: The only digest Nitro uses for PCRs and signatures.
DIGEST_SHA384 = "SHA384"
#: PCR indices are 0..31 (16 are used by Nitro today).
MAX_PCR_INDEX = 31
#: PCR lengths for SHA-256, SHA-384 and SHA-512 banks.
PCR_LENGTHS = frozenset({32, 48, 64})
MAX_PUBLIC_KEY_SIZE = 1024
MAX_USER_DATA_SIZE = 512
MAX_NONCE_SIZE = 512
#: AWS documents 1..1024 bytes per certificate (real ones are 530-800).
MAX_CERTIFICATE_SIZE = 1024
#: AWS chains are root, regional, zonal, instance; leave room for one more level.
MAX_CABUNDLE_ENTRIES = 8
MAX_MODULE_ID_LENGTH = 256
#: A debug-mode enclave reports these PCRs as all zero.
DEBUG_PCR_INDICES: tuple[int, ...] = (0, 1, 2, 8)
#: 9999-12-31T23:59:59.999Z: the last instant a ``datetime`` (and so any validity check) can hold.
MAX_TIMESTAMP_MS = 253_402_300_799_999


def _check_optional(name: str, value: object, limit: int) -> None:
    if value is None:
        return
    if type(value) is not bytes:
        raise DocumentFormatError(
            name, f"must be a byte string or null, not {type(value).__name__}"
        )
    if len(value) > limit:
        raise DocumentFormatError(name, f"{len(value)} bytes exceeds the limit of {limit}")


def _check_certificate(name: str, value: object) -> None:
    if type(value) is not bytes:
        raise DocumentFormatError(name, f"must be a byte string, not {type(value).__name__}")
    if not 1 <= len(value) <= MAX_CERTIFICATE_SIZE:
        raise DocumentFormatError(
            name, f"{len(value)} bytes is outside 1..{MAX_CERTIFICATE_SIZE} bytes"
        )


def _frozen_pcrs(pcrs: object) -> Mapping[int, bytes]:
    if not isinstance(pcrs, Mapping):
        raise DocumentFormatError("pcrs", f"must be a map, not {type(pcrs).__name__}")
    if not 1 <= len(pcrs) <= MAX_PCR_INDEX + 1:
        raise DocumentFormatError("pcrs", f"{len(pcrs)} entries is outside 1..{MAX_PCR_INDEX + 1}")
    frozen: dict[int, bytes] = {}
    for index, value in pcrs.items():
        if type(index) is not int or not 0 <= index <= MAX_PCR_INDEX:
            raise DocumentFormatError("pcrs", f"index {index!r} is not an integer in 0..31")
        if type(value) is not bytes:
            raise DocumentFormatError(f"pcrs[{index}]", "must be a byte string")
        if len(value) not in PCR_LENGTHS:
            raise DocumentFormatError(
                f"pcrs[{index}]", f"length {len(value)} is not one of 32, 48, 64"
            )
        frozen[index] = value
    return MappingProxyType(frozen)


@dataclass(frozen=True, slots=True)
class AttestationPayload:
    """The nine payload fields, validated on construction.

    ``pcrs`` is stored as a read-only mapping in the order given; ``cabundle`` is ordered root
    first (root, regional, zonal, instance), as real NSMs write it. ``public_key``, ``user_data``
    and ``nonce`` are arbitrary bytes chosen by the enclave, or ``None`` when absent.

    Not hashable (the PCR mapping is not); compare with ``==``.
    """

    module_id: str
    digest: str
    timestamp_ms: int
    pcrs: Mapping[int, bytes]
    certificate: bytes
    cabundle: tuple[bytes, ...]
    public_key: bytes | None = None
    user_data: bytes | None = None
    nonce: bytes | None = field(default=None)

    def __post_init__(self) -> None:
        if type(self.module_id) is not str or not self.module_id:
            raise DocumentFormatError("module_id", "must be a non-empty text string")
        if len(self.module_id) > MAX_MODULE_ID_LENGTH:
            raise DocumentFormatError(
                "module_id", f"{len(self.module_id)} characters exceeds {MAX_MODULE_ID_LENGTH}"
            )
        if type(self.digest) is not str:
            raise DocumentFormatError("digest", "must be a text string")
        if self.digest != DIGEST_SHA384:
            raise DocumentFormatError("digest", f"{self.digest!r} is not 'SHA384'")
        if type(self.timestamp_ms) is not int or not 0 < self.timestamp_ms <= MAX_TIMESTAMP_MS:
            raise DocumentFormatError(
                "timestamp", f"must be an integer number of ms in 1..{MAX_TIMESTAMP_MS}"
            )
        object.__setattr__(self, "pcrs", _frozen_pcrs(self.pcrs))
        _check_certificate("certificate", self.certificate)
        if not isinstance(self.cabundle, tuple | list):
            raise DocumentFormatError("cabundle", "must be an array of byte strings")
        if not 1 <= len(self.cabundle) <= MAX_CABUNDLE_ENTRIES:
            raise DocumentFormatError(
                "cabundle", f"{len(self.cabundle)} entries is outside 1..{MAX_CABUNDLE_ENTRIES}"
            )
        for position, der in enumerate(self.cabundle):
            _check_certificate(f"cabundle[{position}]", der)
        object.__setattr__(self, "cabundle", tuple(self.cabundle))
        _check_optional("public_key", self.public_key, MAX_PUBLIC_KEY_SIZE)
        _check_optional("user_data", self.user_data, MAX_USER_DATA_SIZE)
        _check_optional("nonce", self.nonce, MAX_NONCE_SIZE)

    @property
    def timestamp(self) -> _dt.datetime:
        """The document's creation time (UTC), from ``timestamp_ms``."""
        return _dt.datetime.fromtimestamp(self.timestamp_ms / 1000, tz=_dt.UTC)

    @property
    def is_debug_mode(self) -> bool:
        """True when PCR0, 1, 2 and 8 are all zero, i.e. the enclave runs in debug mode.

        An absent PCR counts as zero: a document that omits the measurements cannot claim to be
        a production enclave.
        """
        for index in DEBUG_PCR_INDICES:
            value = self.pcrs.get(index)
            if value is not None and any(value):
                return False
        return True


@dataclass(frozen=True, slots=True)
class SignedDocument:
    """A well-formed (not yet verified) COSE_Sign1 attestation document.

    ``protected`` and ``payload_bytes`` are kept exactly as signed: the Sig_structure is built from
    them, never from a re-encoding. ``signature`` is the raw 96-byte ``r || s`` of ES384.
    """

    protected: bytes
    payload_bytes: bytes
    signature: bytes
    payload: AttestationPayload
