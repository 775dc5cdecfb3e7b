"""Verify a Nitro attestation document: chain to a pinned root, then the COSE_Sign1 signature.

:meth:`AttestationVerifier.verify` is the only way to obtain a :class:`VerifiedDocument`, and a
policy accepts nothing else, so "checked the policy but forgot the signature" cannot be written.

Steps, in order (each refusal is a typed :class:`~attestation.errors.AttestationError`):

1. decode strictly (:func:`attestation.codec.decode_document`); a ``SignedDocument`` passed in is
   re-derived from its own signed bytes, never trusted for its decoded fields;
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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import InitVar, dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from attestation.chain import (
    IntermediateChain,
    LeafChain,
    complete_chain,
    leaf_public_key,
    link_leaf,
    load_leaf,
    verify_intermediates,
)
from attestation.chain_cache import ChainCache, chain_key
from attestation.codec import decode_document, encode_envelope, sig_structure
from attestation.document import AttestationPayload, SignedDocument
from attestation.errors import ChainInvalid, DocumentFormatError, SignatureInvalid
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
    # An InitVar, not a field: dataclasses.replace() cannot carry it over to a forged copy.
    _mint: InitVar[object]

    def __post_init__(self, _mint: object) -> None:
        if _mint is not _MINT:
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

    ``workers`` > 0 lets a cold verification (chain not cached) check its five P-384 signatures
    on that many extra threads: ``cryptography`` releases the GIL while verifying, so on a
    multi-core host the latency of a cold verification drops by about the number of cores. The
    result and the error reported are the same as with ``workers=0`` (the default, no threads).
    Call :meth:`close` (or use the verifier as a context manager) to stop the threads.
    """

    def __init__(
        self,
        roots: TrustedRoots | None = None,
        *,
        cache_entries: int = 256,
        clock: Callable[[], _dt.datetime] = _utc_now,
        workers: int = 0,
    ) -> None:
        if workers < 0:
            raise ValueError("workers must not be negative")
        self._roots = roots if roots is not None else TrustedRoots.aws()
        self._clock = clock
        self._intermediates: ChainCache[IntermediateChain] = ChainCache(cache_entries)
        self._leaves: ChainCache[LeafChain] = ChainCache(cache_entries)
        self._executor = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="attestation-verify")
            if workers
            else None
        )

    @property
    def roots(self) -> TrustedRoots:
        return self._roots

    def clear_cache(self) -> None:
        """Forget every cached chain (the next verification is cold)."""
        self._intermediates.clear()
        self._leaves.clear()

    def cache_sizes(self) -> tuple[int, int]:
        """How many intermediate chains and leaf links are cached (for tests and metrics)."""
        return len(self._intermediates), len(self._leaves)

    def close(self) -> None:
        """Stop the worker threads, if any (idempotent)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def __enter__(self) -> AttestationVerifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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

    def verify(self, document: bytes | SignedDocument, *, at: Instant = "now") -> VerifiedDocument:
        """Verify ``document`` (raw bytes or already decoded) at ``at``; raise on any failure.

        Raises :class:`~attestation.errors.DocumentFormatError`,
        :class:`~attestation.errors.ChainInvalid` (and its subclasses) or
        :class:`~attestation.errors.SignatureInvalid`. Chain errors take precedence over a bad
        signature: the signature is only meaningful once the key is trusted.
        """
        signed = _decoded(document)
        instant = self._instant(at, signed)
        payload = signed.payload
        intermediate_key = chain_key(b"cabundle", payload.cabundle)
        leaf_key = chain_key(b"leaf", (intermediate_key, payload.certificate))
        chain = self._leaves.get(leaf_key, instant)
        signature_check: Future[None] | None = None
        if chain is None:
            leaf = load_leaf(payload.certificate, instant)
            public_key = leaf_public_key(leaf)
            if self._executor is not None:
                signature_check = self._executor.submit(_check_signature, public_key, signed)
            intermediates = self._intermediates.get(intermediate_key, instant)
            if intermediates is None:
                intermediates = verify_intermediates(
                    payload.cabundle, self._roots, instant, self._executor, leaf=leaf
                )
                self._intermediates.put(intermediate_key, intermediates.window, intermediates)
                chain = complete_chain(leaf, public_key, intermediates)
            else:
                chain = link_leaf(leaf, public_key, intermediates)
            self._leaves.put(leaf_key, chain.window, chain)
        stamp = payload.timestamp
        if not chain.leaf_window.contains(stamp):
            raise ChainInvalid(
                0,
                f"document timestamp {stamp.isoformat()} is outside the leaf's validity "
                f"{chain.leaf_window.not_before.isoformat()} .. "
                f"{chain.leaf_window.not_after.isoformat()}",
            )
        if signature_check is not None:
            signature_check.result()
        else:
            _check_signature(chain.public_key, signed)
        return VerifiedDocument(
            document=signed,
            checked_at=instant,
            root_fingerprint=chain.root_fingerprint,
            _mint=_MINT,
        )


def _decoded(document: bytes | SignedDocument) -> SignedDocument:
    """Decode bytes; re-derive a given SignedDocument from its own signed bytes.

    A SignedDocument is a plain dataclass anyone can build, with a ``payload`` that need not be
    what ``payload_bytes`` (the signed part) says. Trust only the bytes.
    """
    if not isinstance(document, SignedDocument):
        return decode_document(document)
    rebuilt = decode_document(
        encode_envelope(document.protected, document.payload_bytes, document.signature)
    )
    if rebuilt.payload != document.payload:
        raise DocumentFormatError("payload", "decoded payload differs from the signed bytes")
    return rebuilt


def _check_signature(public_key: ec.EllipticCurvePublicKey, signed: SignedDocument) -> None:
    """ES384 over the Sig_structure; raw ``r || s`` converted to the DER ``cryptography`` takes."""
    r = int.from_bytes(signed.signature[:_SCALAR], "big")
    s = int.from_bytes(signed.signature[_SCALAR:], "big")
    try:
        public_key.verify(
            encode_dss_signature(r, s),
            sig_structure(signed.protected, signed.payload_bytes),
            _ES384,
        )
    except InvalidSignature:
        raise SignatureInvalid() from None
