"""BIP-445 over keys from our DKG: any allowed signer set, with tweaks, verifies under BIP-340."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.mpc.errors import InvalidSignatureShare, NonceReuse
from enclave.mpc.frost.bip340 import (
    SessionContext,
    SignersContext,
    Tweak,
    TweakMode,
    aggregate,
    nonce_agg,
    nonce_gen,
    sign,
    tweak_key,
    verify_bip340,
)
from enclave.mpc.groups import SECP256K1 as G
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare

from .dkg_helpers import run_dkg
from .rng import SeededRandom


def bip445_sign(
    keys: dict[Identifier, KeyShare],
    signers: list[Identifier],
    tweaks: tuple[Tweak, ...],
    msg: bytes,
    rng: SeededRandom,
    cheater: Identifier | None = None,
) -> tuple[bytes, bytes]:
    public = keys[signers[0]].public
    ctx_signers = SignersContext.from_public(public, signers)
    xonly_key = tweak_key(public.group_public_key, tweaks).xonly_key
    secnonces = {
        i: nonce_gen(
            rng, keys[i].secret_share, keys[i].verifying_share, thresh_pk=xonly_key, msg=msg
        )
        for i in signers
    }
    pubnonces = {i: s.pubnonce for i, s in secnonces.items()}
    ctx = SessionContext(nonce_agg(pubnonces), ctx_signers, tweaks, msg)
    psigs = {i: sign(secnonces[i], keys[i].secret_share, i, ctx) for i in signers}
    if cheater is not None:
        bad = (G.decode_scalar(psigs[cheater]) + G.one()).to_bytes()
        psigs[cheater] = bad
    with pytest.raises(NonceReuse):
        sign(secnonces[signers[0]], keys[signers[0]].secret_share, signers[0], ctx)
    return aggregate(psigs, pubnonces, ctx), xonly_key


@settings(max_examples=25)
@given(
    tn=st.integers(min_value=2, max_value=7).flatmap(
        lambda n: st.tuples(st.integers(min_value=1, max_value=n - 1), st.just(n))
    ),
    seed=st.integers(min_value=0, max_value=2**32),
    modes=st.lists(st.sampled_from(list(TweakMode)), max_size=3),
    data=st.data(),
)
def test_dkg_keys_sign_bip340_with_tweaks(
    tn: tuple[int, int], seed: int, modes: list[TweakMode], data: st.DataObject
) -> None:
    t, n = tn
    rng = SeededRandom(seed)
    keys = run_dkg(G, t, n, rng)
    ids = sorted(keys)
    k = data.draw(st.integers(min_value=t + 1, max_value=n))
    signers = sorted(data.draw(st.permutations(ids))[:k])
    tweaks = tuple(Tweak(G.random_scalar(rng).to_bytes(), m) for m in modes)
    msg = rng.random_bytes(32)
    sig, key = bip445_sign(keys, signers, tweaks, msg, rng)
    assert verify_bip340(key, msg, sig)  # libsecp256k1 via coincurve
    assert not verify_bip340(key, msg[::-1], sig)


def test_bad_partial_signature_is_named() -> None:
    rng = SeededRandom(21)
    keys = run_dkg(G, 2, 4, rng)
    signers = sorted(keys)[:3]
    tweaks = (Tweak(bytes(31) + b"\x07", TweakMode.XONLY),)
    with pytest.raises(InvalidSignatureShare) as info:
        bip445_sign(keys, signers, tweaks, b"m" * 32, rng, cheater=signers[1])
    assert info.value.culprits == frozenset({signers[1]})


def test_signers_context_refuses_wrong_key_material() -> None:
    rng = SeededRandom(22)
    keys = run_dkg(G, 1, 3, rng)
    public = next(iter(keys.values())).public
    ctx = SignersContext.from_public(public, sorted(keys)[:2])
    with pytest.raises(Exception, match="key material is incorrect"):
        dataclasses.replace(ctx, pubshares=ctx.pubshares[::-1])
