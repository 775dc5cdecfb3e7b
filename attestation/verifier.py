"""Verify a Nitro attestation document: chain to a pinned root, then the COSE_Sign1 signature.

:meth:`AttestationVerifier.verify` is the only way to obtain a :class:`VerifiedDocument`, and a
policy accepts nothing else, so "checked the policy but forgot the signature" cannot be written.

Steps, in order (each refusal is a typed :class:`~attestation.errors.AttestationError`):

1. decode strictly (:func:`attestation.codec.decode_document`);
2. the leaf certificate is valid at the chosen instant — ``"now"`` (default, from the verifier's
   clock), ``"document"`` (the document's own timestamp: for stored documents, whose leaf lives
   only about three hours), or an explicit aware datetime;
3. the chain ``cabundle`` -> pinned root holds at that instant (:mod:`attestation.chain`);
4. the leaf issued by step 1, and the document's timestamp lies inside the leaf's validity;
5. the ES384 signature (raw ``r || s``, converted to DER for ``cryptography``) verifies with the
   leaf's key over the Sig_structure built from the bytes exactly as signed. High-S signatures are
   valid ECDSA and real NSMs emit them, so they are accepted.

Steps 3 and 4 are cached (see :mod:`attestation.chain_cache`): the intermediate chain by the hash
of ``cabundle``, the leaf link by the hash of leaf and chain. A cached result is used only at
instants inside the validity window of every certificate it covers. Step 5 is never cached.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from attestation.chain import (
    IntermediateChain,
    LeafChain,
    link_leaf,
    load_leaf,
    verify_intermediates,
)
from attestation.chain_cache import ChainCache, chain_key
from attestation.codec import decode_document, sig_structure
from attestation.document import AttestationPayload, SignedDocument
from attestation.errors import ChainInvalid, SignatureInvalid
from attestation.roots import TrustedRoots

__all__ = ["AttestationVerifier", "Instant", "VerifiedDocument"]

#: When to check certificate validity: ``"now"``, ``"document"``, or an aware datetime.
Instant = Literal["now", "document"] | _dt.datetime
_ES384 = ec.ECDSA(hashes.SHA384())
_SCALAR = 48
# Capability token: only this module can construct a VerifiedDocument.
_MINT = object()


def _utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


@dataclass(frozen=True, slots=True)
class VerifiedDocument:
    """A document whose chain and signature verified; obtainable only from the verifier.

    ``checked_at`` is the instant the certificates were checked at; ``root_fingerprint`` names the
    pinned root the chain ended at.
    """

    document: SignedDocument
    checked_at: _dt.datetime
    root_fingerprint: str
    _mint: object = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._mint is not _MINT:
            raise TypeError("VerifiedDocument is only issued by AttestationVerifier.verify")

    @property
    def payload(self) -> AttestationPayload:
        return self.document.payload

    @property
    def pcrs(self) -> Mapping[int, bytes]:
        return self.document.payload.pcrs

    @property
    def timestamp(self) -> _dt.datetime:
        return self.document.payload.timestamp

    @property
    def is_debug_mode(self) -> bool:
        return self.document.payload.is_debug_mode


class AttestationVerifier:
    """Verifies documents against pinned roots (the AWS Nitro root unless told otherwise).

    One verifier per trust configuration; its caches are bounded (``cache_entries`` per level)
    and safe to share between threads. ``clock`` supplies "now" (a parameter so tests and replays
    control time).
    """

    def __init__(
        self,
        roots: TrustedRoots | None = None,
        *,
        cache_entries: int = 256,
        clock: Callable[[], _dt.datetime] = _utc_now,
    ) -> None:
        self._roots = roots if roots is not None else TrustedRoots.aws()
        self._clock = clock
        self._intermediates: ChainCache[IntermediateChain] = ChainCache(cache_entries)
        self._leaves: ChainCache[LeafChain] = ChainCache(cache_entries)

    @property
    def roots(self) -> TrustedRoots:
        return self._roots

    def clear_cache(self) -> None:
        """Forget every cached chain (the next verification is cold)."""
        self._intermediates.clear()
        self._leaves.clear()

    def _instant(self, at: Instant, document: SignedDocument) -> _dt.datetime:
        if at == "now":
            instant = self._clock()
        elif at == "document":
            instant = document.payload.timestamp
        elif isinstance(at, _dt.datetime):
            instant = at
        else:
            raise ValueError(f"at must be 'now', 'document' or a datetime, not {at!r}")
        if instant.tzinfo is None:
            raise ValueError("the verification instant must be timezone-aware")
        return instant

    def _chain(self, document: SignedDocument, instant: _dt.datetime) -> LeafChain:
        payload = document.payload
        intermediate_key = chain_key(b"cabundle", payload.cabundle)
        leaf_key = chain_key(b"leaf", (intermediate_key, payload.certificate))
        cached = self._leaves.get(leaf_key, instant)
        if cached is not None:
            return cached
        leaf = load_leaf(payload.certificate, instant)
        intermediates = self._intermediates.get(intermediate_key, instant)
        if intermediates is None:
            intermediates = verify_intermediates(payload.cabundle, self._roots, instant)
            self._intermediates.put(intermediate_key, intermediates.window, intermediates)
        linked = link_leaf(leaf, intermediates)
        self._leaves.put(leaf_key, linked.window, linked)
        return linked

    def verify(self, document: bytes | SignedDocument, *, at: Instant = "now") -> VerifiedDocument:
        """Verify ``document`` (raw bytes or already decoded) at ``at``; raise on any failure.

        Raises :class:`~attestation.errors.DocumentFormatError`,
        :class:`~attestation.errors.ChainInvalid` (and its subclasses) or
        :class:`~attestation.errors.SignatureInvalid`.
        """
        signed = document if isinstance(document, SignedDocument) else decode_document(document)
        instant = self._instant(at, signed)
        chain = self._chain(signed, instant)
        stamp = signed.payload.timestamp
        if not chain.leaf_window.contains(stamp):
            raise ChainInvalid(
                0,
                f"document timestamp {stamp.isoformat()} is outside the leaf's validity "
                f"{chain.leaf_window.not_before.isoformat()} .. "
                f"{chain.leaf_window.not_after.isoformat()}",
            )
        r = int.from_bytes(signed.signature[:_SCALAR], "big")
        s = int.from_bytes(signed.signature[_SCALAR:], "big")
        try:
            chain.public_key.verify(
                encode_dss_signature(r, s),
                sig_structure(signed.protected, signed.payload_bytes),
                _ES384,
            )
        except InvalidSignature:
            raise SignatureInvalid() from None
        return VerifiedDocument(
            document=signed,
            checked_at=instant,
            root_fingerprint=chain.root_fingerprint,
            _mint=_MINT,
        )
