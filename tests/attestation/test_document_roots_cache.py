"""Pinned roots and the validity-aware chain cache, on their own."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from attestation_test_ca import make_chain
from attestation_vectors import AWS_ROOT_PEM, AWS_ROOT_SHA256
from cryptography.hazmat.primitives.serialization import Encoding

import attestation.roots as roots_module
from attestation.chain_cache import ChainCache, ValidityWindow, chain_key
from attestation.roots import (
    AWS_NITRO_ROOT_G1_SHA256,
    TrustedRoots,
    aws_nitro_root,
    certificate_fingerprint,
    load_pem_root,
)

T = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def test_pinned_constant_matches_the_test_copy_of_the_root() -> None:
    assert AWS_NITRO_ROOT_G1_SHA256 == AWS_ROOT_SHA256
    root = load_pem_root(AWS_ROOT_PEM)
    assert certificate_fingerprint(root.public_bytes(Encoding.DER)) == AWS_ROOT_SHA256
    assert root == aws_nitro_root()


def test_a_swapped_bundled_root_fails_closed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    impostor = make_chain().root.public_bytes(Encoding.PEM)
    (tmp_path / "aws_nitro_root_g1.pem").write_bytes(impostor)
    monkeypatch.setattr(roots_module, "__file__", str(tmp_path / "roots.py"))
    aws_nitro_root.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="corrupted"):
            aws_nitro_root()
    finally:
        aws_nitro_root.cache_clear()


def test_trusted_roots_pin_exactly_what_is_given() -> None:
    a, b = make_chain().root, make_chain().root
    pinned = TrustedRoots.of([a, b, a])
    assert len(pinned) == 2
    fingerprint = certificate_fingerprint(a.public_bytes(Encoding.DER))
    assert pinned.get(fingerprint) == a
    assert pinned.get(AWS_ROOT_SHA256) is None
    with pytest.raises(ValueError, match="at least one"):
        TrustedRoots.of([])
    with pytest.raises(TypeError):
        pinned.by_fingerprint["x"] = a  # type: ignore[index]


def test_load_pem_root_refuses_non_pem(tmp_path: Path) -> None:
    path = tmp_path / "x.pem"
    path.write_bytes(b"not pem")
    with pytest.raises(ValueError):
        load_pem_root(path)


def test_window_is_closed_at_both_ends() -> None:
    window = ValidityWindow(T, T + HOUR)
    assert window.contains(T)
    assert window.contains(T + HOUR)
    assert not window.contains(T - dt.timedelta(microseconds=1))
    assert not window.contains(T + HOUR + dt.timedelta(microseconds=1))
    narrowed = window.intersect(ValidityWindow(T + HOUR / 2, T + 2 * HOUR))
    assert narrowed == ValidityWindow(T + HOUR / 2, T + HOUR)


def test_cache_serves_only_inside_the_window() -> None:
    cache: ChainCache[str] = ChainCache(4)
    cache.put(b"k", ValidityWindow(T, T + HOUR), "chain")
    assert cache.get(b"k", T + HOUR / 2) == "chain"
    assert cache.get(b"k", T + 2 * HOUR) is None
    assert cache.get(b"k", T - HOUR) is None
    assert cache.get(b"other", T) is None


def test_cache_evicts_least_recently_used() -> None:
    cache: ChainCache[int] = ChainCache(2)
    window = ValidityWindow(T, T + HOUR)
    cache.put(b"a", window, 1)
    cache.put(b"b", window, 2)
    assert cache.get(b"a", T) == 1  # "a" is now the most recent
    cache.put(b"c", window, 3)
    assert (cache.get(b"a", T), cache.get(b"b", T), cache.get(b"c", T)) == (1, None, 3)
    assert len(cache) == 2
    with pytest.raises(ValueError):
        ChainCache(0)


def test_chain_key_is_unambiguous() -> None:
    assert chain_key(b"x", [b"ab", b"c"]) != chain_key(b"x", [b"a", b"bc"])
    assert chain_key(b"x", [b"ab"]) != chain_key(b"y", [b"ab"])
    assert chain_key(b"x", [b"ab"]) == chain_key(b"x", [b"ab"])
