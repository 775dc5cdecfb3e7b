"""The one loader for the MPC test vectors in tests/data/vectors (see each SOURCES.md).

Tests reach vector files only through these small typed functions, never by path.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "data" / "vectors"


def _json(relative: str) -> Any:
    with (DATA / relative).open() as fh:
        return json.load(fh)


@dataclass(frozen=True)
class FrostRound1:
    identifier: int
    hiding_nonce_randomness: bytes
    binding_nonce_randomness: bytes
    hiding_nonce: bytes
    binding_nonce: bytes
    hiding_nonce_commitment: bytes
    binding_nonce_commitment: bytes
    binding_factor_input: bytes
    binding_factor: bytes


@dataclass(frozen=True)
class FrostRfcVector:
    """One RFC 9591 Appendix E vector file."""

    max_participants: int
    min_participants: int
    participant_list: tuple[int, ...]
    group_secret_key: bytes
    group_public_key: bytes
    message: bytes
    share_polynomial_coefficients: tuple[bytes, ...]
    participant_shares: dict[int, bytes]
    round_one: tuple[FrostRound1, ...]
    sig_shares: dict[int, bytes]
    signature: bytes


RFC9591_FILES = {
    "ed25519": "frost-rfc9591/frost-ed25519-sha512.json",
    "secp256k1": "frost-rfc9591/frost-secp256k1-sha256.json",
}


def frost_rfc9591(group_name: str) -> FrostRfcVector:
    return _frost_signing(RFC9591_FILES[group_name])


def zf_big_identifier() -> FrostRfcVector:
    """ZF's Ed25519 signing vector with multi-byte identifiers (129, 256, 257 of 257)."""
    return _frost_signing("frost-zf/ed25519-vectors-big-identifier.json")


def zf_taproot() -> FrostRfcVector:
    """ZF's FROST(secp256k1, SHA-256) BIP-340 ("tr") signing vector."""
    return _frost_signing("frost-zf/secp256k1-tr-vectors.json")


def _frost_signing(relative: str) -> FrostRfcVector:
    raw = _json(relative)
    cfg, inp = raw["config"], raw["inputs"]
    r1 = tuple(
        FrostRound1(
            identifier=o["identifier"],
            **{k: bytes.fromhex(v) for k, v in o.items() if k != "identifier"},
        )
        for o in raw["round_one_outputs"]["outputs"]
    )
    return FrostRfcVector(
        max_participants=int(cfg["MAX_PARTICIPANTS"]),
        min_participants=int(cfg["MIN_PARTICIPANTS"]),
        participant_list=tuple(inp["participant_list"]),
        group_secret_key=bytes.fromhex(inp["group_secret_key"]),
        group_public_key=bytes.fromhex(inp.get("group_public_key") or inp["verifying_key_key"]),
        message=bytes.fromhex(inp["message"]),
        share_polynomial_coefficients=tuple(
            bytes.fromhex(c) for c in inp["share_polynomial_coefficients"]
        ),
        participant_shares={
            s["identifier"]: bytes.fromhex(s["participant_share"])
            for s in inp["participant_shares"]
        },
        round_one=r1,
        sig_shares={
            o["identifier"]: bytes.fromhex(o["sig_share"])
            for o in raw["round_two_outputs"]["outputs"]
        },
        signature=bytes.fromhex(raw["final_output"]["sig"]),
    )


@dataclass(frozen=True)
class ZfDkgParticipant:
    identifier: int
    signing_key: bytes  # the dealer's constant term a_0
    coefficient: bytes  # a_1 (the vectors are 2-of-3: degree 1)
    vss_commitments: tuple[bytes, ...]
    proof_of_knowledge: bytes  # R || mu
    signing_shares: dict[int, bytes]  # shares this participant RECEIVES, by dealer
    verifying_share: bytes  # the participant's final Y_i
    signing_share: bytes  # the participant's final s_i


@dataclass(frozen=True)
class ZfDkgVector:
    max_participants: int
    min_participants: int
    verifying_key: bytes
    participants: dict[int, ZfDkgParticipant]


ZF_DKG_FILES = {
    "ed25519": "frost-zf/ed25519-vectors_dkg.json",
    "secp256k1": "frost-zf/secp256k1-vectors_dkg.json",
    "secp256k1-tr": "frost-zf/secp256k1-tr-vectors_dkg.json",
}


def zf_dkg(group_name: str) -> ZfDkgVector:
    raw = _json(ZF_DKG_FILES[group_name])
    cfg, inp = raw["config"], raw["inputs"]
    participants = {}
    for key, p in inp.items():
        if not key.isdigit():
            continue
        participants[int(key)] = ZfDkgParticipant(
            identifier=p["identifier"],
            signing_key=bytes.fromhex(p["signing_key"]),
            coefficient=bytes.fromhex(p["coefficient"]),
            vss_commitments=tuple(bytes.fromhex(c) for c in p["vss_commitments"]),
            proof_of_knowledge=bytes.fromhex(p["proof_of_knowledge"]),
            signing_shares={int(k): bytes.fromhex(v) for k, v in p["signing_shares"].items()},
            verifying_share=bytes.fromhex(p["verifying_share"]),
            signing_share=bytes.fromhex(p["signing_share"]),
        )
    return ZfDkgVector(
        max_participants=int(cfg["MAX_PARTICIPANTS"]),
        min_participants=int(cfg["MIN_PARTICIPANTS"]),
        verifying_key=bytes.fromhex(inp["verifying_key"]),
        participants=participants,
    )


def bip445(name: str) -> Any:
    """A BIP-445 vector file (``sign_verify``, ``tweak``, ``nonce_gen``, ...), as parsed JSON."""
    return _json(f"bip-frost-signing/{name}_vectors.json")


@dataclass(frozen=True)
class Bip340Vector:
    index: int
    public_key: bytes
    message: bytes
    signature: bytes
    result: bool
    comment: str


def bip340() -> list[Bip340Vector]:
    with (DATA / "bip340" / "test-vectors.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return [
        Bip340Vector(
            index=int(r["index"]),
            public_key=bytes.fromhex(r["public key"]),
            message=bytes.fromhex(r["message"]),
            signature=bytes.fromhex(r["signature"]),
            result=r["verification result"] == "TRUE",
            comment=r["comment"],
        )
        for r in rows
    ]
