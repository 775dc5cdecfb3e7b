"""Typed loader for the genuine Nitro documents in ``tests/data/attestation`` (see SOURCES.md).

Tests reach the samples only through :func:`load_samples`, so the manifest's shape is checked once.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "attestation"
AWS_ROOT_PEM = DATA_DIR / "aws_nitro_root_g1.pem"
AWS_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
INVALID_SAMPLE = "eternis_invalid_attestation.bin"


@dataclass(frozen=True)
class Sample:
    """One genuine document and what the manifest says about it."""

    name: str
    data: bytes
    timestamp_ms: int
    module_id: str
    valid: bool
    debug_mode: bool
    nonzero_pcrs: dict[int, bytes]
    public_key_len: int | None
    user_data_len: int | None
    nonce_len: int | None

    @property
    def instant(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.timestamp_ms / 1000, tz=dt.UTC)


def load_samples() -> list[Sample]:
    entries = json.loads((DATA_DIR / "manifest.json").read_text())
    samples = []
    for entry in entries:
        samples.append(
            Sample(
                name=entry["file"],
                data=(DATA_DIR / entry["file"]).read_bytes(),
                timestamp_ms=int(entry["timestamp_ms"]),
                module_id=str(entry["module_id"]),
                valid=entry["file"] != INVALID_SAMPLE,
                debug_mode=bool(entry["debug_mode"]),
                nonzero_pcrs={int(k): bytes.fromhex(v) for k, v in entry["nonzero_pcrs"].items()},
                public_key_len=entry["public_key_len"],
                user_data_len=entry["user_data_len"],
                nonce_len=entry["nonce_len"],
            )
        )
    return samples


SAMPLES = load_samples()
VALID_SAMPLES = [s for s in SAMPLES if s.valid]
SAMPLE_BY_NAME = {s.name: s for s in SAMPLES}


def shape_of(data: bytes) -> tuple[object, ...]:
    """The structure of a document, independent of its values: envelope item types, payload keys
    in order with their CBOR types, PCR indices and lengths, chain depth and certificate curves.

    Emulated documents must have the shape of real ones: ``shape_of(emulated) == shape_of(real)``
    for a real document with the same optional fields present.
    """
    envelope = cbor2.loads(data)
    payload = cbor2.loads(envelope[2])
    certs = [payload["certificate"], *payload["cabundle"]]
    curves = []
    for der in certs:
        key = x509.load_der_x509_certificate(der).public_key()
        curves.append(key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else "?")
    return (
        data[0],
        [type(item).__name__ for item in envelope],
        envelope[0],
        len(envelope[3]),
        [(key, type(value).__name__) for key, value in payload.items()],
        sorted((index, len(value)) for index, value in payload["pcrs"].items()),
        len(payload["cabundle"]),
        curves,
    )
