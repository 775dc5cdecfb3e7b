"""Review finding: an allowed PCR value must be given as bytes, never coerced from a number.

``AttestationPolicy`` built each allowed value with ``bytes(value)``. For an integer that is not a
conversion but an allocation: ``bytes(48)`` is 48 zero bytes, so ``pcrs={0: [48]}`` (a length, or
a value mis-parsed from a manifest) pinned PCR0 to all zeros — the measurement of a debug-mode
enclave — instead of being refused. Values must now be bytes-like; anything else is a
``ValueError`` naming the PCR, like every other malformed policy.
"""

from __future__ import annotations

import pytest

from attestation.policy import AttestationPolicy


@pytest.mark.parametrize("value", [48, True, 3.0, "00" * 48, None])
def test_non_bytes_pcr_values_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="PCR0"):
        AttestationPolicy(pcrs={0: [value]})  # type: ignore[list-item]


@pytest.mark.parametrize("value", [b"\x11" * 48, bytearray(b"\x11" * 48), memoryview(b"\x11" * 48)])
def test_bytes_like_pcr_values_are_kept_as_bytes(value: bytes) -> None:
    policy = AttestationPolicy(pcrs={0: [value]})
    assert policy.pcrs[0] == (b"\x11" * 48,)
    assert type(policy.pcrs[0][0]) is bytes
