"""Share repair / enrolment (enclave.mpc.repair): ZF vectors, round trips, culprits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.mpc.errors import EncodingError, InvalidParameters, InvalidShare, ProtocolAbort
from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.repair import (
    RepairStep,
    RepairValue,
    enrolled_package,
    repair_step_1,
    repair_step_2,
    repair_step_3,
)
from enclave.mpc.shamir import lagrange_coefficient, reconstruct

from .rng import SeededRandom
from .threshold_keys import deal, identifiers

SUITES = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)
VECTORS = Path(__file__).parents[1] / "data/vectors/frost-zf-repair"
SESSION = b"repair-1"


def _vectors(group: Group) -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(
        (VECTORS / f"{group.name}-repair-share.json").read_text()
    )
    return data


def _value(group: Group, step: RepairStep, hex_value: str) -> RepairValue:
    return RepairValue(step, SESSION, group.decode_scalar(bytes.fromhex(hex_value)))


@SUITES
def test_zf_vector_step_2_sigma_is_the_sum_of_deltas(group: Group) -> None:
    """ZF check_repair_share_step_2: helpers 1, 4, 5 repair participant 2 (t = 2, n = 5)."""
    v = _vectors(group)["scalar_generation"]
    _, shares = deal(group, 2, 5, SeededRandom(1))
    public = next(iter(shares.values())).public
    helpers = identifiers(group, [1, 4, 5])
    deltas = {
        h: _value(group, RepairStep.DELTA, v[f"random_scalar_{k}"])
        for k, h in enumerate(helpers, start=1)
    }
    sigma = repair_step_2(public, helpers, Identifier.from_int(group, 2), SESSION, deltas)
    assert sigma.value.to_bytes().hex() == v["random_scalar_sum"]


@SUITES
def test_zf_vector_step_3_share_is_the_sum_of_sigmas(group: Group) -> None:
    """ZF check_repair_share_step_3: four sigmas sum to participant 2's share.

    The package gives participant 2 the verification share of the vector's sum, so the
    repair's own check (share·G == Y_2) must pass too; the other shares are irrelevant here.
    """
    v = _vectors(group)["sigma_generation"]
    expected = group.decode_scalar(bytes.fromhex(v["sigma_sum"]))
    helpers = identifiers(group, [1, 3, 4, 5])
    participant = Identifier.from_int(group, 2)
    verifying = {h: group.base_mul(group.scalar(int(h) + 100)) for h in helpers}
    verifying[participant] = group.base_mul(expected)
    public = PublicKeyPackage(group, group.generator(), verifying, 2)
    sigmas = {
        h: _value(group, RepairStep.SIGMA, v[f"sigma_{k}"]) for k, h in enumerate(helpers, start=1)
    }
    share = repair_step_3(public, helpers, participant, SESSION, sigmas)
    assert share.secret_share.to_bytes().hex() == v["sigma_sum"]
    assert share.identifier == participant


def _run_repair(
    shares: dict[Identifier, KeyShare],
    public: PublicKeyPackage,
    helpers: list[Identifier],
    participant: Identifier,
    seed: int,
) -> KeyShare:
    rng = SeededRandom(seed)
    deltas = {i: repair_step_1(helpers, shares[i], participant, SESSION, rng) for i in helpers}
    sigmas = {
        j: repair_step_2(public, helpers, participant, SESSION, {i: deltas[i][j] for i in helpers})
        for j in helpers
    }
    return repair_step_3(public, helpers, participant, SESSION, sigmas)


@st.composite
def _setting(draw: st.DrawFn) -> tuple[int, int, int, list[int], int]:
    n = draw(st.integers(min_value=3, max_value=7))
    t = draw(st.integers(min_value=1, max_value=n - 2))
    order = draw(st.permutations(list(range(1, n + 1))))
    lost, rest = order[0], order[1:]
    size = draw(st.integers(min_value=t + 1, max_value=n - 1))
    return t, n, lost, sorted(rest[:size]), draw(st.integers(min_value=0, max_value=2**32))


@SUITES
@given(setting=_setting())
def test_lost_share_is_restored_exactly(
    group: Group, setting: tuple[int, int, int, list[int], int]
) -> None:
    t, n, lost, helper_ids, seed = setting
    _, shares = deal(group, t, n, SeededRandom(seed))
    public = next(iter(shares.values())).public
    participant = Identifier.from_int(group, lost)
    repaired = _run_repair(shares, public, identifiers(group, helper_ids), participant, seed)
    assert repaired.secret_share == shares[participant].secret_share
    assert repaired.public.to_bytes() == public.to_bytes()


@SUITES
@given(seed=st.integers(min_value=0, max_value=2**32), new_id=st.integers(8, 50))
def test_new_party_is_enrolled_on_the_same_polynomial(group: Group, seed: int, new_id: int) -> None:
    secret, shares = deal(group, 2, 5, SeededRandom(seed))
    public = next(iter(shares.values())).public
    participant = Identifier.from_int(group, new_id)
    helpers = identifiers(group, [2, 3, 5])
    enrolled = _run_repair(shares, public, helpers, participant, seed)
    assert participant in enrolled.public.verifying_shares
    assert enrolled.public.group_public_key == public.group_public_key
    # Every party can compute the same enlarged package from public data.
    assert enrolled_package(public, participant, helpers).to_bytes() == enrolled.public.to_bytes()
    pieces = {participant: enrolled.secret_share} | {
        i: shares[i].secret_share for i in identifiers(group, [1, 4])
    }
    assert reconstruct(group, pieces) == secret


@SUITES
def test_step_1_deltas_sum_to_the_weighted_share(group: Group) -> None:
    """ZF check_repair_share_step_1: sum_j delta_{i->j} == zeta_i · x_i, each delta random."""
    _, shares = deal(group, 2, 5, SeededRandom(2))
    helpers = identifiers(group, [1, 4, 5])
    participant = Identifier.from_int(group, 2)
    four = helpers[1]
    deltas = repair_step_1(helpers, shares[four], participant, SESSION, SeededRandom(3))
    assert set(deltas) == set(helpers)
    total = group.zero()
    for d in deltas.values():
        total = total + d.value
    zeta = lagrange_coefficient(group, four, helpers, at=2)
    assert total == zeta * shares[four].secret_share
    assert all(d.value != shares[four].secret_share for d in deltas.values())


@SUITES
def test_garbage_from_a_helper_is_caught_and_all_helpers_named(group: Group) -> None:
    _, shares = deal(group, 1, 4, SeededRandom(4))
    public = next(iter(shares.values())).public
    helpers = identifiers(group, [1, 3, 4])
    participant = Identifier.from_int(group, 2)
    rng = SeededRandom(5)
    deltas = {i: repair_step_1(helpers, shares[i], participant, SESSION, rng) for i in helpers}
    sigmas = {
        j: repair_step_2(public, helpers, participant, SESSION, {i: deltas[i][j] for i in helpers})
        for j in helpers
    }
    cheat = helpers[2]
    sigmas[cheat] = RepairValue(RepairStep.SIGMA, SESSION, sigmas[cheat].value + group.one())
    with pytest.raises(InvalidShare) as err:
        repair_step_3(public, helpers, participant, SESSION, sigmas)
    assert err.value.culprits == frozenset(helpers)


@SUITES
def test_messages_for_another_session_or_step_are_named(group: Group) -> None:
    _, shares = deal(group, 1, 3, SeededRandom(6))
    public = next(iter(shares.values())).public
    helpers = identifiers(group, [1, 3])
    participant = Identifier.from_int(group, 2)
    good = RepairValue(RepairStep.DELTA, SESSION, group.one())
    stale = RepairValue(RepairStep.DELTA, b"repair-0", group.one())
    wrong_step = RepairValue(RepairStep.SIGMA, SESSION, group.one())
    with pytest.raises(ProtocolAbort) as err:
        repair_step_2(public, helpers, participant, SESSION, {helpers[0]: good, helpers[1]: stale})
    assert err.value.culprits == frozenset({helpers[1]})
    with pytest.raises(ProtocolAbort) as err:
        repair_step_2(
            public, helpers, participant, SESSION, {helpers[0]: wrong_step, helpers[1]: good}
        )
    assert err.value.culprits == frozenset({helpers[0]})
    with pytest.raises(InvalidParameters, match="missing"):
        repair_step_2(public, helpers, participant, SESSION, {helpers[0]: good})


def test_helper_set_validation() -> None:
    g = SECP256K1
    _, shares = deal(g, 2, 5, SeededRandom(7))
    two = Identifier.from_int(g, 2)
    share = shares[Identifier.from_int(g, 1)]
    for helpers, message in (
        ([1, 3], "at least 3 helpers"),
        ([1, 2, 3], "cannot help repair its own share"),
        ([1, 3, 9], "not in the key's committee"),
        ([3, 4, 5], "not one of the helpers"),
    ):
        with pytest.raises(InvalidParameters, match=message):
            repair_step_1(identifiers(g, helpers), share, two, SESSION, SeededRandom(8))
    with pytest.raises(InvalidParameters):
        repair_step_1(identifiers(g, [1, 1, 3, 4]), share, two, SESSION, SeededRandom(8))


@SUITES
def test_repair_value_codec(group: Group) -> None:
    value = RepairValue(RepairStep.SIGMA, SESSION, group.scalar(12345))
    data = value.to_bytes()
    assert RepairValue.from_bytes(data, RepairStep.SIGMA, group).to_bytes() == data
    assert value.value.to_bytes().hex() not in repr(value)
    for bad, step in ((data, RepairStep.DELTA), (data + b"\x00", RepairStep.SIGMA)):
        with pytest.raises(EncodingError):
            RepairValue.from_bytes(bad, step, group)
