"""What a *verified* document must say for us to trust the enclave behind it.

Verification (:mod:`attestation.verifier`) proves that AWS's NSM (or the pinned emulated CA) signed
the document; the policy decides whether that enclave is one we want to talk to:

* ``pcr``: each pinned PCR holds one of its allowed values. Several values per index let a fleet
  roll from release N to N+1 without a window where either is refused;
* ``pcr_sets``: the pinned PCRs match ALL of ONE accepted set (a whole release's measurements).
  Per-index alternatives (``pcrs``) would admit PCR0 of release N with PCR1 of release N+1, a
  combination no release produced; use ``pcr_sets`` when several releases are accepted;
* ``debug``: debug-mode enclaves (PCR0, 1, 2 and 8 all zero) are refused unless ``allow_debug``,
  because their memory can be read by the parent — a real NSM signs them all the same;
* ``max_age`` / ``future``: the document was created at most ``max_age`` before ``now`` (when
  set) and never more than ``max_clock_skew`` after it (replay bound; time is a parameter);
* ``nonce``: the document echoes the challenge we sent (compared in constant time);
* ``public_key`` / ``user_data``: the document binds the key of the channel we are about to use,
  as ``public_key`` or in ``user_data`` (equal to, or containing, a given hash).

:meth:`AttestationPolicy.check` takes only a :class:`~attestation.verifier.VerifiedDocument`, so an
unverified document cannot be "accepted by policy". Rules run in the order above and the first
failure raises :class:`~attestation.errors.PolicyViolation` naming it.
"""

from __future__ import annotations

import datetime as _dt
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from attestation.document import MAX_PCR_INDEX, PCR_LENGTHS
from attestation.errors import PcrMismatch, PolicyViolation
from attestation.verifier import VerifiedDocument

__all__ = ["AttestationPolicy"]


def _pcr_value(index: int, value: object) -> bytes:
    # bytes(48) would be 48 zero bytes (a debug-mode measurement), not a refusal: accept only
    # bytes-like values, never something bytes() could allocate from.
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ValueError(f"PCR{index}: allowed values must be bytes, not {type(value).__name__}")
    return bytes(value)


def _frozen_pcrs(pcrs: Mapping[int, object]) -> Mapping[int, tuple[bytes, ...]]:
    frozen: dict[int, tuple[bytes, ...]] = {}
    for index, values in pcrs.items():
        if type(index) is not int or not 0 <= index <= MAX_PCR_INDEX:
            raise ValueError(f"PCR index {index!r} is not in 0..{MAX_PCR_INDEX}")
        if isinstance(values, bytes | bytearray | str) or not isinstance(values, Iterable):
            raise ValueError(f"PCR{index}: give a collection of allowed byte values")
        allowed = tuple(_pcr_value(index, value) for value in values)
        if not allowed:
            raise ValueError(f"PCR{index}: at least one allowed value is needed")
        for value in allowed:
            if len(value) not in PCR_LENGTHS:
                raise ValueError(f"PCR{index}: length {len(value)} is not one of 32, 48, 64")
        frozen[index] = allowed
    return MappingProxyType(frozen)


def _frozen_sets(sets: Sequence[Mapping[int, object]]) -> tuple[Mapping[int, bytes], ...]:
    if isinstance(sets, Mapping) or not isinstance(sets, Sequence):
        raise ValueError("pcr_sets: give a sequence of {index: value} sets")
    frozen: list[Mapping[int, bytes]] = []
    for pcr_set in sets:
        if not isinstance(pcr_set, Mapping) or not pcr_set:
            raise ValueError("pcr_sets: every set must be a non-empty {index: value} map")
        one = _frozen_pcrs({index: [value] for index, value in pcr_set.items()})
        frozen.append(MappingProxyType({index: values[0] for index, values in one.items()}))
    return tuple(frozen)


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _matches_set(actual: Mapping[int, bytes], pcr_set: Mapping[int, bytes]) -> bool:
    # Every index of the set, not the first mismatch: each comparison stays constant-time.
    results = [
        actual.get(index) is not None and _equal(actual[index], value)
        for index, value in pcr_set.items()
    ]
    return all(results)


