"""A wrapper for secret bytes held by the enclave runtime (data keys, node secrets).

It prints as ``<redacted>``, compares in constant time, exposes its value through one accessor, and
keeps the value in a ``bytearray`` so that :meth:`wipe` can overwrite it. Python cannot promise more:
libraries that receive the value (``AESGCM``) keep their own copies and the interpreter may have made
temporaries. Wiping is best effort, done where it is cheap, and documented as such.
"""

from __future__ import annotations

import hmac

__all__ = ["SecretBytes"]


class SecretBytes:
    """Secret bytes with a redacted repr, constant-time equality and best-effort wiping."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes | bytearray) -> None:
        self._value = bytearray(value)

    def expose(self) -> bytes:
        """The secret value. The single accessor, so every use of the secret is greppable."""
        return bytes(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def wipe(self) -> None:
        """Overwrite the value with zeros in place (best effort; see the module docstring)."""
        for index in range(len(self._value)):
            self._value[index] = 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretBytes):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        raise TypeError("SecretBytes is not hashable")

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__

    def __reduce__(self) -> str:
        raise TypeError("SecretBytes cannot be pickled")
