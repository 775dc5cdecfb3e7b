"""The one canonical CBOR codec: exactly one encoding per value, everything else refused."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from unittest import mock

import cbor2
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
        (b"\xa1\xf5\x01", "map keys"),  # true as a map key
        (b"\xa1\x41a\x01", "map keys"),  # a byte string as a map key
        (b"\xa1\x81\x01\x01", "map keys"),  # an array as a map key (cbor2: a tuple)
        (b"\xa1\xa0\x01", "map keys"),  # a map as a map key (cbor2: a frozen dict)
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


# -- only the types the protocols use, refused before cbor2's semantic decoding (issue 9 item 9) --


def _head(major: int, argument: int) -> bytes:
    """The shortest head of a CBOR item (RFC 8949 §3)."""
    if argument < 24:
        return bytes([major << 5 | argument])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * size):
            return bytes([major << 5 | info]) + argument.to_bytes(size, "big")
    raise ValueError("argument too large")


def _mime_megabyte() -> bytes:
    """One 1 MiB frame holding a MIME message (tag 36): cbor2 parses it with the email package."""
    body = b"Content-Type: multipart/mixed; boundary=x\n\n" + b"--x\n\n" * ((1 << 20) // 5 - 16)
    return _head(6, 36) + _head(3, len(body)) + body


@contextlib.contextmanager
def _no_semantic_decoding() -> Iterator[list[bytes]]:
    """Fails the test if cbor2 is asked to decode anything: what is refused must be refused by the
    pre-scan, before cbor2 builds a value (a MIME message, a regex, a decimal...) from a tag."""
    seen: list[bytes] = []

    def refuse(data: bytes, **_: object) -> object:
        seen.append(bytes(data))
        raise AssertionError("cbor2.loads ran on bytes the pre-scan should have refused")

    with mock.patch.object(cbor2, "loads", refuse):
        yield seen
    assert seen == []


# Items outside the data model, each with the word its refusal names.
FOREIGN = [
    (_head(6, 36) + _head(3, 5) + b"x: y\n", "tag 36"),  # MIME
    (_head(6, 35) + _head(3, 5) + b"(a*)*", "tag 35"),  # regular expression
    (_head(6, 4) + b"\x82\x1a\x7f\xff\xff\xff\x01", "tag 4"),  # decimal fraction
    (_head(6, 2) + _head(2, 9) + b"\x01" * 9, "tag 2"),  # bignum: integers are 64-bit
    (_head(6, 1) + b"\x01", "tag 1"),  # epoch time
    (_head(6, 28) + b"\x01", "tag 28"),  # shareable
    (_head(6, 29) + b"\x00", "tag 29"),  # shared reference
    (_head(6, 258) + b"\x80", "tag 258"),  # set
    (_head(6, 55799) + b"\x01", "tag 55799"),  # self-described CBOR
    (b"\xf9\x3c\x00", "float"),
    (b"\xfa\x3f\x80\x00\x00", "float"),
    (b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00", "float"),
    (b"\xf7", "undefined"),
    (b"\xf0", "simple value"),
    (b"\xf8\x20", "simple value"),
    (b"\x5f\x41a\xff", "indefinite"),
    (b"\x7f\x61a\xff", "indefinite"),
    (b"\x9f\x01\xff", "indefinite"),
    (b"\xbf\x61a\x01\xff", "indefinite"),
    (b"\xff", "not well-formed"),  # a break outside an indefinite-length item
    (b"\x1c", "not well-formed"),  # reserved additional information
    (b"\x5e", "not well-formed"),
]


@pytest.mark.parametrize(("item", "names"), FOREIGN, ids=[f[0][:3].hex() for f in FOREIGN])
def test_items_outside_the_data_model_are_refused_before_decoding(item: bytes, names: str) -> None:
    """Issue 9 item 9: tags, floats, undefined and simple values and indefinite lengths are
    refused by the pre-scan, alone and inside a map, naming what they are."""
    inside = b"\xa2\x61a\x01\x61b" + item  # {"a": 1, "b": <item>}
    with _no_semantic_decoding():
        for data in (item, inside, b"\x81" * 8 + item):
            with pytest.raises(MalformedMessageError, match=names) as caught:
                cbor.loads(data, what="frame")
            assert caught.value.field == "frame"


def test_a_megabyte_of_mime_is_refused_in_milliseconds() -> None:
    """Issue 9 item 9: one 1 MiB frame using the MIME tag stalled the enclave for 1.3-2.8 s
    while cbor2 parsed it; the pre-scan refuses it at its first byte."""
    data = _mime_megabyte()
    assert len(data) <= 1 << 20
    with _no_semantic_decoding():
        start = time.perf_counter()
        with pytest.raises(MalformedMessageError, match="tag 36"):
            cbor.loads(data, what="frame")
        assert time.perf_counter() - start < 0.05


@pytest.mark.parametrize(
    "data",
    [
        b"\xc6" * (1 << 20) + b"\x01",  # a megabyte of nested tags
        b"\x81" * (1 << 20) + b"\x01",  # a megabyte of nested arrays
        b"\x9a\x00\x10\x00\x00" + b"\xf7" * (1 << 20),  # a million undefined values
        b"\x9b" + b"\xff" * 8,  # an array declaring 2**64 - 1 items
        b"\x5a\xff\xff\xff\xff",  # a byte string longer than the input
    ],
    ids=["tags", "nesting", "undefined", "huge-count", "huge-string"],
)
def test_hostile_megabytes_are_refused_in_milliseconds(data: bytes) -> None:
    """Issue 9 item 9: the pre-scan stops at the first item it refuses, so its time does not
    grow with the frame."""
    with _no_semantic_decoding():
        start = time.perf_counter()
        with pytest.raises(MalformedMessageError):
            cbor.loads(data)
        assert time.perf_counter() - start < 0.05


Encoded = tuple[bytes, bool]
"""Raw CBOR bytes, and whether an item outside the data model sits somewhere in them."""


def _array(items: list[Encoded]) -> Encoded:
    return _head(4, len(items)) + b"".join(i for i, _ in items), any(f for _, f in items)


def _map(entries: dict[str, Encoded]) -> Encoded:
    keys = sorted(entries, key=cbor.dumps)  # canonical order: bytewise on the encoded keys
    body = b"".join(cbor.dumps(k) + entries[k][0] for k in keys)
    return _head(5, len(keys)) + body, any(f for _, f in entries.values())


def _encoded(foreign: bool) -> st.SearchStrategy[Encoded]:
    """Raw CBOR items built head by head: canonical data-model leaves, and (if ``foreign``)
    items outside the model; arrays and text-keyed maps of them."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**64), 2**64 - 1)
        | st.binary(max_size=9)
        | st.text(max_size=4)
    )
    leaves = scalars.map(lambda v: (cbor.dumps(v), False))
    if foreign:
        leaves = leaves | st.sampled_from([(item, True) for item, _ in FOREIGN])

    def containers(inner: st.SearchStrategy[Encoded]) -> st.SearchStrategy[Encoded]:
        arrays = st.lists(inner, max_size=4).map(_array)
        maps = st.dictionaries(st.text(max_size=4), inner, max_size=3).map(_map)
        return arrays | maps

    return st.recursive(leaves, containers, max_leaves=12)


@given(_encoded(foreign=True))
def test_any_item_holding_a_foreign_one_is_refused_before_decoding(encoded: Encoded) -> None:
    """Issue 9 item 9, as a property: wherever an item outside the data model sits (at most
    :data:`~wire.cbor.MAX_DEPTH` deep), the codec refuses the whole with its typed error and
    cbor2 never runs; everything else decodes and re-encodes to the same bytes."""
    data, foreign = encoded
    with mock.patch.object(cbor2, "loads", wraps=cbor2.loads) as decoder:
        if foreign:
            with pytest.raises(MalformedMessageError):
                cbor.loads(data)
            assert decoder.call_count == 0
        else:
            assert cbor.dumps(cbor.loads(data)) == data


@given(_encoded(foreign=False))
def test_the_pre_scan_passes_every_item_of_the_data_model(encoded: Encoded) -> None:
    data, _ = encoded
    assert cbor.dumps(cbor.loads(data)) == data
