"""Group laws, codecs and edge cases, written once and run for every suite."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.mpc.errors import EncodingError, InvalidParameters
from enclave.mpc.groups import ED25519, GROUPS, SECP256K1, Group, group_by_name

SUITES = pytest.mark.parametrize("group", [SECP256K1, ED25519], ids=lambda g: g.name)

ints = st.integers(min_value=0, max_value=2**256)


@SUITES
@given(a=ints, b=ints, c=ints)
def test_scalar_field_laws(group: Group, a: int, b: int, c: int) -> None:
    x, y, z = group.scalar(a), group.scalar(b), group.scalar(c)
    assert int(x + y) == (a + b) % group.order
    assert int(x - y) == (a - b) % group.order
    assert int(x * y) == (a * b) % group.order
    assert int(-x) == (-a) % group.order
    assert x * (y + z) == x * y + x * z
    if not x.is_zero():
        assert x * x.invert() == group.one()


@SUITES
@given(a=ints, b=ints)
def test_point_group_laws(group: Group, a: int, b: int) -> None:
    x, y = group.scalar(a), group.scalar(b)
    p, q = group.base_mul(x), group.base_mul(y)
    assert p + q == group.base_mul(x + y)
    assert p - q == group.base_mul(x - y)
    assert p * y == group.base_mul(x * y) == y * p
    assert -p == group.base_mul(-x)
    assert (p - p).is_identity()
    assert p + group.identity() == p == group.identity() + p
    assert group.multi_mul([(x, group.generator()), (y, q)]) == group.base_mul(x + y * y)


@SUITES
def test_identity_and_zero_edges(group: Group) -> None:
    zero, ident = group.zero(), group.identity()
    assert group.base_mul(zero).is_identity()
    assert (group.generator() * zero).is_identity()
    assert (ident * group.scalar(5)).is_identity()
    assert group.multi_mul([]).is_identity()
    assert group.multi_mul([(zero, group.generator())]).is_identity()
    with pytest.raises(InvalidParameters):
        zero.invert()
    # -(G) + G through the library's own addition yields the representable identity.
    assert (-group.generator() + group.generator()) == ident


@SUITES
@given(a=st.integers(min_value=1, max_value=2**256))
def test_codec_round_trips(group: Group, a: int) -> None:
    x = group.scalar(a)
    assert group.decode_scalar(x.to_bytes()) == x
    assert len(x.to_bytes()) == group.scalar_length
    if not x.is_zero():
        p = group.base_mul(x)
        assert group.decode_point(p.to_bytes()) == p
        assert len(p.to_bytes()) == group.element_length


@SUITES
def test_decode_scalar_refuses_non_canonical(group: Group) -> None:
    order = group.order.to_bytes(32, "big" if group is SECP256K1 else "little")
    with pytest.raises(EncodingError, match="not reduced"):
        group.decode_scalar(order)
    with pytest.raises(EncodingError, match="expected 32 bytes"):
        group.decode_scalar(bytes(31))
    with pytest.raises(EncodingError, match="expected 32 bytes"):
        group.decode_scalar(bytes(33))


@SUITES
def test_decode_point_refuses_identity_and_wrong_length(group: Group) -> None:
    with pytest.raises(EncodingError):
        group.decode_point(group.identity().to_bytes())
    assert group.decode_point_or_identity(group.identity().to_bytes()).is_identity()
    with pytest.raises(EncodingError):
        group.decode_point(group.generator().to_bytes()[:-1])
    with pytest.raises(EncodingError):
        group.decode_point(group.generator().to_bytes() + b"\x00")


def test_secp256k1_refuses_off_curve_and_non_canonical() -> None:
    g = SECP256K1.generator().to_bytes()
    with pytest.raises(EncodingError):  # x = 5 has no y on secp256k1
        SECP256K1.decode_point(b"\x02" + (5).to_bytes(32, "big"))
    with pytest.raises(EncodingError):  # x >= p
        SECP256K1.decode_point(b"\x02" + (2**256 - 1).to_bytes(32, "big"))
    with pytest.raises(EncodingError):  # uncompressed form is not the canonical encoding
        SECP256K1.decode_point(b"\x04" + g[1:] + bytes(32))
    with pytest.raises(EncodingError):  # bad prefix
        SECP256K1.decode_point(b"\x05" + g[1:])


def test_ed25519_refuses_small_order_torsion_and_non_canonical() -> None:
    p = 2**255 - 19
    # Small-order points: the identity, (0, -1), and an order-8 point.
    order8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
    for bad in (ED25519.identity().to_bytes(), (p - 1).to_bytes(32, "little"), order8):
        with pytest.raises(EncodingError):
            ED25519.decode_point(bad)
    # A mixed-order point: G plus an order-8 torsion point.
    torsion = ED25519.identity().__class__(ED25519, order8, None)
    mixed = (ED25519.generator() + torsion).to_bytes()
    with pytest.raises(EncodingError):
        ED25519.decode_point(mixed)
    # Non-canonical y (y + p with y = 1 fits in 255 bits: y = p + 1).
    with pytest.raises(EncodingError):
        ED25519.decode_point((p + 1).to_bytes(32, "little"))
    # Off-curve: y = 2 has no x.
    with pytest.raises(EncodingError):
        ED25519.decode_point((2).to_bytes(32, "little"))


@SUITES
def test_secret_scalars_are_redacted_and_unhashable(group: Group) -> None:
    x = group.scalar(0xDEADBEEF)
    assert "redacted" in repr(x)
    assert "deadbeef" not in repr(x).lower()
    with pytest.raises(TypeError):
        hash(x)


def test_mixed_groups_refused() -> None:
    with pytest.raises(InvalidParameters):
        _ = SECP256K1.scalar(1) + ED25519.scalar(1)
    with pytest.raises(InvalidParameters):
        _ = SECP256K1.generator() + ED25519.generator()
    with pytest.raises(InvalidParameters):
        _ = SECP256K1.generator() * ED25519.scalar(2)


def test_group_registry() -> None:
    assert group_by_name("secp256k1") is SECP256K1
    assert GROUPS["ed25519"] is ED25519
    with pytest.raises(EncodingError):
        group_by_name("p256")


def test_generators_match_the_standards() -> None:
    assert SECP256K1.generator().to_bytes().hex() == (
        "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    )
    assert ED25519.generator().to_bytes().hex() == "58" + "66" * 31


def test_ed25519_generator_products_use_the_fixed_base_routine_with_the_same_result() -> None:
    """``G * k`` takes libsodium's fixed-base path (faster); it must equal the variable-base
    product of the same point and ``G * k`` computed as ``(G * 2) * (k / 2)``."""
    g = ED25519.generator()
    two = ED25519.scalar(2)
    for value in (1, 2, 7, ED25519.order - 1, 2**200 + 12345):
        k = ED25519.scalar(value)
        product = g * k
        assert product == ED25519.base_mul(k)
        assert product == (g * two) * (k * two.invert())
    assert (g * ED25519.scalar(0)).is_identity()
