"""One error tree for the MPC core.

Errors split, as in h11, into "the caller misused the API" and "a peer misbehaved", and the
second kind always names the culprits (the identifiers the authenticated channel proved), as the
Zcash Foundation ``frost`` error enum does::

    MpcError
    ├── EncodingError            malformed / non-canonical bytes (public data: field + reason)
    ├── InvalidParameters        bad t/n, zero or duplicate identifiers, wrong party set, too few
    ├── ProtocolAbort            a peer misbehaved; ``culprits`` names who
    │   ├── InvalidShare             a dealt share does not match the dealer's commitments
    │   ├── InvalidProof             a proof of possession / DLEQ proof does not verify
    │   ├── InvalidSignatureShare    a signature share does not verify against its commitments
    │   ├── InvalidCommitment        a dealer's commitment breaks the protocol's public rule
    │   └── InconsistentTranscript   parties saw different protocol transcripts (equivocation)
    ├── MisuseError              the caller misused the API (a secret state used twice, ...)
    │   ├── NonceReuse               a FROST signing nonce was used a second time
    │   └── PresignatureReuse        an ECDSA presignature was used a second time
    └── SecretError              opaque, fixed message: anything whose details could leak secrets

Errors about public data carry details; a :class:`SecretError` never does and is raised
``from None`` so no secret-bearing context chains onto it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from enclave.mpc.identifiers import Identifier

__all__ = [
    "EncodingError",
    "InconsistentTranscript",
    "InvalidCommitment",
    "InvalidParameters",
    "InvalidProof",
    "InvalidShare",
    "InvalidSignatureShare",
    "MisuseError",
    "MpcError",
    "NonceReuse",
    "PresignatureReuse",
    "ProtocolAbort",
    "SecretError",
]


class MpcError(Exception):
    """Base of every error raised by ``enclave.mpc``."""


class EncodingError(MpcError):
    """Bytes that are malformed or not in their one canonical form.

    ``field`` says which value was being decoded; ``reason`` what was wrong with it. Only ever
    raised about public data (points, public scalars, message framing).
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidParameters(MpcError):  # noqa: N818 - names fixed by the shared API contract
    """Parameters the caller chose are unusable (threshold, party set, identifiers, counts)."""


class ProtocolAbort(MpcError):  # noqa: N818 - names fixed by the shared API contract
    """A peer misbehaved. ``culprits`` names the parties that provably did."""

    def __init__(self, culprits: Iterable[Identifier], reason: str) -> None:
        self.culprits: frozenset[Identifier] = frozenset(culprits)
        self.reason = reason
        names = ", ".join(str(int(c)) for c in sorted(self.culprits))
        super().__init__(f"{reason} (culprits: {names or 'unknown'})")


class InvalidShare(ProtocolAbort):
    """A secret share does not match the dealer's public (Feldman) commitments."""


class InvalidProof(ProtocolAbort):
    """A zero-knowledge proof (proof of possession, DLEQ) does not verify."""


class InvalidSignatureShare(ProtocolAbort):
    """A signature share does not verify against the signer's commitments and public share."""


class InvalidCommitment(ProtocolAbort):
    """A dealer's public commitment breaks a rule everyone can check: wrong degree, a refresh
    zero-sharing whose constant term is not the identity, a reshare constant term that is not
    ``lambda_i * Y_i``."""


class InconsistentTranscript(ProtocolAbort):
    """Parties hold different views of the same transcript: someone equivocated.

    ``culprits`` are the parties whose view differs from the majority view (or all parties that
    disagree when no view is in the majority).
    """


class MisuseError(MpcError):
    """The caller used the API in a way it forbids (e.g. reusing single-use secret state)."""


class NonceReuse(MisuseError):  # noqa: N818 - names fixed by the shared API contract
    """A FROST signing nonce was consumed a second time; signing again could leak the key."""


class PresignatureReuse(MisuseError):  # noqa: N818 - names fixed by the shared API contract
    """An ECDSA presignature was consumed a second time; reuse would leak the key."""


class SecretError(MpcError):
    """An operation on secret data failed. The message is fixed and carries no detail."""

    MESSAGE = "operation on secret data failed"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)
