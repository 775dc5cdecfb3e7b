"""``EcdsaSign.prehashed`` (AWS KMS's MessageType DIGEST): digests are exactly 32 bytes."""

from __future__ import annotations

import pytest

from wire.errors import MalformedMessageError
from wire.messages import EcdsaSign, decode_request, encode


def _sign(message: bytes, prehashed: object) -> EcdsaSign:
    return EcdsaSign("wallet", (b"p" * 32,), (message,), (b"e" * 32,), ((),), "", prehashed)  # type: ignore[arg-type]


def test_prehashed_round_trips() -> None:
    request = _sign(bytes(32), True)
    assert decode_request(encode(request, 3)) == (3, request)


@pytest.mark.parametrize(
    ("message", "flag", "field"), [(bytes(31), True, "messages"), (bytes(32), 1, "prehashed")]
)
def test_prehashed_refusals(message: bytes, flag: object, field: str) -> None:
    with pytest.raises(MalformedMessageError, match=field):
        _sign(message, flag)


def test_a_raw_message_may_be_any_length() -> None:
    assert _sign(b"not a digest", False).messages == (b"not a digest",)
