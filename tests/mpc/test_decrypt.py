"""Threshold decryption (enclave.mpc.decryption): round trips, culprits, opaque failures, codecs."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.mpc.decryption.combine import combine
from enclave.mpc.decryption.ecies import (
    MAX_ASSOCIATED_DATA,
    MAX_CIPHERTEXT,
    MAX_PLAINTEXT,
    Ciphertext,
    ciphertext_length,
    encrypt,
    open_with_shared_point,
    verify_ciphertext,
)
from enclave.mpc.decryption.partial import (
    DECRYPT_PROTOCOL,
    PartialDecryption,
    partial_decrypt,
    verify_partial,
)
from enclave.mpc.decryption.pok import EphemeralProof, EphemeralStatement
from enclave.mpc.decryption.pok import prove as prove_ephemeral
from enclave.mpc.decryption.pok import verify as verify_ephemeral
from enclave.mpc.dleq import DleqStatement, ProofContext
from enclave.mpc.dleq import prove as dleq_prove
from enclave.mpc.errors import (
    EncodingError,
    InvalidParameters,
    InvalidProof,
    SecretError,
)
from enclave.mpc.groups import ED25519, SECP256K1, Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare
from wire.checks import MAX_BLOB

from .dkg_helpers import run_dkg
from .rng import SeededRandom
from .threshold_keys import deal

SUITES = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)
SESSION = b"decrypt-request-1"


def _partials(
    shares: dict[Identifier, KeyShare],
    ct: Ciphertext,
    who: list[Identifier],
    seed: int = 0,
    aad: bytes = b"",
) -> dict[Identifier, PartialDecryption]:
    rng = SeededRandom(seed)
    return {i: partial_decrypt(shares[i], ct, SESSION, rng, aad) for i in who}


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
    assert combine(public, ct, _partials(shares, ct, who, seed, aad), SESSION, aad) == message
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
    partials = _partials(shares, ct, list(shares), aad=b"key-7")
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
    # The other committee's honest nodes refuse: the encryptor's proof names the key...
    with pytest.raises(InvalidProof, match="for this key"):
        _partials(others, ct, list(others))
    # ...and partials from nodes that skip that check look valid for their own key...
    partials = {i: _unchecked_partial(others[i], ct) for i in others}
    # ...but the right package refuses them (proofs are against the right Y_i)...
    with pytest.raises(InvalidProof):
        combine(public, ct, partials, SESSION)
    # ...and combine against their own package turns into an opaque AEAD failure.
    with pytest.raises(SecretError):
        combine(other_public, ct, partials, SESSION)


def _unchecked_partial(share: KeyShare, ct: Ciphertext) -> PartialDecryption:
    """What a node that skips the ciphertext's proof would return: ``x_i·E`` with a valid DLEQ."""
    group = share.group
    d = ct.ephemeral * share.secret_share
    statement = DleqStatement(group.generator(), share.verifying_share, ct.ephemeral, d)
    context = ProofContext(DECRYPT_PROTOCOL, SESSION, share.identifier)
    proof = dleq_prove(share.secret_share, statement, context, SeededRandom(21))
    return PartialDecryption(group, SESSION, d, proof)


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


# -- non-malleability (issue 9 item 1) and sizes (item 11) ---------------------------------


@SUITES
def test_a_mauled_ciphertext_gets_no_partial(group: Group) -> None:
    """Issue 9 item 1 in the core: shifting ``E`` by ``r·G``, changing the body, the context or
    the key, or moving a proof between ciphertexts invalidates the encryptor's proof, and
    ``partial_decrypt`` refuses before it uses its share."""
    _, shares = deal(group, 1, 3, SeededRandom(50))
    share = next(iter(shares.values()))
    key = share.group_public_key
    ct = encrypt(key, b"m", SeededRandom(51), b"ctx")
    verify_ciphertext(ct, key, b"ctx")
    other_ct = encrypt(key, b"m", SeededRandom(52), b"ctx")
    _, others = deal(group, 1, 3, SeededRandom(53))
    other_key = next(iter(others.values())).group_public_key
    shifted = ct.ephemeral + group.base_mul(group.scalar(0x5EED))
    body = bytes([ct.sealed[0] ^ 1]) + ct.sealed[1:]
    mauled = {
        "E + r·G": (dataclasses.replace(ct, ephemeral=shifted), key, b"ctx"),
        "body": (dataclasses.replace(ct, sealed=body), key, b"ctx"),
        "context": (ct, key, b"ctx2"),
        "no context": (ct, key, b""),
        "key": (ct, other_key, b"ctx"),
        "proof moved": (dataclasses.replace(ct, proof=other_ct.proof), key, b"ctx"),
        "E moved": (dataclasses.replace(ct, ephemeral=other_ct.ephemeral), key, b"ctx"),
    }
    for name, (bad, public_key, aad) in mauled.items():
        try:
            verify_ciphertext(bad, public_key, aad)
        except InvalidProof:
            pass
        else:
            pytest.fail(f"{name}: the proof verified")
        if public_key == key:
            with pytest.raises(InvalidProof, match="does not verify"):
                partial_decrypt(share, bad, SESSION, SeededRandom(54), aad)


