"""BIP-32 public derivation for threshold keys: the BIP's own vectors, path parsing, and the
consistency of the additive tweak with the shares and with threshold ECDSA."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.mpc.bip32 import (
    HARDENED,
    ExtendedPublicKey,
    default_chain_code,
    derive_child,
    derive_path,
    parse_path,
    tweak_key_share,
    tweak_public_package,
)
from enclave.mpc.ecdsa import PresignContext, SigningRequest, combine
from enclave.mpc.errors import InvalidParameters
from enclave.mpc.groups import SECP256K1
from enclave.mpc.shamir import reconstruct

from .ecdsa_harness import deal_key, ids, presignatures, run_presign, sign_all
from .rng import SeededRandom

VECTORS = Path(__file__).parent.parent / "data" / "vectors" / "bip32" / "public_derivation.json"
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_XPUB_VERSION = bytes.fromhex("0488b21e")


def _base58check(text: str) -> bytes:
    """Test-only Base58Check decoder; the double-SHA-256 checksum proves each decoding right."""
    value = 0
    for ch in text:
        value = value * 58 + _B58.index(ch)
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    raw = b"\x00" * (len(text) - len(text.lstrip("1"))) + raw
    payload, checksum = raw[:-4], raw[-4:]
    assert hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] == checksum
    return payload


def load_xpub(text: str) -> ExtendedPublicKey:
    data = _base58check(text)
    assert len(data) == 78
    assert data[:4] == _XPUB_VERSION
    return ExtendedPublicKey(
        public_key=SECP256K1.decode_point(data[45:78]),
        chain_code=data[13:45],
        depth=data[4],
        child_number=int.from_bytes(data[9:13], "big"),
    )


def _vectors() -> tuple[dict[str, Any], list[dict[str, str]]]:
    doc = json.loads(VECTORS.read_text())
    return doc["xpubs"], doc["public_derivations"]


XPUBS, DERIVATIONS = _vectors()


@pytest.mark.parametrize("case", DERIVATIONS, ids=lambda c: f"{c['parent']}+{c['path']}")
def test_bip32_public_derivation_vectors(case: dict[str, str]) -> None:
    parent = load_xpub(XPUBS[case["parent"]])
    expected = load_xpub(XPUBS[case["child"]])
    derived = derive_path(parent, case["path"])
    assert derived.key == expected  # public key, chain code, depth, child number
    assert derived.public_key == parent.public_key + SECP256K1.base_mul(derived.tweak)


def test_hardened_steps_of_the_vectors_are_refused() -> None:
    master = load_xpub(XPUBS["tv2 m"])
    with pytest.raises(InvalidParameters, match="hardened"):
        derive_path(master, "m/0/2147483647H")
    with pytest.raises(InvalidParameters, match="non-hardened"):
        derive_child(master, HARDENED)


@pytest.mark.parametrize(
    ("path", "indices"),
    [("m", ()), ("m/0", (0,)), ("m/0/1", (0, 1)), ("m/2147483647/7", (2**31 - 1, 7))],
)
def test_parse_path(path: str, indices: tuple[int, ...]) -> None:
    assert parse_path(path) == indices


@pytest.mark.parametrize(
    "path",
    [
        "m/0'",
        "m/0h",
        "m/0H",
        "m/2147483648",
        "0/1",
        "",
        "m/",
        "m/01",
        "m/-1",
        "m/ 1",
        "m/1/",
        "M/1",
        "m/1a",
        "m/٣",
    ],
)
def test_parse_path_refuses(path: str) -> None:
    with pytest.raises(InvalidParameters):
        parse_path(path)


def test_extended_key_validation() -> None:
    point = SECP256K1.generator()
    with pytest.raises(InvalidParameters, match="chain code"):
        ExtendedPublicKey(point, bytes(31))
    with pytest.raises(InvalidParameters, match="infinity"):
        ExtendedPublicKey(SECP256K1.identity(), bytes(32))


@settings(max_examples=25)
@given(
    path=st.lists(st.integers(0, HARDENED - 1), max_size=4),
    seed=st.integers(0, 2**32),
)
def test_path_derivation_is_the_sum_of_single_steps(path: list[int], seed: int) -> None:
    rng = SeededRandom(seed)
    root = ExtendedPublicKey(SECP256K1.base_mul(SECP256K1.random_scalar(rng)), rng.random_bytes(32))
    derived = derive_path(root, path)
    key, total = root, SECP256K1.zero()
    for index in path:
        key, tweak = derive_child(key, index)
        total = total + tweak
    assert derived.key == key
    assert derived.tweak == total
    assert derived.public_key == root.public_key + SECP256K1.base_mul(derived.tweak)


@pytest.mark.parametrize(("t", "n"), [(1, 3), (2, 5)])
def test_tweaked_shares_are_a_sharing_of_the_child_key(t: int, n: int) -> None:
    rng = SeededRandom(f"bip32-shares-{t}")
    secret, shares = deal_key(t, n, rng)
    public = shares[ids(1)[0]].public
    root = ExtendedPublicKey(public.group_public_key, default_chain_code(public.group_public_key))
    child = derive_path(root, "m/0/1")
    tweaked = {i: tweak_key_share(s, child.tweak) for i, s in shares.items()}  # validates X_j
    assert reconstruct(SECP256K1, {i: s.secret_share for i, s in tweaked.items()}) == (
        secret + child.tweak
    )
    for subset in (ids(*range(1, t + 2)), ids(*range(n - t, n + 1))):
        assert reconstruct(SECP256K1, {i: tweaked[i].secret_share for i in subset}) == (
            secret + child.tweak
        )
    assert tweak_public_package(public, child.tweak).group_public_key == child.public_key


def test_threshold_signature_with_tweak_verifies_under_the_derived_child_key() -> None:
    rng = SeededRandom("bip32-sign")
    _, shares = deal_key(2, 5, rng)
    public = shares[ids(1)[0]].public
    root = ExtendedPublicKey(public.group_public_key, default_chain_code(public.group_public_key))
    child = derive_path(root, "m/44/0/7")
    context = PresignContext.create(public, ids(1, 3, 4, 5, 2), b"bip32-sign-session-01")
    presigs = presignatures(run_presign(context, shares, rng))
    info = presigs[ids(1)[0]].info
    digest = hashlib.sha256(b"pay to m/44/0/7").digest()
    request = SigningRequest(info.presignature_id, digest, rng.random_bytes(32), child.tweak)
    signature = combine(info, request, sign_all(presigs, request))
    key = coincurve.PublicKey(child.public_key.to_bytes())
    assert key.verify(signature.to_der(), digest, hasher=None)
    recovered = coincurve.PublicKey.from_signature_and_message(
        signature.to_recoverable(), digest, hasher=None
    )
    assert recovered.format() == child.public_key.to_bytes()


def test_a_root_key_serialises_to_its_published_xpub() -> None:
    """BIP-32 test vector 2's master xpub, decoded and encoded again byte for byte."""
    text = XPUBS["tv2 m"]
    assert load_xpub(text).to_xpub() == text
