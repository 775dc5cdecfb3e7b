"""Set-wise PCR pinning: a document is accepted only if ALL its pinned PCRs are ONE release's.

Per-index alternatives (``pcrs={0: [a0, b0], 1: [a1, b1]}``) admit PCR0 of release A with PCR1 of
release B; ``pcr_sets`` must refuse exactly that mix while accepting either whole release.
"""

from __future__ import annotations

import pytest
from attestation_test_ca import T0, ZERO48, CaChain, make_chain, make_document
from hypothesis import given
from hypothesis import strategies as st

from attestation.errors import PolicyViolation
from attestation.policy import AttestationPolicy
from attestation.roots import TrustedRoots
from attestation.verifier import AttestationVerifier, VerifiedDocument

RELEASE_A = {0: b"\xa0" * 48, 1: b"\xa1" * 48, 2: b"\xa2" * 48}
RELEASE_B = {0: b"\xb0" * 48, 1: b"\xb1" * 48, 2: b"\xb2" * 48}


@pytest.fixture(scope="module")
def chain() -> CaChain:
    return make_chain()


def _document(chain: CaChain, measured: dict[int, bytes]) -> VerifiedDocument:
    pcrs = {i: ZERO48 for i in range(16)} | {8: b"\x08" * 48} | measured
    verifier = AttestationVerifier(TrustedRoots.of([chain.root]), clock=lambda: T0)
    return verifier.verify(make_document(chain, pcrs=pcrs))


@pytest.mark.parametrize("release", [RELEASE_A, RELEASE_B], ids=["A", "B"])
def test_either_whole_release_is_accepted(chain: CaChain, release: dict[int, bytes]) -> None:
    AttestationPolicy(pcr_sets=[RELEASE_A, RELEASE_B]).check(_document(chain, release), now=T0)


@given(st.sets(st.sampled_from([0, 1, 2]), min_size=1, max_size=2))
def test_a_mix_of_two_releases_is_refused(chain: CaChain, from_b: set[int]) -> None:
    mixed = {i: (RELEASE_B if i in from_b else RELEASE_A)[i] for i in (0, 1, 2)}
    with pytest.raises(PolicyViolation) as info:
        AttestationPolicy(pcr_sets=[RELEASE_A, RELEASE_B]).check(_document(chain, mixed), now=T0)
    assert info.value.rule == "pcr_sets"


def test_the_same_mix_passes_per_index_alternatives(chain: CaChain) -> None:
    """Why pcr_sets exists: the per-index rule cannot tell a mix from a release."""
    mixed = {0: RELEASE_A[0], 1: RELEASE_B[1], 2: RELEASE_A[2]}
    per_index = {i: [RELEASE_A[i], RELEASE_B[i]] for i in (0, 1, 2)}
    AttestationPolicy(pcrs=per_index).check(_document(chain, mixed), now=T0)


def test_a_set_naming_an_absent_pcr_is_not_matched(chain: CaChain) -> None:
    with pytest.raises(PolicyViolation, match="no accepted release"):
        AttestationPolicy(pcr_sets=[RELEASE_A | {20: b"\x01" * 48}]).check(
            _document(chain, RELEASE_A), now=T0
        )


def test_an_empty_sequence_adds_no_rule(chain: CaChain) -> None:
    AttestationPolicy(pcr_sets=()).check(_document(chain, RELEASE_B), now=T0)


@pytest.mark.parametrize(
    ("sets", "culprit"),
    [
        ({0: b"\xa0" * 48}, "sequence"),
        ([{}], "non-empty"),
        ([{0: b"\xa0" * 47}], "length 47"),
        ([{32: b"\xa0" * 48}], "index 32"),
        ([{0: "a0" * 48}], "must be bytes"),
    ],
)
def test_malformed_sets_are_refused_at_construction(sets: object, culprit: str) -> None:
    with pytest.raises(ValueError, match=culprit):
        AttestationPolicy(pcr_sets=sets)  # type: ignore[arg-type]


def test_sets_are_frozen() -> None:
    source = {0: b"\xa0" * 48}
    policy = AttestationPolicy(pcr_sets=[source])
    source[0] = b"\xb0" * 48
    assert policy.pcr_sets[0][0] == b"\xa0" * 48
    with pytest.raises(TypeError):
        policy.pcr_sets[0][0] = b"\xb0" * 48  # type: ignore[index]
