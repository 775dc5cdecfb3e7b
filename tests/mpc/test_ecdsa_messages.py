"""Wire encoding of the threshold ECDSA messages: canonical, strict, and stable."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.mpc.ecdsa import DealMessage, MaskOpening, NonceOpening, SignatureShare
from enclave.mpc.errors import EncodingError, InvalidParameters
from enclave.mpc.groups import ED25519, SECP256K1

G = SECP256K1
SID = bytes(range(32))
S = G.scalar(0x1234)
P = G.base_mul(G.scalar(7))

SAMPLES: list[Any] = [
    DealMessage(G, SID, G.scalar(1), G.scalar(2), G.scalar(3), G.scalar(4)),
    NonceOpening(G, SID, P, S),
    MaskOpening(G, SID, P),
    SignatureShare(G, SID, b"\x11" * 32, b"\x22" * 32, S),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_is_byte_identical(message: Any) -> None:
    data = message.to_bytes()
    decoded = type(message).from_bytes(data, G)
    assert decoded == message
    assert decoded.to_bytes() == data


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_trailing_and_truncated_bytes_refused(message: Any) -> None:
    data = message.to_bytes()
    with pytest.raises(EncodingError, match="trailing"):
        type(message).from_bytes(data + b"\x00", G)
    with pytest.raises(EncodingError, match="truncated"):
        type(message).from_bytes(data[:-1], G)


def _lp(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def test_signature_share_snapshot() -> None:
    """The layout, written out by hand; a change here is a wire-format break."""
    expected = (
        b"\x01"
        + _lp(b"ecdsa/sign/share")
        + _lp(b"secp256k1")
        + _lp(SID)
        + b"\x04"
        + _lp(b"\x11" * 32)
        + _lp(b"\x22" * 32)
        + (0x1234).to_bytes(32, "big")
    )
    assert SAMPLES[3].to_bytes() == expected


def test_nonce_opening_snapshot() -> None:
    expected = (
        b"\x01"
        + _lp(b"ecdsa/presign/nonce")
        + _lp(b"secp256k1")
        + _lp(SID)
        + b"\x02"
        + P.to_bytes()
        + (0x1234).to_bytes(32, "big")
    )
    assert SAMPLES[1].to_bytes() == expected


def test_wrong_kind_round_suite_refused() -> None:
    data = SAMPLES[2].to_bytes()
    with pytest.raises(EncodingError, match="kind"):
        NonceOpening.from_bytes(data, G)
    with pytest.raises(EncodingError, match="suite"):
        MaskOpening.from_bytes(data, ED25519)
    forged = data.replace(SID + b"\x03", SID + b"\x02")
    with pytest.raises(EncodingError, match="round"):
        MaskOpening.from_bytes(forged, G)


def test_non_canonical_scalar_and_identity_point_refused() -> None:
    good = SAMPLES[1].to_bytes()
    high = good[:-32] + G.order.to_bytes(32, "big")  # w >= q
    with pytest.raises(EncodingError, match="w_share"):
        NonceOpening.from_bytes(high, G)
    point_at = good.index(P.to_bytes())
    identity = good[:point_at] + bytes(33) + good[point_at + 33 :]
    with pytest.raises(EncodingError, match="big_r_share"):
        NonceOpening.from_bytes(identity, G)


def test_short_session_id_refused_on_decode() -> None:
    data = SAMPLES[2].to_bytes().replace(_lp(SID), _lp(b"x" * 8))
    with pytest.raises(EncodingError, match="session_id"):
        MaskOpening.from_bytes(data, G)


@pytest.mark.parametrize(
    "build",
    [
        lambda: MaskOpening(G, b"short", P),
        lambda: MaskOpening(G, SID, ED25519.generator()),
        lambda: SignatureShare(G, SID, b"\x11" * 31, b"\x22" * 32, S),
        lambda: NonceOpening(G, SID, P, ED25519.one()),
    ],
)
def test_construction_validates(build: Callable[[], object]) -> None:
    with pytest.raises(InvalidParameters):
        build()


@settings(max_examples=200)
@given(data=st.binary(max_size=200), kind=st.sampled_from([type(m) for m in SAMPLES]))
def test_random_bytes_are_refused_or_round_trip(data: bytes, kind: Any) -> None:
    try:
        message = kind.from_bytes(data, G)
    except EncodingError:
        return
    assert message.to_bytes() == data


@settings(max_examples=200)
@given(
    index=st.integers(min_value=0, max_value=10_000),
    flip=st.integers(min_value=1, max_value=255),
    sample=st.sampled_from(SAMPLES),
)
def test_corrupted_samples_are_refused_or_canonical(index: int, flip: int, sample: Any) -> None:
    data = bytearray(sample.to_bytes())
    data[index % len(data)] ^= flip
    try:
        message = type(sample).from_bytes(bytes(data), G)
    except EncodingError:
        return
    assert message.to_bytes() == bytes(data)
    assert message != sample
