"""Property tests: every wire message round-trips byte for byte, and snapshots pin the format."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.mpc.dkg.messages import Complaint, Round1Package, Round2Package, TranscriptConfirmation
from enclave.mpc.dkg.pop import ProofOfPossession
from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512, FROST_SECP256K1_SHA256, Ciphersuite
from enclave.mpc.frost.round1 import SigningCommitments
from enclave.mpc.frost.round2 import SignatureShare, SigningPackage
from enclave.mpc.identifiers import Identifier
from enclave.mpc.vss import VssCommitment

SUITES = pytest.mark.parametrize(
    "suite", [FROST_ED25519_SHA512, FROST_SECP256K1_SHA256], ids=["ed25519", "secp256k1"]
)
scalars = st.integers(min_value=1, max_value=2**252)
sessions = st.binary(min_size=1, max_size=64)


@SUITES
@settings(max_examples=25)
@given(
    sid=sessions,
    ks=st.lists(scalars, min_size=2, max_size=8),
    ids=st.sets(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=4),
    msg=st.binary(max_size=100),
)
def test_messages_round_trip(
    suite: Ciphersuite, sid: bytes, ks: list[int], ids: set[int], msg: bytes
) -> None:
    g = suite.group
    pts = [g.base_mul(g.scalar(k)) for k in ks]
    comm = SigningCommitments(suite, sid, pts[0], pts[1])
    assert SigningCommitments.from_bytes(comm.to_bytes()).to_bytes() == comm.to_bytes()
    package = SigningPackage(suite, sid, {Identifier(g, i): comm for i in ids}, msg)
    assert SigningPackage.from_bytes(package.to_bytes()) == package
    share = SignatureShare(suite, sid, g.scalar(ks[0]))
    assert SignatureShare.from_bytes(share.to_bytes()) == share
    vss = VssCommitment(g, tuple(pts))
    r1 = Round1Package(g, sid, vss, ProofOfPossession(pts[-1], g.scalar(ks[-1])))
    assert Round1Package.from_bytes(r1.to_bytes()) == r1
    r2 = Round2Package(g, sid, g.scalar(ks[1]))
    assert Round2Package.from_bytes(r2.to_bytes()).to_bytes() == r2.to_bytes()
    conf = TranscriptConfirmation(g, sid, hashlib.sha512(sid).digest())
    assert TranscriptConfirmation.from_bytes(conf.to_bytes()) == conf
    comp = Complaint(g, sid, Identifier(g, min(ids)), g.scalar(ks[0]))
    assert Complaint.from_bytes(comp.to_bytes()).to_bytes() == comp.to_bytes()


def test_byte_snapshots() -> None:
    """A changed snapshot is a wire-format break: bump FORMAT_VERSION instead."""
    g = FROST_SECP256K1_SHA256.group
    comm = SigningCommitments(
        FROST_SECP256K1_SHA256, b"sid", g.base_mul(g.scalar(1)), g.base_mul(g.scalar(2))
    )
    assert comm.to_bytes().hex() == SNAPSHOT_COMMITMENTS
    share = SignatureShare(FROST_ED25519_SHA512, b"sid", FROST_ED25519_SHA512.group.scalar(7))
    assert share.to_bytes().hex() == SNAPSHOT_SHARE


# version 01 | lp("frost/round1/commitments") | lp("secp256k1") | lp(suite) | lp("sid") | G | 2G
SNAPSHOT_COMMITMENTS = (
    "01" "00000018" + b"frost/round1/commitments".hex() + "00000009" + b"secp256k1".hex()
    + "00000019" + b"FROST-secp256k1-SHA256-v1".hex() + "00000003" + b"sid".hex()
    + "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    + "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
)  # fmt: skip
SNAPSHOT_SHARE = (
    "01" "00000012" + b"frost/round2/share".hex() + "00000007" + b"ed25519".hex()
    + "00000017" + b"FROST-ED25519-SHA512-v1".hex() + "00000003" + b"sid".hex()
    + "07" + "00" * 31
)  # fmt: skip
