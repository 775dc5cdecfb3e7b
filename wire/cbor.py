"""The one strict canonical CBOR codec: every CBOR value Keyshard itself writes goes through here.

Canonical means RFC 8949 §4.2.1 core deterministic encoding as cbor2 writes it with
``canonical=True``: shortest integer and length forms, definite lengths, map keys sorted
bytewise. :func:`loads` accepts exactly the bytes :func:`dumps` would write for the value it
decodes — nothing else — so one value has one encoding and a signature, a MAC or a digest over an
encoding means one thing:

* the value must re-encode to the very same bytes (refuses non-shortest forms, indefinite
  lengths, unsorted or duplicate map keys, trailing bytes);
* only the data model the protocols use is accepted: integers, byte strings, text strings,
  arrays, maps with text or integer keys, booleans and null — no floats, no tags, no undefined;
* nesting is bounded (:data:`MAX_DEPTH`).

Failures raise :class:`~wire.errors.MalformedMessageError` naming ``what`` was being decoded and
never echo the bytes. Attestation documents are the one CBOR Keyshard reads but does not write:
AWS encodes them (indefinite-length maps included), so :mod:`attestation.codec` keeps a decoder
of its own for that foreign format.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

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


def dumps(value: object) -> bytes:
    """The canonical encoding of ``value`` (a programming error raises ``TypeError``)."""
    return bytes(cbor2.dumps(value, canonical=True))


def _check_model(value: object, what: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise MalformedMessageError(what, f"nested deeper than {MAX_DEPTH}")
    kind = type(value)
    if kind in (int, bytes, str, bool) or value is None:
        return
    if kind is list:
        for item in value:  # type: ignore[attr-defined]
            _check_model(item, what, depth + 1)
        return
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) not in (str, int):
                raise MalformedMessageError(what, "map keys must be text or integers")
            _check_model(item, what, depth + 1)
        return
    raise MalformedMessageError(what, f"holds a value outside the data model ({kind.__name__})")


def loads(data: bytes, *, what: str = "cbor") -> Any:
    """Decode exactly one canonically encoded value (see the module docstring)."""
    if type(data) is not bytes:
        raise MalformedMessageError(what, "must be bytes")
    if not data:
        raise MalformedMessageError(what, "empty")
    try:
        value = cbor2.loads(data)
    except _DECODE_FAILURES:
        raise MalformedMessageError(what, "not well-formed CBOR") from None
    _check_model(value, what, 0)
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
