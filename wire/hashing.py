"""Length-prefixed framing of hash and signature inputs (``lp(x) = len(x) as 4-byte BE || x``).

Length prefixes make the concatenation injective: two different field lists never hash alike.
The MPC core and every wire statement (approvals, decryption digests) frame their inputs this way.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

__all__ = ["lp", "lp_join"]


def lp(data: bytes) -> bytes:
    """Length-prefix ``data`` (4-byte big-endian length)."""
    return struct.pack(">I", len(data)) + data


def lp_join(fields: Iterable[bytes]) -> bytes:
    """The injective concatenation of length-prefixed fields."""
    return b"".join(lp(f) for f in fields)
