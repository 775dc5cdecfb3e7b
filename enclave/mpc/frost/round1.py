"""FROST round one (RFC 9591 §5.1): hedged nonces and their public commitments.

``commit`` draws a hiding and a binding nonce with ``nonce_generate`` (§4.1): 32 fresh random
bytes hashed together with the signer's secret share, ``H3(random || SerializeScalar(sk_i))``,
so a weak or repeated random source alone does not repeat nonces.

:class:`SigningNonces` is single-use secret state: :meth:`SigningNonces.consume` hands the
scalars out once and raises :class:`~enclave.mpc.errors.NonceReuse` on every later call — two
signatures with one nonce pair would reveal the share. It prints ``<redacted>`` and cannot be
pickled or encoded. :class:`SigningCommitments` is the public round-one message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from enclave.mpc.errors import InvalidParameters, NonceReuse
from enclave.mpc.frost.ciphersuite import Ciphersuite, suite_decoder, suite_encoder
from enclave.mpc.groups import Point, Scalar
from enclave.mpc.keys import KeyShare
from enclave.mpc.randomness import RandomSource, draw

__all__ = [
    "PREPROCESSED_SESSION_ID",
    "SigningCommitments",
    "SigningNonces",
    "commit",
    "nonce_generate",
]

_KIND = "frost/round1/commitments"
MAX_SESSION_ID = 64
#: The session id of nonce pairs committed ahead of any message (RFC 9591 §5.1 may run in
#: advance: a signer publishes commitments, the coordinator later picks one per signer). Such a
#: commitment is identified by its own points; a signing package over preprocessed commitments
#: carries this constant as its session id.
PREPROCESSED_SESSION_ID = b"keyshard/frost/preprocessed/v1"


def check_session_id(session_id: bytes) -> None:
    if not 0 < len(session_id) <= MAX_SESSION_ID:
        raise InvalidParameters(f"session id must be 1..{MAX_SESSION_ID} bytes")


def nonce_generate(suite: Ciphersuite, secret: Scalar, rng: RandomSource) -> Scalar:
    """RFC 9591 §4.1: ``H3(random_bytes(32) || SerializeScalar(secret))``."""
    return suite.h3(draw(rng, 32) + secret.to_bytes())


@dataclass(frozen=True, slots=True)
class SigningCommitments:
    """Round-one message: ``(D_i, E_i) = (d_i * G, e_i * G)`` for one signing session.

    It never names its sender: the driver keys it by the identifier the channel proved.
    """

    suite: Ciphersuite
    session_id: bytes
    hiding: Point
    binding: Point

    def __post_init__(self) -> None:
        check_session_id(self.session_id)
        for p in (self.hiding, self.binding):
            if p.group is not self.suite.group or p.is_identity():
                raise InvalidParameters("commitments must be non-identity points of the suite")

    def to_bytes(self) -> bytes:
        enc = suite_encoder(_KIND, self.suite)
        enc.var_bytes(self.session_id).point(self.hiding).point(self.binding)
        return enc.finish()

    @classmethod
    def from_bytes(cls, data: bytes) -> SigningCommitments:
        dec, suite = suite_decoder(data, _KIND)
        session_id = dec.var_bytes("session_id", max_length=MAX_SESSION_ID)
        hiding, binding = dec.point("hiding"), dec.point("binding")
        dec.finish()
        return cls(suite, session_id, hiding, binding)


class SigningNonces:
    """A signer's secret nonce pair for one session; usable exactly once."""

    __slots__ = ("_binding", "_hiding", "_lock", "_used", "commitments")

    def __init__(self, hiding: Scalar, binding: Scalar, commitments: SigningCommitments) -> None:
        self._hiding = hiding
        self._binding = binding
        self._used = False
        self._lock = threading.Lock()
        self.commitments = commitments

    def consume(self) -> tuple[Scalar, Scalar]:
        """Return ``(d, e)`` once and erase them; any later call raises :class:`NonceReuse`.

        Test and mark happen under one lock: two threads can never both pass the test.
        """
        with self._lock:
            if self._used:
                raise NonceReuse("this signing nonce was already used")
            self._used = True
            d, e = self._hiding, self._binding
            zero = d.group.zero()
            self._hiding = self._binding = zero
        return d, e

    @property
    def used(self) -> bool:
        return self._used

    def __repr__(self) -> str:
        return f"SigningNonces({self.commitments.suite.name}, <redacted>)"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("SigningNonces are not serialisable")


def commit(
    suite: Ciphersuite, key_share: KeyShare, session_id: bytes, rng: RandomSource
) -> tuple[SigningNonces, SigningCommitments]:
    """RFC 9591 §5.1 commit: hiding nonce first, then binding nonce (vector order)."""
    if key_share.group is not suite.group:
        raise InvalidParameters("key share is not for this ciphersuite's group")
    check_session_id(session_id)
    d = nonce_generate(suite, key_share.secret_share, rng)
    e = nonce_generate(suite, key_share.secret_share, rng)
    g = suite.group
    commitments = SigningCommitments(suite, session_id, g.base_mul(d), g.base_mul(e))
    return SigningNonces(d, e, commitments), commitments
