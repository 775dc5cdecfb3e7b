"""Review finding: a derivation path is parsed with bounded work and typed errors only.

``parse_path`` takes a path from a client request. It called ``int()`` on each component before
any length check, so a component of more than 4300 digits escaped as a bare ``ValueError``
(CPython's integer-string limit) instead of :class:`InvalidParameters`, and every component of
an arbitrarily long path was converted before the depth limit was applied.
"""

from __future__ import annotations

import pytest

from enclave.mpc.bip32 import HARDENED, parse_path
from enclave.mpc.errors import InvalidParameters


@pytest.mark.parametrize("digits", [11, 4301, 100_000])
def test_an_overlong_index_is_invalid_parameters(digits: int) -> None:
    with pytest.raises(InvalidParameters, match="canonical decimal index"):
        parse_path("m/" + "9" * digits)


def test_too_many_components_are_refused_before_parsing_them() -> None:
    with pytest.raises(InvalidParameters, match="too deep"):
        parse_path("m" + "/x" * 100_000)


def test_the_largest_non_hardened_index_still_parses() -> None:
    assert parse_path(f"m/0/{HARDENED - 1}") == (0, HARDENED - 1)
    with pytest.raises(InvalidParameters, match="hardened"):
        parse_path(f"m/{HARDENED}")
