"""FROST signing sessions on one node: nonces live in memory only and are used at most once.

``SignCommit`` creates a :class:`SigningSession` (fresh nonces, RFC 9591 §5.1) under a client-chosen
session id; ``SignShare`` takes it out of the table BEFORE signing, so whatever happens — success,
a malformed package, a package for another key — the nonces are gone and can never sign twice
(§5.2's single-use rule; the MPC core's ``SigningNonces`` also refuses a second use). A restart
forgets every pending session, which is safe: commitments without nonces can only fail.

The commit also fixes the SHA-256 digest of the message to be signed (the one approvals were
checked for): ``SignShare``'s package must sign exactly that message, or the node refuses — so a
client cannot get approvals for one message and a signature share for another.

Phases: ``COMMITTED --sign--> DONE`` (error: ``FAILED``); the table holds at most
:data:`MAX_PENDING` sessions (oldest dropped first) so a client cannot exhaust memory.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections import OrderedDict

from enclave.mpc.frost.ciphersuite import Ciphersuite
from enclave.mpc.frost.round1 import SigningNonces, commit
from enclave.mpc.frost.round2 import SigningPackage, sign
from enclave.mpc.keys import KeyShare
from enclave.mpc.randomness import RandomSource
from enclave.service.errors import ApprovalMismatchError, SessionError

__all__ = ["MAX_PENDING", "SigningPhase", "SigningSession", "SigningSessions"]

MAX_PENDING = 256


class SigningPhase(enum.Enum):
    COMMITTED = "committed"
    DONE = "done"
    FAILED = "failed"


class SigningSession:
    def __init__(
        self,
        key_name: str,
        suite: Ciphersuite,
        share: KeyShare,
        nonces: SigningNonces,
        message_digest: bytes,
    ) -> None:
        self.key_name, self._suite, self._share, self._nonces = key_name, suite, share, nonces
        self.message_digest = message_digest
        self.phase = SigningPhase.COMMITTED

    def sign(self, package_bytes: bytes) -> bytes:
        if self.phase is not SigningPhase.COMMITTED:
            raise SessionError(f"signing session is {self.phase.value}")
        self.phase = SigningPhase.FAILED
        package = SigningPackage.from_bytes(package_bytes)
        if package.suite is not self._suite:
            raise SessionError("the signing package is for another ciphersuite")
        digest = hashlib.sha256(package.message).digest()
        if not hmac.compare_digest(digest, self.message_digest):
            raise ApprovalMismatchError(None, "message")
        share = sign(package, self._nonces, self._share).to_bytes()
        self.phase = SigningPhase.DONE
        return share

    def __repr__(self) -> str:
        return f"SigningSession({self.key_name}, {self.phase.value})"


class SigningSessions:
    def __init__(self) -> None:
        self._pending: OrderedDict[bytes, SigningSession] = OrderedDict()

    def commit(
        self,
        key_name: str,
        suite: Ciphersuite,
        share: KeyShare,
        session_id: bytes,
        rng: RandomSource,
        *,
        message_digest: bytes,
    ) -> bytes:
        if session_id in self._pending:
            raise SessionError("a signing session with this id is pending")
        nonces, commitments = commit(suite, share, session_id, rng)
        self._pending[session_id] = SigningSession(key_name, suite, share, nonces, message_digest)
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        return commitments.to_bytes()

    def take(self, session_id: bytes) -> SigningSession:
        """Remove and return the pending session: single use, whatever happens next."""
        session = self._pending.pop(session_id, None)
        if session is None:
            raise SessionError("no pending signing session with this id")
        return session

    def sign(self, session_id: bytes, package_bytes: bytes) -> bytes:
        return self.take(session_id).sign(package_bytes)
