"""DKG: honest runs agree on one key; every kind of cheating is detected and named."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.mpc.dkg.complaints import judge, make_complaints
from enclave.mpc.dkg.messages import (
    Complaint,
    Round1Package,
    Round2Package,
    TranscriptConfirmation,
)
from enclave.mpc.dkg.params import DkgParameters
from enclave.mpc.dkg.pop import ProofOfPossession
from enclave.mpc.dkg.round1 import part1
from enclave.mpc.dkg.round2 import part2
from enclave.mpc.dkg.round3 import finalize, part3
from enclave.mpc.dkg.session import DkgPhase, DkgSession
from enclave.mpc.errors import (
    EncodingError,
    InconsistentTranscript,
    InvalidParameters,
    InvalidProof,
    InvalidShare,
    MisuseError,
    ProtocolAbort,
)
from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.mpc.shamir import reconstruct
from enclave.mpc.vss import VssCommitment

from .dkg_helpers import identifiers, run_dkg
from .rng import SeededRandom

SUITES = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)


def check_honest_dkg(group: Group, t: int, n: int, seed: int) -> None:
    shares = run_dkg(group, t, n, SeededRandom(seed))
    first = next(iter(shares.values()))
    public = first.public
    for ks in shares.values():
        assert ks.public == public  # every party holds the same public package
        assert group.base_mul(ks.secret_share) == public.verifying_shares[ks.identifier]
    secret = reconstruct(group, {i: s.secret_share for i, s in list(shares.items())[: t + 1]})
    assert group.base_mul(secret) == public.group_public_key
    assert public_package_round_trips(public)


def public_package_round_trips(public: PublicKeyPackage) -> bool:
    return PublicKeyPackage.from_bytes(public.to_bytes()) == public


@SUITES
@settings(max_examples=20)
@given(
    tn=st.integers(min_value=2, max_value=7).flatmap(
        lambda n: st.tuples(st.integers(min_value=1, max_value=n - 1), st.just(n))
    ),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_honest_dkg_agrees(group: Group, tn: tuple[int, int], seed: int) -> None:
    check_honest_dkg(group, tn[0], tn[1], seed)


def _other_group(group: Group) -> Group:
    return ED25519 if group is SECP256K1 else SECP256K1


@SUITES
def test_wrong_share_is_named(group: Group) -> None:
    ids = identifiers(group, 4)
    cheater, victim = ids[2], ids[0]

    def tamper(sender: Identifier, to: Identifier, pkg: Round2Package) -> Round2Package:
        if sender == cheater and to == victim:
            return dataclasses.replace(pkg, share=pkg.share + group.one())
        return pkg

    with pytest.raises(InvalidShare) as info:
        run_dkg(group, 2, 4, SeededRandom(1), round2_hook=tamper)
    assert info.value.culprits == frozenset({cheater})


@SUITES
def test_wrong_commitment_is_named(group: Group) -> None:
    """A commitment that does not match the dealt shares: every recipient names the dealer."""
    ids = identifiers(group, 3)
    cheater = ids[1]

    def tamper(sender: Identifier, to: Identifier, pkg: Round1Package) -> Round1Package:
        if sender != cheater:
            return pkg
        pts = pkg.commitment.points
        wrong = VssCommitment(group, (pts[0], pts[1] + group.generator()))
        return dataclasses.replace(pkg, commitment=wrong)

    with pytest.raises(InvalidShare) as info:
        run_dkg(group, 1, 3, SeededRandom(2), round1_hook=tamper)
    assert info.value.culprits == frozenset({cheater})


@SUITES
def test_equivocating_commitment_is_caught_by_transcript_check(group: Group) -> None:
    """Dealer 3 sends peer 1 a different (self-consistent) commitment than peer 2 and 4 see.

    Shares and proofs all verify locally; only the transcript equality check reveals it.
    """
    ids = identifiers(group, 4)
    params = DkgParameters(group, 1, ids, b"equivocation")
    rng = SeededRandom(3)
    r1 = {i: part1(params, i, rng) for i in ids}
    cheater, fooled = ids[2], ids[0]
    # The cheater runs round 1 twice with two polynomials and shows the second one to ``fooled``.
    alt_secret, alt_pkg = part1(params, cheater, rng)
    r2 = {}
    for i in ids:
        received = {j: r1[j][1] for j in ids if j != i}
        if i == fooled:
            received[cheater] = alt_pkg
        r2[i] = part2(r1[i][0], received)
    # Shares to ``fooled`` come from the alternative polynomial, consistent with what it saw.
    alt_share = alt_secret.polynomial.evaluate(fooled)
    r3 = {}
    for i in ids:
        dealt = {j: r2[j][1][i] for j in ids if j != i}
        if i == fooled:
            dealt[cheater] = Round2Package(group, params.session_id, alt_share)
        r3[i] = part3(r2[i][0], dealt)  # every local check passes
    confirmations = {i: r3[i][1] for i in ids}
    for i in ids:
        with pytest.raises(InconsistentTranscript) as info:
            finalize(r3[i][0], {j: confirmations[j] for j in ids if j != i})
        assert info.value.culprits == frozenset({fooled})  # the view that differs from the majority


@SUITES
def test_bad_proof_of_possession_is_named(group: Group) -> None:
    ids = identifiers(group, 3)
    cheater = ids[0]

    def tamper(sender: Identifier, to: Identifier, pkg: Round1Package) -> Round1Package:
        if sender != cheater:
            return pkg
        proof = ProofOfPossession(pkg.proof.r, pkg.proof.mu + group.one())
        return dataclasses.replace(pkg, proof=proof)

    with pytest.raises(InvalidProof) as info:
        run_dkg(group, 1, 3, SeededRandom(4), round1_hook=tamper)
    assert info.value.culprits == frozenset({cheater})


@SUITES
def test_proof_replayed_into_another_session_is_refused(group: Group) -> None:
    ids = identifiers(group, 3)
    rng = SeededRandom(5)
    old = DkgParameters(group, 1, ids, b"session-old")
    new = DkgParameters(group, 1, ids, b"session-new")
    _, replayed = part1(old, ids[1], rng)
    r1 = {i: part1(new, i, rng) for i in ids}
    received = {
        ids[1]: dataclasses.replace(replayed, session_id=new.session_id),
        ids[2]: r1[ids[2]][1],
    }
    with pytest.raises(InvalidProof) as info:
        part2(r1[ids[0]][0], received)
    assert info.value.culprits == frozenset({ids[1]})


@SUITES
def test_round_inputs_are_validated_before_use(group: Group) -> None:
    ids = identifiers(group, 3)
    params = DkgParameters(group, 1, ids, b"validation")
    rng = SeededRandom(6)
    r1 = {i: part1(params, i, rng) for i in ids}
    me = ids[0]
    with pytest.raises(InvalidParameters, match="missing"):
        part2(r1[me][0], {ids[1]: r1[ids[1]][1]})
    with pytest.raises(InvalidParameters, match="unexpected"):
        part2(r1[me][0], {j: r1[j][1] for j in ids})  # includes itself
    other = DkgParameters(group, 1, ids, b"other-session")
    foreign = part1(other, ids[2], rng)[1]
    with pytest.raises(ProtocolAbort) as info:
        part2(r1[me][0], {ids[1]: r1[ids[1]][1], ids[2]: foreign})
    assert info.value.culprits == frozenset({ids[2]})
    wrong_degree = part1(DkgParameters(group, 2, ids, b"validation"), ids[2], rng)[1]
    with pytest.raises(ProtocolAbort) as info:
        part2(r1[me][0], {ids[1]: r1[ids[1]][1], ids[2]: wrong_degree})
    assert info.value.culprits == frozenset({ids[2]})
    with pytest.raises(InvalidParameters):
        DkgParameters(group, 3, ids, b"x")
    with pytest.raises(InvalidParameters):
        DkgParameters(group, 1, ids, b"")
    with pytest.raises(InvalidParameters):
        part1(params, Identifier.from_int(group, 9), rng)


@SUITES
def test_complaints_are_judged(group: Group) -> None:
    ids = identifiers(group, 3)
    params = DkgParameters(group, 1, ids, b"complaints")
    rng = SeededRandom(7)
    r1 = {i: part1(params, i, rng) for i in ids}
    r2 = {i: part2(r1[i][0], {j: r1[j][1] for j in ids if j != i}) for i in ids}
    victim, cheater = ids[0], ids[1]
    received = {j: r2[j][1][victim] for j in ids if j != victim}
    received[cheater] = Round2Package(group, params.session_id, group.scalar(12345))
    complaints = make_complaints(r2[victim][0], received)
    assert [c.accused for c in complaints] == [cheater]
    round1 = {i: r1[i][1] for i in ids}
    assert judge(params, victim, complaints[0], round1) == cheater
    assert Complaint.from_bytes(complaints[0].to_bytes()) == complaints[0]
    # A false complaint (revealing the genuine share) names the complainer.
    honest = Complaint(group, params.session_id, ids[2], r2[ids[2]][1][victim].share)
    assert judge(params, victim, honest, round1) == victim


@SUITES
def test_messages_round_trip_and_decode_strictly(group: Group) -> None:
    ids = identifiers(group, 3)
    params = DkgParameters(group, 1, ids, b"codec")
    rng = SeededRandom(8)
    r1 = {i: part1(params, i, rng) for i in ids}
    pkg = r1[ids[0]][1]
    assert Round1Package.from_bytes(pkg.to_bytes()) == pkg
    with pytest.raises(EncodingError):
        Round1Package.from_bytes(pkg.to_bytes(), _other_group(group))
    with pytest.raises(EncodingError):
        Round1Package.from_bytes(pkg.to_bytes() + b"\x00")
    r2 = part2(r1[ids[0]][0], {j: r1[j][1] for j in ids[1:]})[1]
    share = r2[ids[1]]
    assert Round2Package.from_bytes(share.to_bytes()) == share
    assert "redacted" in repr(share)
    assert share.share.to_bytes().hex() not in repr(share)
    conf = TranscriptConfirmation(group, b"codec", bytes(64))
    assert TranscriptConfirmation.from_bytes(conf.to_bytes()) == conf
    with pytest.raises(EncodingError):
        Round2Package.from_bytes(Round1Package.KIND.encode() + share.to_bytes())


@SUITES
def test_session_runs_in_order_and_fails_for_good(group: Group) -> None:
    ids = identifiers(group, 3)
    params = DkgParameters(group, 1, ids, b"session")
    rng = SeededRandom(9)
    sessions = {i: DkgSession(params, i) for i in ids}
    with pytest.raises(MisuseError):
        sessions[ids[0]].receive_round1({})
    assert sessions[ids[0]].phase is DkgPhase.START
    r1 = {i: s.begin(rng) for i, s in sessions.items()}
    r2 = {i: s.receive_round1({j: r1[j] for j in ids if j != i}) for i, s in sessions.items()}
    # Party 3 receives a bad share: its session fails and stays failed.
    bad = {j: r2[j][ids[2]] for j in ids if j != ids[2]}
    bad[ids[0]] = dataclasses.replace(bad[ids[0]], share=bad[ids[0]].share + group.one())
    with pytest.raises(InvalidShare):
        sessions[ids[2]].receive_round2(bad)
    assert sessions[ids[2]].phase is DkgPhase.FAILED
    with pytest.raises(MisuseError):
        sessions[ids[2]].receive_round2({j: r2[j][ids[2]] for j in ids if j != ids[2]})
    # The others complete.
    conf = {i: sessions[i].receive_round2({j: r2[j][i] for j in ids if j != i}) for i in ids[:2]}
    # (Party 3 never confirms; its slot is filled with an equal digest to reach the final step.)
    key = sessions[ids[0]].receive_confirmations({ids[1]: conf[ids[1]], ids[2]: conf[ids[1]]})
    assert sessions[ids[0]].phase is DkgPhase.DONE
    assert group.base_mul(key.secret_share) == key.verifying_share
    assert "redacted" not in repr(sessions[ids[0]])  # no secret state printed at all