@dataclass(frozen=True, slots=True)
class AttestationPolicy:
    """An immutable policy; an empty one accepts any verified non-debug document.

    ``pcrs`` maps a PCR index to its allowed values; ``pcr_sets`` (when not empty) lists whole
    accepted sets, one of which must match on every index it names. ``user_data`` requires equality,
    ``user_data_contains`` that the given bytes (typically a hash) occur in ``user_data``.
    """

    pcrs: Mapping[int, Sequence[bytes]] = field(default_factory=dict)
    pcr_sets: Sequence[Mapping[int, bytes]] = ()
    allow_debug: bool = False
    max_age: _dt.timedelta | None = None
    max_clock_skew: _dt.timedelta = _dt.timedelta(seconds=60)
    nonce: bytes | None = None
    public_key: bytes | None = None
    user_data: bytes | None = None
    user_data_contains: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pcrs", _frozen_pcrs(self.pcrs))
        object.__setattr__(self, "pcr_sets", _frozen_sets(self.pcr_sets))
        if self.max_age is not None and self.max_age < _dt.timedelta(0):
            raise ValueError("max_age must not be negative")
        if self.max_clock_skew < _dt.timedelta(0):
            raise ValueError("max_clock_skew must not be negative")
        if self.user_data_contains is not None and not self.user_data_contains:
            raise ValueError("user_data_contains must not be empty")

    def check(self, document: VerifiedDocument, *, now: _dt.datetime | None = None) -> None:
        """Raise :class:`PolicyViolation` for the first rule ``document`` breaks.

        ``now`` (aware) is the instant ``max_age`` and the clock skew are measured from; default:
        the system clock.
        """
        if not isinstance(document, VerifiedDocument):
            raise TypeError("a policy only judges documents returned by AttestationVerifier")
        payload = document.payload
        if payload.is_debug_mode and not self.allow_debug:
            raise PolicyViolation("debug", "enclave runs in debug mode (PCR0/1/2/8 are zero)")
        for index, allowed in self.pcrs.items():
            actual = payload.pcrs.get(index)
            if actual is None or not any(_equal(actual, value) for value in allowed):
                raise PcrMismatch(index, allowed, actual)
        if self.pcr_sets and not any(
            _matches_set(payload.pcrs, pcr_set) for pcr_set in self.pcr_sets
        ):
            raise PolicyViolation("pcr_sets", "the PCRs match no accepted release's set as a whole")
        # The "future" rule stands on its own (max_clock_skew has a default); only the age bound
        # is optional.
        self._check_age(document, now if now is not None else _dt.datetime.now(_dt.UTC))
        if self.nonce is not None and (
            payload.nonce is None or not _equal(payload.nonce, self.nonce)
        ):
            raise PolicyViolation("nonce", "document nonce does not match the expected challenge")
        if self.public_key is not None and (
            payload.public_key is None or not _equal(payload.public_key, self.public_key)
        ):
            raise PolicyViolation("public_key", "document public_key does not bind the given key")
        if self.user_data is not None and (
            payload.user_data is None or not _equal(payload.user_data, self.user_data)
        ):
            raise PolicyViolation("user_data", "document user_data differs from the given bytes")
        if self.user_data_contains is not None and (
            payload.user_data is None or self.user_data_contains not in payload.user_data
        ):
            raise PolicyViolation("user_data", "document user_data does not contain the given hash")

    def _check_age(self, document: VerifiedDocument, now: _dt.datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        age = now - document.timestamp
        if self.max_age is not None and age > self.max_age:
            raise PolicyViolation("max_age", f"document is {age} old, more than {self.max_age}")
        if -age > self.max_clock_skew:
            raise PolicyViolation(
                "future", f"document is dated {-age} after now (allowed skew {self.max_clock_skew})"
            )
