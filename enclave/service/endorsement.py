"""Mandatory participants of threshold decryption and of the PRF's decrypt mode (issue 11).

A signing set cannot leave a mandatory node out: a FROST package or an ECDSA presigning set
lists every signer, and the signature verifies only if every listed signer contributed, so each
node refuses a set without the mandatory nodes. A decryption is different: each node computes
its proven partial on its own and the client combines any t+1 of them, so nothing in a partial
says who else took part. The mandatory nodes' agreement therefore travels with the request as
**endorsements**.

Endorsement
    A mandatory node M, once it has made every check it makes before it answers with a partial
    (the key serves, the approvals meet the policy, a ciphertext's proof holds for this key and
    context), signs with its long-term identity key (sealed, bound into every document of M's
    boots: :mod:`wire.binding`)::

        lp("keyshard/mandatory-endorsement/v1", M, key name, group public key,
           epoch (8 bytes), operation, digest)

    ``operation`` is ``decrypt`` (digest :func:`wire.approvals.decryption_digest` of the
    ciphertext and its context) or ``prf-decrypt`` (digest :func:`prf_request_digest` of the
    seeds, in order).

The rule (every node, for a key whose policy names mandatory nodes)
    A node answers with its partial only with a valid endorsement of this exact request from
    every mandatory node other than itself; otherwise a non-mandatory node refuses
    (``mandatory_participant``, naming the missing nodes) and a mandatory node answers with its
    own endorsement only (its approvals checked, not spent). So no partial exists anywhere until
    every mandatory node has checked and endorsed the request. A key with one mandatory node
    (the usual case) costs one more round: that node answers with its partial and endorsement,
    then the other nodes with it. A key without mandatory nodes is served as before.

Verification
    The endorser's document (relayed by the client) goes through
    :class:`~enclave.service.binding.PeerVerifier`, the check every peer document gets; the
    signature through :func:`wire.binding.check_identity_signature` under the identity key the
    document binds, as a witness statement's does. An endorsement by a node that is not a
    mandatory participant of the key, or by this node itself, counts for nothing and is refused.

Replay
    An endorsement names the key, its epoch, the operation and the request's digest. Shown again
    for the SAME ciphertext and context (or seeds), it only lets a client ask for partials of a
    decryption the mandatory nodes already agreed to: the same plaintext, and every node still
    checks (and spends) its own approvals. Bound to any other ciphertext, context, seeds, key or
    epoch, the statement differs and the signature does not verify. It names no session: nodes
    keep no record of sessions, so such a binding would stop nothing.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from enclave.node_state import NodeIdentity
from enclave.service.errors import EndorsementError, MandatoryParticipantError
from wire.binding import ChannelBinding, IdentitySignatureError, check_identity_signature
from wire.hashing import lp_join

__all__ = ["EndorsedOperation", "EndorsedRequest", "MandatoryGate", "prf_request_digest"]

_DOMAIN = b"keyshard/mandatory-endorsement/v1"
_PRF_DOMAIN = b"keyshard/mandatory-endorsement/prf-seeds/v1"


class EndorsedOperation(enum.Enum):
    DECRYPT = "decrypt"
    PRF_DECRYPT = "prf-decrypt"


def prf_request_digest(seeds: Sequence[bytes]) -> bytes:
    """The digest a PRF decrypt-mode endorsement names: every seed, in order."""
    return hashlib.sha256(lp_join((_PRF_DOMAIN, *seeds))).digest()


@dataclass(frozen=True, slots=True)
class EndorsedRequest:
    """One request as every holder sees it (its own key record and the request's fields)."""

    key_name: str
    group_public_key: bytes
    epoch: int
    operation: EndorsedOperation
    digest: bytes

    def statement(self, endorser: str) -> bytes:
        """What ``endorser``'s identity key signs (see the module docstring)."""
        return lp_join(
            (
                _DOMAIN,
                endorser.encode("utf-8"),
                self.key_name.encode("utf-8"),
                self.group_public_key,
                struct.pack(">Q", self.epoch),
                self.operation.value.encode("ascii"),
                self.digest,
            )
        )

    def endorse(self, me: str, identity: NodeIdentity) -> bytes:
        """This node's endorsement; only after every check it makes before a partial."""
        return identity.sign(self.statement(me))

    def missing(
        self,
        *,
        me: str,
        mandatory: Sequence[str],
        endorsers: Mapping[str, bytes],
        endorsements: Mapping[str, bytes],
        verify_peer: Callable[[str, bytes], ChannelBinding],
    ) -> tuple[str, ...]:
        """The mandatory nodes other than ``me`` that have not endorsed this request.

        Every endorsement given is checked, whatever is missing: one from a node that is not a
        mandatory participant (or from ``me``), or that does not verify, raises
        :class:`EndorsementError` naming it (a refused document raises ``PeerRefusedError``)."""
        for node_id in sorted(endorsements):
            if node_id == me:
                raise EndorsementError(node_id, "a node's own endorsement is not shown to it")
            if node_id not in mandatory:
                raise EndorsementError(
                    node_id, f"it is not a mandatory participant of key {self.key_name!r}"
                )
            binding = verify_peer(node_id, endorsers[node_id])
            try:
                check_identity_signature(
                    binding.identity_public_key, endorsements[node_id], self.statement(node_id)
                )
            except IdentitySignatureError:
                raise EndorsementError(
                    node_id, f"it is not its signature over this {self.operation.value} request"
                ) from None
        return tuple(n for n in mandatory if n != me and n not in endorsements)

    def require(self, missing: tuple[str, ...]) -> None:
        """Refuse (:class:`MandatoryParticipantError`) while mandatory nodes are missing."""
        if missing:
            raise MandatoryParticipantError(missing, what="decryption set")


@dataclass(frozen=True, slots=True)
class MandatoryGate:
    """Where one request stands with the key's mandatory participants, on this node."""

    request: EndorsedRequest
    #: This node is one of the key's mandatory participants (it endorses what it serves).
    mandatory: bool
    #: The other mandatory participants that have not endorsed the request yet.
    missing: tuple[str, ...]

    @classmethod
    def open(
        cls,
        request: EndorsedRequest,
        *,
        me: str,
        mandatory: Sequence[str],
        endorsers: Mapping[str, bytes],
        endorsements: Mapping[str, bytes],
        verify_peer: Callable[[str, bytes], ChannelBinding],
    ) -> MandatoryGate:
        """Check every endorsement given; a node that is not mandatory is refused here
        (:class:`MandatoryParticipantError` naming the missing nodes) while any is missing."""
        missing = request.missing(
            me=me,
            mandatory=mandatory,
            endorsers=endorsers,
            endorsements=endorsements,
            verify_peer=verify_peer,
        )
        if me not in mandatory:
            request.require(missing)
        return cls(request, me in mandatory, missing)

    @property
    def endorse_only(self) -> bool:
        """A mandatory node answers with its endorsement alone until the others have endorsed."""
        return self.mandatory and bool(self.missing)

    def endorsement(self, me: str, identity: NodeIdentity) -> bytes:
        """This node's endorsement to send with its answer (empty when it is not mandatory)."""
        return self.request.endorse(me, identity) if self.mandatory else b""