@SUITES
@given(data=st.data())
def test_no_single_byte_change_passes_the_node_checks(group: Group, data: st.DataObject) -> None:
    """Issue 9 item 1: any changed byte is refused by strict decoding or by the proof."""
    public_key = group.base_mul(group.scalar(11))
    valid = encrypt(public_key, b"approved payload", SeededRandom(55), b"ctx").to_bytes()
    index = data.draw(st.integers(min_value=0, max_value=len(valid) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    mutated = valid[:index] + bytes([valid[index] ^ flip]) + valid[index + 1 :]
    try:
        parsed = Ciphertext.from_bytes(mutated, group)
    except EncodingError:
        return
    with pytest.raises(InvalidProof):
        verify_ciphertext(parsed, public_key, b"ctx")


def test_the_proof_needs_the_ephemeral_exponent() -> None:
    statement = EphemeralStatement(
        ED25519.base_mul(ED25519.scalar(3)),
        ED25519.base_mul(ED25519.scalar(5)),
        b"\x02\x01",
        b"",
        b"",
    )
    with pytest.raises(InvalidParameters, match="exponent"):
        prove_ephemeral(ED25519.scalar(6), statement, SeededRandom(56))
    proof = prove_ephemeral(ED25519.scalar(5), statement, SeededRandom(56))
    verify_ephemeral(statement, proof)
    assert EphemeralProof.from_bytes(ED25519, proof.to_bytes()) == proof
    with pytest.raises(EncodingError):
        EphemeralProof.from_bytes(ED25519, proof.to_bytes()[:-1])


@SUITES
def test_the_largest_plaintext_fits_one_wire_field(group: Group) -> None:
    """Issue 9 item 11: one limit, checked at encryption; its ciphertext fits ``MAX_BLOB``."""
    assert MAX_CIPHERTEXT <= MAX_BLOB
    public_key = group.base_mul(group.scalar(3))
    data = encrypt(public_key, bytes(MAX_PLAINTEXT), SeededRandom(60), b"ctx").to_bytes()
    assert len(data) == ciphertext_length(group, MAX_PLAINTEXT) <= MAX_CIPHERTEXT
    parsed = Ciphertext.from_bytes(data, group)
    assert parsed.to_bytes() == data
    verify_ciphertext(parsed, public_key, b"ctx")
    shared = parsed.ephemeral * group.scalar(3)
    assert open_with_shared_point(parsed, public_key, shared, b"ctx") == bytes(MAX_PLAINTEXT)
    with pytest.raises(InvalidParameters, match=f"longer than {MAX_PLAINTEXT} bytes"):
        encrypt(public_key, bytes(MAX_PLAINTEXT + 1), SeededRandom(61))
    with pytest.raises(InvalidParameters, match="associated data longer"):
        encrypt(public_key, b"m", SeededRandom(62), bytes(MAX_ASSOCIATED_DATA + 1))


# -- codecs -------------------------------------------------------------------------------


def _sample(group: Group) -> tuple[Ciphertext, PartialDecryption]:
    _, shares = deal(group, 1, 3, SeededRandom(b"snapshot"))
    share = next(iter(shares.values()))
    ct = encrypt(share.group_public_key, b"snapshot", SeededRandom(b"snapshot-ct"), b"ad")
    return ct, partial_decrypt(share, ct, SESSION, SeededRandom(b"snapshot-partial"), b"ad")


@SUITES
def test_codecs_round_trip_byte_for_byte(group: Group) -> None:
    ct, partial = _sample(group)
    assert Ciphertext.from_bytes(ct.to_bytes(), group).to_bytes() == ct.to_bytes()
    assert PartialDecryption.from_bytes(partial.to_bytes(), group).to_bytes() == partial.to_bytes()
    # Layout: version 1, kind, suite, format 2, AEAD id 1, E, proof (c, z), length-prefixed
    # sealed payload.
    data = ct.to_bytes()
    header = b"\x01" + b"\x00\x00\x00\x10ecies-ciphertext"
    suite = len(group.name).to_bytes(4, "big") + group.name.encode()
    assert data.startswith(header + suite + b"\x02\x01" + ct.ephemeral.to_bytes())
    assert data.startswith(ct.header())
    assert len(data) == len(ct.header()) + 2 * group.scalar_length + 4 + len(b"snapshot") + 16
    assert len(data) == ciphertext_length(group, len(b"snapshot"))


def _fixed_ciphertext(group: Group) -> Ciphertext:
    public_key = group.base_mul(group.scalar(7))
    return encrypt(public_key, b"snapshot", SeededRandom(b"snapshot-ct"), b"ad")


SNAPSHOTS = {
    # A changed snapshot is a wire-format (or KDF) break: the inputs are fixed and seeded.
    "secp256k1": "010000001065636965732d6369706865727465787400000009736563703235366b310201026f98c6690a1c6e26ed5038313b975f9bc1f4265f1a9c57f630655196426259f365dcd3404081c565be8b35daad231f9778327bedd0c0e88fff4852496cff8d90b1eb821f2a68404aa241dbbdf05bae11c84b351056319aeab64af48e240d22a900000018200cdb93f770190b12a6b131cb56a64e5cd9ed6fb3e0fd51",
    "ed25519": "010000001065636965732d6369706865727465787400000007656432353531390201a21b0727e66d062b1a4c671644a91ae9e6ff3745a0a049a638c13870f203adeee455ec48449bacbe754d1cb6125df12c87210fcd41d28aa2652ef69dd7c2860f57f094b04e08c0ba75eb592a7f775fef74dc0d69a99b544c134d7e2bda2c010d000000183d38a0b9650e78fd12d7d5e75b310b014343c5ea45a48da4",
}

FORMAT_1 = {
    # The same inputs encrypted by the build before the proof (format 1: no format byte, no
    # proof); such ciphertexts are malleable and refused by name.
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
def test_format_1_ciphertexts_are_refused_naming_the_format(group: Group) -> None:
    """Issue 9 item 1: ciphertexts made before the proof are refused, not half-trusted."""
    with pytest.raises(EncodingError) as err:
        Ciphertext.from_bytes(bytes.fromhex(FORMAT_1[group.name]), group)
    assert err.value.field == "format"
    assert "format 1" in err.value.reason
    assert "format 2" in err.value.reason


@SUITES
def test_ciphertext_decoding_is_strict(group: Group) -> None:
    ct, _ = _sample(group)
    data = ct.to_bytes()
    other = ED25519 if group is SECP256K1 else SECP256K1
    h, n = len(ct.header()), group.scalar_length
    fmt = h - group.element_length - 2  # the format byte, then the AEAD id, then E
    order = group.order.to_bytes(n, "big" if group is SECP256K1 else "little")
    bad_inputs = {
        "truncated": (data[:-1], "sealed"),
        "trailing": (data + b"\x00", "message"),
        "version": (b"\x02" + data[1:], "version"),
        "format 1": (_replace_at(data, fmt, 1), "format"),
        "format 3": (_replace_at(data, fmt, 3), "format"),
        "aead suite": (_replace_at(data, fmt + 1, 9), "aead suite"),
        "identity E": (
            data[: h - group.element_length] + group.identity().to_bytes() + data[h:],
            "ephemeral",
        ),
        "c not reduced": (data[:h] + order + data[h + n :], "proof.challenge"),
        "z not reduced": (data[: h + n] + order + data[h + 2 * n :], "proof.response"),
        "no proof": (ct.header() + data[h + 2 * n :], "proof.challenge"),
        "short sealed": (data[: h + 2 * n] + (15).to_bytes(4, "big") + bytes(15), "sealed"),
        "long sealed": (
            data[: h + 2 * n] + (MAX_PLAINTEXT + 17).to_bytes(4, "big") + bytes(MAX_PLAINTEXT + 17),
            "sealed",
        ),
    }
    for name, (bad, field) in bad_inputs.items():
        with pytest.raises(EncodingError) as err:
            Ciphertext.from_bytes(bad)
        assert err.value.field == field, name
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
