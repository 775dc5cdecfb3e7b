"""The gateway's ciphertext blob and encryption-context encoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyshard.gateway.envelope import (
    Blob,
    BlobError,
    ContextError,
    associated_data,
    check_context,
)

KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"


def test_blob_round_trip_names_its_key() -> None:
    blob = Blob(KEY, b"threshold ciphertext")
    data = blob.to_bytes()
    assert data[:4] == b"KSG\x01"
    assert Blob.from_bytes(data) == blob


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not a Keyshard"),
        (b"XYZ\x01" + bytes(40), "not a Keyshard"),
        (b"KSG\x02" + bytes(40), "version 2"),
        (b"KSG\x01\x00\x00\x00\x24" + b"k" * 10, "truncated"),
        (b"KSG\x01\x00\x00\x00\x03abc", "names no key"),
    ],
)
def test_blob_refusals(data: bytes, reason: str) -> None:
    with pytest.raises(BlobError, match=reason):
        Blob.from_bytes(data)


contexts = st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=5)


@given(contexts, contexts)
def test_context_binding_is_order_free_and_injective(a: dict[str, str], b: dict[str, str]) -> None:
    blob = Blob(KEY, b"")
    reordered = dict(reversed(list(a.items())))
    assert associated_data(blob, a) == associated_data(blob, reordered)
    assert (associated_data(blob, a) == associated_data(blob, b)) == (a == b)


def test_context_binds_the_key_named_in_the_header() -> None:
    other = Blob("ffffffff-12ab-34cd-56ef-1234567890ab", b"")
    assert associated_data(Blob(KEY, b""), {"a": "b"}) != associated_data(other, {"a": "b"})


def test_context_checks() -> None:
    assert check_context(None) == {}
    assert check_context({"purpose": "backup"}) == {"purpose": "backup"}
    for bad in ([], {"": "x"}, {"a": 1}, {"a": "x" * 9000}):
        with pytest.raises(ContextError):
            check_context(bad)
