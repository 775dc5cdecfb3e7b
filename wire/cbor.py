"""The one strict canonical CBOR codec: every CBOR value Keyshard itself writes goes through here.

Canonical means RFC 8949 §4.2.1 core deterministic encoding as cbor2 writes it with
``canonical=True``: shortest integer and length forms, definite lengths, map keys sorted
bytewise. :func:`loads` accepts exactly the bytes :func:`dumps` would write for the value it
decodes — nothing else — so one value has one encoding and a signature, a MAC or a digest over an
encoding means one thing:

* the value must re-encode to the very same bytes (refuses non-shortest forms, indefinite
  lengths, unsorted or duplicate map keys, trailing bytes);
* only the data model the protocols use is accepted: integers (-2**64 .. 2**64 - 1), byte
  strings, text strings, arrays, maps with text or integer keys, booleans and null — no floats,
  no tags (so no bignums, dates, sets or shared references), no undefined, no simple values;
* nesting is bounded (:data:`MAX_DEPTH`).

Types, tags and lengths are checked by a pre-scan of the items' heads (:func:`_prescan`) *before*
cbor2 decodes anything: cbor2 honours semantic tags, so a tag would otherwise run its decoder
first (tag 36 hands a whole frame to the ``email`` parser — seconds for one 1 MiB frame — and
tags 35, 4 and 5 compile regular expressions and build decimals). The pre-scan reads heads only,
skipping string contents, and stops at the first item it refuses, so refusing costs time in
proportion to where the refused item sits, never to what it would decode to.

Failures raise :class:`~wire.errors.MalformedMessageError` naming ``what`` was being decoded and
never echo the bytes. Attestation documents are the one CBOR Keyshard reads but does not write:
AWS encodes them (indefinite-length maps included), so :mod:`attestation.codec` keeps a decoder
of its own for that foreign format.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NoReturn

import cbor2

from wire.errors import MalformedMessageError

__all__ = ["MAX_DEPTH", "dumps", "loads", "loads_map"]

MAX_DEPTH = 16
_DECODE_FAILURES = (
    cbor2.CBORDecodeError,
    ValueError,
    TypeError,
    EOFError,
    OverflowError,
    RecursionError,
    IndexError,
    KeyError,
)


_OUTSIDE = "holds a value outside the data model"
_SCALAR, _STRING, _ARRAY, _MAP, _REFUSED = 0, 1, 2, 3, 4


def _head_table() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per initial byte: what the item is, and how many argument bytes follow the head."""
    kinds, follows = [], []
    for initial in range(256):
        major, info = initial >> 5, initial & 0x1F
        follows.append(0 if info < 24 else 1 << (info - 24) if info < 28 else 0)
        if info >= 28:  # reserved, indefinite length, or a break
            kinds.append(_REFUSED)
        elif major < 2 or initial in (0xF4, 0xF5, 0xF6):  # integers; false, true, null
            kinds.append(_SCALAR)
        else:
            kinds.append((_STRING, _STRING, _ARRAY, _MAP, _REFUSED, _REFUSED)[major - 2])
    return tuple(kinds), tuple(follows)


_KINDS, _FOLLOWS = _head_table()


