"""Review finding: single use of a FROST / BIP-445 nonce holds across threads.

``SigningNonces.consume`` and ``SecNonce.consume`` tested ``_used`` and set it in two separate
steps, so two threads could both pass the test and both receive the nonce — two signature shares
over one nonce reveal the share. (``Presignature.consume`` already takes a lock for exactly this.)
The test makes the interleaving deterministic: a trace hook parks the first thread on the line
``self._used = True`` until the second thread has finished (or is seen blocked), then lets it go.
Exactly one of the two calls may succeed.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from enclave.mpc.errors import NonceReuse
from enclave.mpc.frost.bip340 import SecNonce
from enclave.mpc.frost.ciphersuite import FROST_SECP256K1_SHA256
from enclave.mpc.frost.round1 import SigningNonces, commit
from enclave.mpc.groups import SECP256K1

from .ecdsa_harness import deal_key, ids
from .rng import SeededRandom

PATIENCE = 10.0  # upper bound on every wait; the test never sleeps


def _marked_line(function: Callable[..., Any]) -> int:
    lines, first = inspect.getsourcelines(function)
    for offset, line in enumerate(lines):
        if "self._used = True" in line:
            return first + offset
    raise AssertionError("consume() no longer marks the nonce used in one place")


def _race(consume: Callable[[], object], code_function: Callable[..., Any]) -> list[object]:
    target_line = _marked_line(code_function)
    code = code_function.__code__
    parked = threading.Event()
    release = threading.Event()
    results: list[object] = []

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code is not code:
            return tracer if event == "call" else None
        if event == "line" and frame.f_lineno == target_line and not parked.is_set():
            parked.set()
            release.wait(PATIENCE)
        return tracer

    def first() -> None:
        sys.settrace(tracer)
        try:
            results.append(consume())
        except NonceReuse as exc:
            results.append(exc)
        finally:
            sys.settrace(None)

    def second() -> None:
        try:
            results.append(consume())
        except NonceReuse as exc:
            results.append(exc)

    a = threading.Thread(target=first)
    a.start()
    assert parked.wait(PATIENCE), "the first consume() never reached the marked line"
    b = threading.Thread(target=second)
    b.start()
    b.join(0.5)  # a bound, not a sync: unlocked, b finishes at once; locked, it stays blocked
    release.set()
    a.join(PATIENCE)
    b.join(PATIENCE)
    assert not a.is_alive()
    assert not b.is_alive()
    return results


def _frost_nonces() -> SigningNonces:
    rng = SeededRandom("review-nonce-race")
    _, shares = deal_key(1, 3, rng)
    nonces, _ = commit(FROST_SECP256K1_SHA256, shares[ids(1)[0]], b"race", rng)
    return nonces


def _bip445_nonce() -> SecNonce:
    rng = SeededRandom("review-secnonce-race")
    return SecNonce(SECP256K1.random_scalar(rng), SECP256K1.random_scalar(rng))


@pytest.mark.parametrize(
    ("make", "function"),
    [(_frost_nonces, SigningNonces.consume), (_bip445_nonce, SecNonce.consume)],
    ids=["frost", "bip445"],
)
def test_two_threads_cannot_both_consume_one_nonce(
    make: Callable[[], Any], function: Callable[..., Any]
) -> None:
    nonce = make()
    results = _race(nonce.consume, function)
    successes = [r for r in results if not isinstance(r, NonceReuse)]
    assert len(results) == 2
    assert len(successes) == 1, "both threads received the same nonce"
