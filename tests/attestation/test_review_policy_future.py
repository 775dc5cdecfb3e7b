"""Review finding: a document dated after "now" is refused whether or not ``max_age`` is set.

``max_clock_skew`` has a default (60 s) and the ``"future"`` rule is documented as its own rule,
but ``check`` evaluated it only inside the ``max_age`` branch. A policy without ``max_age`` —
the CLI's, the dev profile's unless asked — therefore accepted a document timestamped hours
ahead of the verifier's clock (a clock-skewed or replay-prepared document) without a word. The
rule now always runs; ``max_age`` stays optional.
"""

from __future__ import annotations

import datetime as dt

import pytest
from attestation_test_ca import T0, make_chain, make_document

from attestation.errors import PolicyViolation
from attestation.policy import AttestationPolicy
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier, VerifiedDocument


def _document_at_t0() -> VerifiedDocument:
    chain = make_chain()
    verifier = AttestationVerifier(TrustedRoots.of([chain.root]), clock=lambda: T0)
    return verifier.verify(make_document(chain))


def test_a_future_document_is_refused_without_max_age() -> None:
    verified = _document_at_t0()
    with pytest.raises(PolicyViolation) as caught:
        AttestationPolicy().check(verified, now=verified.timestamp - dt.timedelta(hours=1))
    assert caught.value.rule == "future"


def test_skew_within_the_allowance_is_accepted_without_max_age() -> None:
    verified = _document_at_t0()
    AttestationPolicy().check(verified, now=verified.timestamp - dt.timedelta(seconds=30))
    AttestationPolicy().check(verified, now=verified.timestamp + dt.timedelta(days=365))


def test_naive_now_is_refused_without_max_age() -> None:
    verified = _document_at_t0()
    with pytest.raises(ValueError, match="aware"):
        AttestationPolicy().check(verified, now=dt.datetime(2026, 1, 1))