def _prescan(data: bytes, what: str) -> None:  # noqa: PLR0912 - one flat loop, see below
    """Refuse anything outside the data model from the items' heads alone (RFC 8949 §3).

    Accepts major types 0-5 with definite lengths and the simple values false, true and null,
    map keys that are integers or text; refuses tags (6), floats, undefined and other simple
    values (7), indefinite lengths and reserved additional information, strings or containers
    longer than the bytes left, nesting deeper than :data:`MAX_DEPTH` and trailing bytes. A
    container's declared count must fit in the bytes left (every item takes at least one), so
    the loop runs at most ``len(data)`` times and a huge declared count is refused at its head.
    What cbor2 then decodes is therefore in the data model (no walk over the decoded value);
    canonical forms are checked by the re-encoding in :func:`loads`. One flat loop over a
    table of heads: this runs on every frame, and a call per item would double its cost.
    """
    end = len(data)
    position = 0
    left = 1  # items still expected in the innermost open container (the top level: one)
    in_map = False  # whether that container is a map (its keys: every other item)
    outer: list[tuple[int, bool]] = []  # the same for every enclosing container
    kinds, follows = _KINDS, _FOLLOWS
    try:
        while left or outer:
            if not left:
                left, in_map = outer.pop()
                continue
            left -= 1
            initial = data[position]
            position += 1
            if in_map and left & 1 and initial >> 5 not in (0, 1, 3):
                raise MalformedMessageError(what, "map keys must be text or integers")
            kind = kinds[initial]
            if kind == _SCALAR:
                position += follows[initial]
                continue
            if kind == _REFUSED:
                _refuse(data, position - 1, what)
            follow = follows[initial]
            if not follow:
                argument = initial & 0x1F
            elif follow == 1:  # the common case past 23: lengths up to 255
                argument = data[position]
            else:
                argument = int.from_bytes(data[position : position + follow], "big")
            position += follow
            if kind == _STRING:
                position += argument
                continue
            count = argument if kind == _ARRAY else 2 * argument
            if count > end - position:
                raise MalformedMessageError(what, "not well-formed CBOR (longer than the input)")
            if count:
                if len(outer) >= MAX_DEPTH:
                    raise MalformedMessageError(what, f"nested deeper than {MAX_DEPTH}")
                outer.append((left, in_map))
                left, in_map = count, kind == _MAP
    except IndexError:
        raise MalformedMessageError(what, "not well-formed CBOR (truncated)") from None
    if position > end:
        raise MalformedMessageError(what, "not well-formed CBOR (longer than the input)")
    if position < end:
        raise MalformedMessageError(what, f"{end - position} trailing bytes")


def _refuse(data: bytes, at: int, what: str) -> NoReturn:
    """Say why the item whose head is at ``at`` is outside the data model."""
    initial = data[at]
    major, info = initial >> 5, initial & 0x1F
    if info == 31 and 2 <= major <= 5:
        raise MalformedMessageError(what, "not canonical CBOR (indefinite length)")
    if info >= 28:
        raise MalformedMessageError(what, "not well-formed CBOR (a break or reserved head)")
    if major == 6:
        follow = _FOLLOWS[initial]
        tag = int.from_bytes(data[at + 1 : at + 1 + follow], "big") if follow else info
        raise MalformedMessageError(what, f"{_OUTSIDE} (tag {tag})")
    if info >= 25:
        raise MalformedMessageError(what, f"{_OUTSIDE} (float)")
    if info == 23:
        raise MalformedMessageError(what, f"{_OUTSIDE} (undefined)")
    raise MalformedMessageError(what, f"{_OUTSIDE} (simple value)")


def dumps(value: object) -> bytes:
    """The canonical encoding of ``value`` (a programming error raises ``TypeError``)."""
    return bytes(cbor2.dumps(value, canonical=True))


def loads(data: bytes, *, what: str = "cbor") -> Any:
    """Decode exactly one canonically encoded value (see the module docstring)."""
    if type(data) is not bytes:
        raise MalformedMessageError(what, "must be bytes")
    if not data:
        raise MalformedMessageError(what, "empty")
    _prescan(data, what)
    try:
        value = cbor2.loads(data)
    except _DECODE_FAILURES:
        raise MalformedMessageError(what, "not well-formed CBOR") from None
    try:
        canonical = dumps(value)
    except (cbor2.CBOREncodeError, ValueError, TypeError):  # pragma: no cover -- model checked
        raise MalformedMessageError(what, "unencodable value") from None
    if canonical != data:
        if data.startswith(canonical):
            raise MalformedMessageError(what, f"{len(data) - len(canonical)} trailing bytes")
        raise MalformedMessageError(what, "not canonical CBOR (or duplicate map keys)")
    return value


def loads_map(
    data: bytes,
    *,
    what: str,
    fields: Collection[str] | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """Decode a canonical map with text keys; optionally exactly ``fields`` and ``v == version``."""
    value = loads(data, what=what)
    if type(value) is not dict or not all(type(k) is str for k in value):
        raise MalformedMessageError(what, "must be a map with text keys")
    if fields is not None and set(value) != set(fields):
        raise MalformedMessageError(what, "missing or unknown fields")
    if version is not None and (type(value.get("v")) is not int or value["v"] != version):
        raise MalformedMessageError(what, f"unknown version (expected {version})")
    return value
