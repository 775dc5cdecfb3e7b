"""Threshold ECDSA against misbehaving parties: every deviation is detected, named where the
protocol can name it, and no run ever outputs a signature that does not verify.

What can be named (see ``enclave/mpc/ecdsa/opening.py`` and ``combine.py``): a message for another
session or of the wrong type names its sender; a signature share for another presignature view or
request names its sender. A wrong value inside the redundancy-checked openings (``R_i``, ``W_i``)
or the unchecked ones (``w_i``, ``s_i``) is detected but cannot be pinned on a party with exactly
``2t + 1`` parties, so those aborts carry no culprit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Any

import pytest

from enclave.mpc.ecdsa import (
    DealMessage,
    NonceOpening,
    Presignature,
    PresignatureInfo,
    PresignContext,
    SigningRequest,
    combine,
)
from enclave.mpc.ecdsa.presign import deal
from enclave.mpc.errors import InconsistentTranscript, MpcError, ProtocolAbort
from enclave.mpc.groups import SECP256K1
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare

from .ecdsa_harness import deal_key, ids, presignatures, run_presign, sign_all
from .rng import SeededRandom

G = SECP256K1
SID = b"ecdsa-adversarial-session-01"
ONE = G.one()


def _setup(
    t: int, n: int, seed: str
) -> tuple[PresignContext, dict[Identifier, KeyShare], SeededRandom]:
    rng = SeededRandom(seed)
    _, shares = deal_key(t, n, rng)
    public = shares[ids(1)[0]].public
    return PresignContext.create(public, ids(*range(1, 2 * t + 2)), SID), shares, rng


def _aborts(outcome: dict[Identifier, Any]) -> dict[Identifier, MpcError]:
    return {i: o for i, o in outcome.items() if isinstance(o, MpcError)}


# -- presigning ---------------------------------------------------------------------------------

BAD = ids(2)[0]


def _tamper_field(round_: int, field: str, delta: Any, sender: Identifier = BAD, to: Any = None):  # type: ignore[no-untyped-def]
    """A tamper hook: ``sender`` adds ``delta`` to ``field`` of its round-``round_`` message."""

    def hook(r: int, s: Identifier, recipient: Identifier, message: Any) -> Any:
        if r != round_ or s != sender or (to is not None and recipient not in to):
            return message
        value = getattr(message, field)
        return dataclasses.replace(message, **{field: value + delta})

    return hook


@pytest.mark.parametrize(("t", "n"), [(1, 3), (2, 5), (3, 7)])
def test_wrong_big_r_share_detected_by_every_honest_party(t: int, n: int) -> None:
    context, shares, rng = _setup(t, n, f"bad-R-{t}")
    outcome = run_presign(context, shares, rng, _tamper_field(2, "big_r_share", G.generator()))
    aborts = _aborts(outcome)
    honest = set(context.parties) - {BAD}
    assert honest <= set(aborts)
    for i in honest:
        error = aborts[i]
        assert type(error) is ProtocolAbort
        assert "R = k·G" in error.reason
        assert error.culprits == frozenset()  # 2t+1 points: detectable, not attributable
    assert not any(isinstance(o, Presignature) for o in outcome.values())


@pytest.mark.parametrize(
    ("share", "stage"),
    [("k_share", "R = k·G"), ("a_share", "W = a·R"), ("b_share", "W != w·G")],
)
def test_wrong_dealt_share_detected(share: str, stage: str) -> None:
    """A dealer gives one recipient a wrong share: the opening it feeds into fails for all."""
    context, shares, rng = _setup(2, 5, f"bad-{share}")
    victim = ids(4)[0]
    outcome = run_presign(context, shares, rng, _tamper_field(1, share, ONE, to={victim}))
    aborts = _aborts(outcome)
    assert set(aborts) == set(context.parties)
    for error in aborts.values():
        assert isinstance(error, ProtocolAbort)
        assert stage in str(error)


def test_wrong_e_share_is_caught_by_signature_verification() -> None:
    """A wrong share of the signature mask passes presigning and is caught before release."""
    context, shares, rng = _setup(1, 3, "bad-e")
    outcome = run_presign(context, shares, rng, _tamper_field(1, "e_share", ONE, to=set(ids(3))))
    presigs = presignatures(outcome)
    info = presigs[ids(1)[0]].info
    request = SigningRequest(info.presignature_id, hashlib.sha256(b"m").digest(), bytes(32))
    with pytest.raises(ProtocolAbort, match="does not verify"):
        combine(info, request, sign_all(presigs, request))
    assert all(p.consumed for p in presigs.values())  # terminal: nothing left to retry with


@pytest.mark.parametrize(("round_", "field"), [(2, "w_share"), (3, "big_w_share")], ids=["w", "W"])
def test_wrong_opening_of_the_product_detected(round_: int, field: str) -> None:
    context, shares, rng = _setup(2, 5, f"bad-{field}")
    delta = ONE if field == "w_share" else G.generator()
    outcome = run_presign(context, shares, rng, _tamper_field(round_, field, delta))
    aborts = _aborts(outcome)
    assert set(aborts) == set(context.parties) - {BAD}
    for error in aborts.values():
        assert isinstance(error, ProtocolAbort)
        assert error.culprits == frozenset()


@pytest.mark.parametrize(
    ("round_", "field"),
    [(2, "big_r_share"), (2, "w_share"), (3, "big_w_share")],
    ids=["R", "w", "W"],
)
def test_equivocation_detected_by_every_recipient_of_the_wrong_value(
    round_: int, field: str
) -> None:
    """``BAD`` sends the right value to some peers and a wrong one to others."""
    context, shares, rng = _setup(2, 5, f"equivocate-{field}")
    fooled = set(ids(4, 5))
    delta = ONE if field == "w_share" else G.generator()
    outcome = run_presign(context, shares, rng, _tamper_field(round_, field, delta, to=fooled))
    aborts = _aborts(outcome)
    assert fooled <= set(aborts)
    for i in fooled:
        assert isinstance(aborts[i], ProtocolAbort)
    finished = [o for o in outcome.values() if isinstance(o, Presignature)]
    # Those that were not fooled agree with each other; the fooled ones hold nothing, so the
    # fixed 2t+1 signing set can never complete with an inconsistent presignature.
    assert len({p.info.presignature_id for p in finished}) <= 1
    assert len(finished) < len(context.parties)


def test_message_for_another_session_names_its_sender() -> None:
    context, shares, rng = _setup(1, 3, "other-session")

    def hook(r: int, s: Identifier, recipient: Identifier, message: Any) -> Any:
        if r == 2 and s == BAD:
            return dataclasses.replace(message, session_id=b"another-session-id-000")
        return message

    aborts = _aborts(run_presign(context, shares, rng, hook))
    assert set(aborts) == set(context.parties)  # BAD then misses the honest parties' messages
    for i in set(context.parties) - {BAD}:
        error = aborts[i]
        assert isinstance(error, ProtocolAbort)
        assert error.culprits == frozenset({BAD})


def test_wrong_message_type_names_its_sender() -> None:
    context, shares, rng = _setup(1, 3, "wrong-type")

    def hook(r: int, s: Identifier, recipient: Identifier, message: Any) -> Any:
        if r == 3 and s == BAD:
            return NonceOpening(G, SID, G.generator(), ONE)
        return message

    aborts = _aborts(run_presign(context, shares, rng, hook))
    for i in set(context.parties) - {BAD}:
        error = aborts[i]
        assert isinstance(error, ProtocolAbort)
        assert error.culprits == frozenset({BAD})


# -- signing ------------------------------------------------------------------------------------


def _signing(
    seed: str, t: int = 1
) -> tuple[dict[Identifier, Presignature], PresignatureInfo, SigningRequest]:
    context, shares, rng = _setup(t, 2 * t + 1, seed)
    presigs = presignatures(run_presign(context, shares, rng))
    info = presigs[ids(1)[0]].info
    request = SigningRequest(
        info.presignature_id, hashlib.sha256(seed.encode()).digest(), bytes(32)
    )
    return presigs, info, request


@pytest.mark.parametrize("t", [1, 2, 3])
def test_bad_signature_share_never_yields_a_signature(t: int) -> None:
    presigs, info, request = _signing(f"bad-s-{t}", t)
    shares = sign_all(presigs, request)
    shares[BAD] = dataclasses.replace(shares[BAD], s_share=shares[BAD].s_share + ONE)
    with pytest.raises(ProtocolAbort, match="does not verify") as caught:
        combine(info, request, shares)
    assert caught.value.culprits == frozenset()


def test_negated_shares_are_caught_by_the_recovery_check() -> None:
    """Shares of -s give (r, -s), which plain ECDSA verification cannot tell from (r, s) once
    low-S normalised; the recovery id derived from R' then recovers another key, so the
    combiner still refuses: the released signature always matches the nonce actually used."""
    presigs, info, request = _signing("negate")
    shares = sign_all(presigs, request)
    negated = {i: dataclasses.replace(m, s_share=-m.s_share) for i, m in shares.items()}
    with pytest.raises(ProtocolAbort, match="does not verify"):
        combine(info, request, negated)


def test_share_for_another_request_is_named() -> None:
    presigs, info, request = _signing("other-request")
    shares = sign_all(presigs, request)
    other = SigningRequest(info.presignature_id, request.message_hash, b"\x01" * 32)
    shares[BAD] = dataclasses.replace(shares[BAD], request_digest=other.digest())
    with pytest.raises(InconsistentTranscript) as caught:
        combine(info, request, shares)
    assert caught.value.culprits == frozenset({BAD})


def test_share_for_another_presignature_is_named() -> None:
    presigs, info, request = _signing("other-presig")
    shares = sign_all(presigs, request)
    shares[BAD] = dataclasses.replace(shares[BAD], presignature_id=b"\x00" * 32)
    with pytest.raises(InconsistentTranscript) as caught:
        combine(info, request, shares)
    assert caught.value.culprits == frozenset({BAD})


def test_missing_or_extra_signature_shares_refused() -> None:
    presigs, info, request = _signing("missing")
    shares = sign_all(presigs, request)
    del shares[BAD]
    with pytest.raises(MpcError, match="exactly one share"):
        combine(info, request, shares)


def test_deal_messages_print_redacted() -> None:
    context, shares, rng = _setup(1, 3, "redacted")
    _, out = deal(context, shares[ids(1)[0]], rng)
    for message in out.values():
        assert isinstance(message, DealMessage)
        text = repr(message) + str(message)
        for value in (message.k_share, message.a_share, message.b_share, message.e_share):
            assert value.to_bytes().hex() not in text


def test_secrecy_canary_no_secret_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Run honest and failing sessions with DEBUG logging; no secret's hex may surface anywhere."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    secrets_hex: list[str] = []
    for field, round_ in (("big_r_share", 2), ("w_share", 2), ("e_share", 1)):
        context, shares, rng = _setup(1, 3, f"canary-{field}")
        secrets_hex += [s.secret_share.to_bytes().hex() for s in shares.values()]
        delta = G.generator() if field == "big_r_share" else ONE
        outcome = run_presign(context, shares, rng, _tamper_field(round_, field, delta))
        for result in outcome.values():
            texts.append(repr(result) + str(result))
            if isinstance(result, Presignature):
                info = result.info
                request = SigningRequest(info.presignature_id, b"\x05" * 32, bytes(32))
                partial = {i: p for i, p in outcome.items() if isinstance(p, Presignature)}
                try:
                    combine(info, request, sign_all(partial, request))
                except MpcError as exc:
                    texts.append(repr(exc) + str(exc))
                break
    texts += [record.getMessage() for record in caplog.records]
    blob = "\n".join(texts)
    assert secrets_hex
    for value in secrets_hex:
        assert value not in blob
