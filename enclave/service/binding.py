"""An enclave's check of a peer's attestation document, relayed by the untrusted client.

The chain must end at the root pinned in the enclave's measured image config, PCR0/1/2 must
equal, as a whole set, the enclave's OWN measured values or one of the ``peer_releases`` its
measured image lists (only code its builder vouched for can be a peer), the document must be
younger than the image's maximum age, and its binding (:func:`wire.binding.check_binding`, the
same check a client runs) must name the expected node.

Verifying a document costs five P-384 signature checks. A client relays the same document (its
channel's) to every presigning or key-creation run, so a verified document is remembered, by its
SHA-256, for as long as it stays young enough: a repeat costs a hash and an age check, not the
chain. The cache is bounded; what it holds is public (documents and their bindings).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from attestation.errors import AttestationError
from attestation.policy import AttestationPolicy
from attestation.verifier import AttestationVerifier
from enclave.service.errors import PeerRefusedError
from wire.binding import BindingMismatchError, ChannelBinding, check_binding
from wire.errors import MalformedMessageError

__all__ = ["MEASURED_PCRS", "PeerVerifier"]

MEASURED_PCRS = (0, 1, 2)
#: Verified documents remembered at once (a few per peer and boot is all a cluster needs).
VERIFIED_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class _Verified:
    binding: ChannelBinding
    issued_at: dt.datetime


@dataclass(slots=True)
class PeerVerifier:
    """An enclave's check of a peer's (client-relayed) document; see the module docstring."""

    verifier: AttestationVerifier
    own_pcrs: Mapping[int, bytes]
    max_age: dt.timedelta
    clock: Callable[[], dt.datetime]
    #: Whole PCR sets of other releases accepted as peers (from the measured image config).
    peer_releases: tuple[Mapping[int, bytes], ...] = ()
    _verified: OrderedDict[bytes, _Verified] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        missing = [i for i in MEASURED_PCRS if i not in self.own_pcrs]
        if missing:
            raise ValueError(f"own PCRs {missing} unknown: the node has not attested")
        if any(i not in release for release in self.peer_releases for i in MEASURED_PCRS):
            raise ValueError("every peer release must name PCR0, PCR1 and PCR2")
        self.own_pcrs = MappingProxyType(dict(self.own_pcrs))
        self.peer_releases = tuple(MappingProxyType(dict(r)) for r in self.peer_releases)

    def verify(self, node_id: str, document: bytes) -> ChannelBinding:
        """Return the peer's binding, or raise :class:`PeerRefusedError` naming the peer and why."""
        now = self.clock()
        digest = hashlib.sha256(document).digest()
        known = self._verified.get(digest)
        if known is not None and now - known.issued_at <= self.max_age:
            self._verified.move_to_end(digest)
            return self._named(node_id, known.binding)
        self._verified.pop(digest, None)
        own = {i: self.own_pcrs[i] for i in MEASURED_PCRS}
        policy = AttestationPolicy(pcr_sets=(own, *self.peer_releases), max_age=self.max_age)
        try:
            verified = self.verifier.verify(document, at=now)
            policy.check(verified, now=now)
            binding = check_binding(verified.payload.user_data, node_id=node_id)
        except (AttestationError, MalformedMessageError) as error:
            raise PeerRefusedError(node_id, f"{type(error).__name__}: {error}") from None
        except BindingMismatchError as error:
            raise PeerRefusedError(node_id, error.reason) from None
        self._verified[digest] = _Verified(binding, verified.timestamp)
        while len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return binding

    @staticmethod
    def _named(node_id: str, binding: ChannelBinding) -> ChannelBinding:
        if binding.node_id != node_id:
            raise PeerRefusedError(node_id, f"the document names node {binding.node_id!r}")
        return binding
