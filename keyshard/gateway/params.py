"""Reading a KMS JSON request's fields with KMS's own validation answers.

Every field a caller can get wrong is refused here with ``ValidationException`` naming it, before
the gateway does anything: a missing required field, the wrong JSON type, a blob that is not
base64, a value out of range or not one of the allowed names.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from keyshard.gateway.errors import ValidationError

__all__ = ["Params"]


class Params:
    """The decoded JSON body of one request."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self._body = body

    def raw(self, name: str) -> Any:
        return self._body.get(name)

    def string(
        self, name: str, *, required: bool = False, default: str | None = None
    ) -> str | None:
        value = self._body.get(name)
        if value is None:
            if required:
                raise ValidationError(f"1 validation error detected: {name} is required")
            return default
        if not isinstance(value, str):
            raise ValidationError(f"{name} must be a string")
        return value

    def required(self, name: str) -> str:
        value = self.string(name)
        if value is None:
            raise ValidationError(f"1 validation error detected: {name} is required")
        return value

    def choice(
        self, name: str, allowed: Iterable[str], *, default: str | None = None
    ) -> str | None:
        value = self.string(name, default=default)
        options = tuple(allowed)
        if value is not None and value not in options:
            raise ValidationError(
                f"1 validation error detected: Value '{value}' at '{name}' failed to satisfy "
                f"constraint: Member must satisfy enum value set: [{', '.join(options)}]"
            )
        return value

    def blob(self, name: str, *, required: bool = True, low: int = 1, high: int = 4096) -> bytes:
        value = self._body.get(name)
        if value is None:
            if required:
                raise ValidationError(f"1 validation error detected: {name} is required")
            return b""
        if not isinstance(value, str):
            raise ValidationError(f"{name} must be a base64 string")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(f"{name} is not base64") from None
        if not low <= len(data) <= high:
            raise ValidationError(
                f"1 validation error detected: Value at '{name}' failed to satisfy constraint: "
                f"Member must have length between {low} and {high}"
            )
        return data

    def integer(self, name: str, *, low: int, high: int) -> int | None:
        value = self._body.get(name)
        if value is None:
            return None
        if type(value) is not int or not low <= value <= high:
            raise ValidationError(f"{name} must be an integer between {low} and {high}")
        return value

    def boolean(self, name: str) -> bool | None:
        value = self._body.get(name)
        if value is not None and not isinstance(value, bool):
            raise ValidationError(f"{name} must be a boolean")
        return value

    def refuse(self, *names: str) -> None:
        """Refuse fields the gateway cannot honour (a policy it would not enforce, grants, a
        dry run): silently ignoring them would promise what it does not do."""
        for name in names:
            value = self._body.get(name)
            if value not in (None, False, [], ""):
                raise ValidationError(f"{name} is not supported by the Keyshard gateway")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
