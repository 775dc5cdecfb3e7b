"""The one canonical CBOR codec: exactly one encoding per value, everything else refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import cbor
from wire.errors import ErrorCode, MalformedMessageError

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(values)
def test_round_trip_is_byte_exact(value: object) -> None:
    encoded = cbor.dumps(value)
    assert cbor.loads(encoded) == value
    assert cbor.dumps(cbor.loads(encoded)) == encoded


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_the_typed_error(data: bytes) -> None:
    try:
        value = cbor.loads(data)
    except MalformedMessageError as error:
        assert error.code is ErrorCode.MALFORMED  # noqa: PT017
    else:
        assert cbor.dumps(value) == data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xa1\x61a\x18\x01", "not canonical"),  # non-shortest integer
        (cbor.dumps({"a": 1}) + b"\x00", "1 trailing bytes"),
        (b"\xbf\x61a\x01\xff", "not canonical"),  # indefinite-length map
        (b"\xa2\x61b\x01\x61a\x02", "not canonical"),  # keys out of order
        (b"\xa2\x61a\x01\x61a\x02", "not canonical"),  # duplicate key
        (b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00", "float"),
        (b"\xc1\x01", "outside the data model"),  # tag 1 (epoch time)
        (b"\xa1\xf6\x01", "map keys"),  # null as a map key
        (b"", "empty"),
        (b"\x5a\xff\xff\xff\xff", "not well-formed"),  # a byte string longer than the input
    ],
)
def test_refusals_name_the_defect(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessageError, match=reason):
        cbor.loads(data, what="frame")


def test_nesting_is_bounded() -> None:
    deep: object = []
    for _ in range(cbor.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(MalformedMessageError, match="nested deeper"):
        cbor.loads(cbor.dumps(deep))


def test_loads_map_checks_fields_and_version() -> None:
    data = cbor.dumps({"v": 1, "x": b""})
    assert cbor.loads_map(data, what="m", fields={"v", "x"}, version=1) == {"v": 1, "x": b""}
    with pytest.raises(MalformedMessageError, match="missing or unknown fields"):
        cbor.loads_map(data, what="m", fields={"v"})
    with pytest.raises(MalformedMessageError, match="unknown version"):
        cbor.loads_map(data, what="m", version=2)
    with pytest.raises(MalformedMessageError, match="text keys"):
        cbor.loads_map(cbor.dumps([1]), what="m")
