"""Threshold decryption (enclave.mpc.decryption): round trips, culprits, opaque failures, codecs."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.mpc.decryption.combine import combine
from enclave.mpc.decryption.ecies import Ciphertext, encrypt, open_with_shared_point
from enclave.mpc.decryption.partial import PartialDecryption, partial_decrypt, verify_partial
from enclave.mpc.errors import (
    EncodingError,
    InvalidParameters,
    InvalidProof,
    SecretError,
)
from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare

from .dkg_helpers import run_dkg
from .rng import SeededRandom
from .threshold_keys import deal

SUITES = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)
SESSION = b"decrypt-request-1"


def _partials(
    shares: dict[Identifier, KeyShare], ct: Ciphertext, who: list[Identifier], seed: int = 0
) -> dict[Identifier, PartialDecryption]:
    rng = SeededRandom(seed)
    return {i: partial_decrypt(shares[i], ct, SESSION, rng) for i in who}


@st.composite
def _setting(draw: st.DrawFn) -> tuple[int, int, list[int], int]:
    n = draw(st.integers(min_value=2, max_value=7))
    t = draw(st.integers(min_value=1, max_value=n - 1))
    size = draw(st.integers(min_value=t + 1, max_value=n))
    subset = draw(st.permutations(list(range(1, n + 1))))[:size]
    return t, n, subset, draw(st.integers(min_value=0, max_value=2**32))


@SUITES
@given(setting=_setting(), message=st.binary(max_size=200), aad=st.binary(max_size=20))
def test_any_t_plus_1_nodes_decrypt(
    group: Group, setting: tuple[int, int, list[int], int], message: bytes, aad: bytes
) -> None:
    t, n, subset, seed = setting
    rng = SeededRandom(seed)
    secret, shares = deal(group, t, n, rng)
    public = next(iter(shares.values())).public
    ct = Ciphertext.from_bytes(encrypt(public.group_public_key, message, rng, aad).to_bytes())
    who = [Identifier.from_int(group, v) for v in subset]
    assert combine(public, ct, _partials(shares, ct, who, seed), SESSION, aad) == message
    # Independent check: the whole key (tests only) opens the same ciphertext.
    assert (
        open_with_shared_point(ct, public.group_public_key, ct.ephemeral * secret, aad) == message
    )


@SUITES
def test_t_partials_are_not_enough(group: Group) -> None:
    _, shares = deal(group, 2, 5, SeededRandom(1))
    public = next(iter(shares.values())).public
    ct = encrypt(public.group_public_key, b"secret", SeededRandom(2))
    who = list(shares)[:2]
    with pytest.raises(InvalidParameters, match="need 3"):
        combine(public, ct, _partials(shares, ct, who), SESSION)


@SUITES
def test_wrong_partial_value_is_named(group: Group) -> None:
    _, shares = deal(group, 2, 5, SeededRandom(3))
    public = next(iter(shares.values())).public
    ct = encrypt(public.group_public_key, b"secret", SeededRandom(4))
    partials = _partials(shares, ct, list(shares))
    cheat = Identifier.from_int(group, 4)
    bad = partials[cheat]
    partials[cheat] = dataclasses.replace(bad, share=bad.share + group.generator())
    with pytest.raises(InvalidProof) as err:
        combine(public, ct, partials, SESSION)
    assert err.value.culprits == frozenset({cheat})
    # Dropping the named node leaves 4 >= t + 1 honest partials: decryption completes.
    del partials[cheat]
    assert combine(public, ct, partials, SESSION) == b"secret"


@SUITES
def test_bad_proofs_are_named_all_of_them(group: Group) -> None:
    _, shares = deal(group, 1, 4, SeededRandom(5))
    public = next(iter(shares.values())).public
    ct = encrypt(public.group_public_key, b"m", SeededRandom(6))
    partials = _partials(shares, ct, list(shares))
    a, b = Identifier.from_int(group, 1), Identifier.from_int(group, 3)
    # a returns b's (valid for b) proof; b returns a proof for another session id.
    partials[a] = dataclasses.replace(partials[a], proof=partials[b].proof)
    partials[b] = partial_decrypt(shares[b], ct, b"another-session", SeededRandom(7))
    with pytest.raises(InvalidProof) as err:
        combine(public, ct, partials, SESSION)
    assert err.value.culprits == frozenset({a, b})


@SUITES
def test_partial_relayed_under_another_identity_is_named(group: Group) -> None:
    """The parent swaps two nodes' answers: each fails against the claimed sender's Y_i."""
    _, shares = deal(group, 1, 3, SeededRandom(8))
    public = next(iter(shares.values())).public
    ct = encrypt(public.group_public_key, b"m", SeededRandom(9))
    partials = _partials(shares, ct, list(shares))
    one, two = Identifier.from_int(group, 1), Identifier.from_int(group, 2)
    partials[one], partials[two] = partials[two], partials[one]
    with pytest.raises(InvalidProof) as err:
        combine(public, ct, partials, SESSION)
    assert err.value.culprits == frozenset({one, two})


@SUITES
def test_partial_for_another_ciphertext_is_named(group: Group) -> None:
    _, shares = deal(group, 1, 3, SeededRandom(10))
    public = next(iter(shares.values())).public
    ct = encrypt(public.group_public_key, b"m", SeededRandom(11))
    other = encrypt(public.group_public_key, b"m", SeededRandom(12))
    partials = _partials(shares, ct, list(shares))
    two = Identifier.from_int(group, 2)
    partials[two] = partial_decrypt(shares[two], other, SESSION, SeededRandom(13))
    with pytest.raises(InvalidProof) as err:
        verify_partial(public, ct, two, partials[two], SESSION)
    assert err.value.culprits == frozenset({two})


@SUITES
def test_unknown_sender_is_a_parameter_error(group: Group) -> None:
    _, shares = deal(group, 1, 3, SeededRandom(14))
    public = next(iter(shares.values())).public
    ct = encrypt(public.group_public_key, b"m", SeededRandom(15))
    partials = _partials(shares, ct, list(shares))
    stranger = Identifier.from_int(group, 9)
    partials[stranger] = partials.pop(Identifier.from_int(group, 3))
    with pytest.raises(InvalidParameters, match="outside the committee"):
        combine(public, ct, partials, SESSION)


@SUITES
def test_tampering_and_wrong_associated_data_fail_opaquely(group: Group) -> None:
    _, shares = deal(group, 1, 3, SeededRandom(16))
    public = next(iter(shares.values())).public
    ct = encrypt(public.group_public_key, b"top secret", SeededRandom(17), b"key-7")
    partials = _partials(shares, ct, list(shares))
    flipped = bytearray(ct.sealed)
    flipped[0] ^= 1
    tampered = dataclasses.replace(ct, sealed=bytes(flipped))
    cases = [(tampered, b"key-7"), (ct, b"key-8"), (ct, b"")]
    for ciphertext, aad in cases:
        with pytest.raises(SecretError) as err:
            combine(public, ciphertext, partials, SESSION, aad)
        assert str(err.value) == SecretError.MESSAGE
        assert err.value.__cause__ is None
        assert err.value.__suppress_context__
        assert b"top secret".hex() not in repr(err.value)


@SUITES
def test_key_for_another_group_key_cannot_open(group: Group) -> None:
    _, shares = deal(group, 1, 3, SeededRandom(18))
    _, others = deal(group, 1, 3, SeededRandom(19))
    public = next(iter(shares.values())).public
    other_public = next(iter(others.values())).public
    ct = encrypt(public.group_public_key, b"m", SeededRandom(20))
    # The other committee's nodes produce valid-looking partials for their own key...
    partials = _partials(others, ct, list(others))
    # ...that the right package refuses (proofs are against the right Y_i)...
    with pytest.raises(InvalidProof):
        combine(public, ct, partials, SESSION)
    # ...and that combine against their own package turns into an opaque AEAD failure.
    with pytest.raises(SecretError):
        combine(other_public, ct, partials, SESSION)


def test_ciphertext_and_key_in_different_groups_refused() -> None:
    _, shares = deal(SECP256K1, 1, 3, SeededRandom(21))
    _, ed_shares = deal(ED25519, 1, 3, SeededRandom(22))
    ed_public = next(iter(ed_shares.values())).public
    ct = encrypt(ed_public.group_public_key, b"m", SeededRandom(23))
    share = next(iter(shares.values()))
    with pytest.raises(InvalidParameters):
        partial_decrypt(share, ct, SESSION, SeededRandom(24))
    with pytest.raises(InvalidParameters):
        combine(share.public, ct, {}, SESSION)
    with pytest.raises(InvalidParameters):
        encrypt(SECP256K1.identity(), b"m", SeededRandom(25))


# -- codecs -------------------------------------------------------------------------------


def _sample(group: Group) -> tuple[Ciphertext, PartialDecryption]:
    _, shares = deal(group, 1, 3, SeededRandom(b"snapshot"))
    share = next(iter(shares.values()))
    ct = encrypt(share.group_public_key, b"snapshot", SeededRandom(b"snapshot-ct"), b"ad")
    return ct, partial_decrypt(share, ct, SESSION, SeededRandom(b"snapshot-partial"))


@SUITES
def test_codecs_round_trip_byte_for_byte(group: Group) -> None:
    ct, partial = _sample(group)
    assert Ciphertext.from_bytes(ct.to_bytes(), group).to_bytes() == ct.to_bytes()
    assert PartialDecryption.from_bytes(partial.to_bytes(), group).to_bytes() == partial.to_bytes()
    # Layout: version 1, kind, suite, AEAD id 1, E, length-prefixed sealed payload.
    data = ct.to_bytes()
    header = b"\x01" + b"\x00\x00\x00\x10ecies-ciphertext"
    assert data.startswith(header + len(group.name).to_bytes(4, "big") + group.name.encode())
    assert len(data) == len(ct.header()) + 4 + len(b"snapshot") + 16


def _fixed_ciphertext(group: Group) -> Ciphertext:
    public_key = group.base_mul(group.scalar(7))
    return encrypt(public_key, b"snapshot", SeededRandom(b"snapshot-ct"), b"ad")


SNAPSHOTS = {
    # A changed snapshot is a wire-format (or KDF) break: the inputs are fixed and seeded.
    "secp256k1": "010000001065636965732d6369706865727465787400000009736563703235366b3101026f98c6690a1c6e26ed5038313b975f9bc1f4265f1a9c57f630655196426259f300000018200cdb93f770190bc2ee8599636219fcca036b2f314da620",
    "ed25519": "010000001065636965732d63697068657274657874000000076564323535313901a21b0727e66d062b1a4c671644a91ae9e6ff3745a0a049a638c13870f203adee000000183d38a0b9650e78fd874a31de281a48f3affaa68505e9b66f",
}


@SUITES
def test_ciphertext_snapshot(group: Group) -> None:
    ct = _fixed_ciphertext(group)
    assert ct.to_bytes().hex() == SNAPSHOTS[group.name]
    assert (
        open_with_shared_point(
            ct, group.base_mul(group.scalar(7)), ct.ephemeral * group.scalar(7), b"ad"
        )
        == b"snapshot"
    )


@SUITES
def test_ciphertext_decoding_is_strict(group: Group) -> None:
    ct, _ = _sample(group)
    data = ct.to_bytes()
    other = ED25519 if group is SECP256K1 else SECP256K1
    bad_inputs = {
        "truncated": data[:-1],
        "trailing": data + b"\x00",
        "version": b"\x02" + data[1:],
        "aead suite": _replace_at(data, len(ct.header()) - group.element_length - 1, 9),
        "identity E": data[: len(ct.header()) - group.element_length]
        + group.identity().to_bytes()
        + data[len(ct.header()) :],
        "short sealed": ct.header() + (15).to_bytes(4, "big") + bytes(15),
    }
    for name, bad in bad_inputs.items():
        try:
            Ciphertext.from_bytes(bad)
        except EncodingError:
            continue
        pytest.fail(f"{name}: accepted")
    with pytest.raises(EncodingError):
        Ciphertext.from_bytes(data, other)


def _replace_at(data: bytes, index: int, value: int) -> bytes:
    return data[:index] + bytes([value]) + data[index + 1 :]


@SUITES
def test_partial_decoding_is_strict(group: Group) -> None:
    _, partial = _sample(group)
    data = partial.to_bytes()
    for bad in (data[:-1], data + b"\x00", b"\x02" + data[1:]):
        with pytest.raises(EncodingError):
            PartialDecryption.from_bytes(bad, group)


def test_key_share_and_partial_reprs_hold_no_secret() -> None:
    secret, shares = deal(SECP256K1, 1, 3, SeededRandom(30))
    share = next(iter(shares.values()))
    for text in (repr(share), str(share), repr(share.secret_share)):
        assert share.secret_share.to_bytes().hex() not in text
        assert secret.to_bytes().hex() not in text


@SUITES
def test_keys_from_the_real_dkg_decrypt(group: Group) -> None:
    """End to end with DKG output (no dealer): encrypt to the DKG key, any t+1 decrypt."""
    shares = run_dkg(group, 2, 5, SeededRandom(40))
    public = next(iter(shares.values())).public
    ct = encrypt(public.group_public_key, b"from the dkg", SeededRandom(41))
    who = [Identifier.from_int(group, v) for v in (5, 2, 4)]
    assert combine(public, ct, _partials(shares, ct, who), SESSION) == b"from the dkg"
