"""BIP-340 signing of a node (suite ``bip340``): BIP-445's nonces made ahead, and its Sign.

BIP-445's NonceGen may run before the message (and the tweaks) are known, as RFC 9591's
preprocessing: a node makes nonce pairs in batches (``bip340_nonce_commit``), keeps each secret
nonce in memory under its public nonce, and later signs one item of a ``bip340_sign`` that names
its public nonce. :meth:`Bip340Nonces.take` removes the secret nonce BEFORE any other check, so a
public nonce signs at most once whatever follows (the core's ``SecNonce`` also refuses a second
use). The node recomputes the aggregate nonce from every signer's public nonce itself, builds the
signer set from its own sealed key package (never the client's), applies the tweaks, and returns
its 32-byte partial signature; the client aggregates and verifies the BIP-340 signature with
libsecp256k1, naming any signer whose partial signature is wrong.

Tweaks travel as 33 bytes each: a mode byte (0 plain, BIP-32; 1 x-only, BIP-341 Taproot) and the
32-byte tweak. Approvals name the x-only key that verifies the signature (the tweaked one).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

from enclave.mpc.errors import InvalidParameters
from enclave.mpc.frost.bip340 import (
    SecNonce,
    SessionContext,
    SignersContext,
    Tweak,
    TweakMode,
    nonce_agg,
    nonce_gen,
    sign,
    tweak_key,
    xonly,
)
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare
from enclave.mpc.randomness import RandomSource
from enclave.service.errors import NonceUnknownError, SessionError

__all__ = ["MAX_PER_KEY", "Bip340Nonces", "decode_tweaks", "output_key", "sign_item"]

MAX_PER_KEY = 4096
_MODES = {0: TweakMode.PLAIN, 1: TweakMode.XONLY}


class Bip340Nonces:
    """The unused BIP-445 secret nonces of every key on this node, by public nonce."""

    def __init__(self, max_per_key: int = MAX_PER_KEY) -> None:
        self._max = max_per_key
        self._keys: dict[str, OrderedDict[bytes, SecNonce]] = {}

    def preprocess(
        self, key_name: str, share: KeyShare, count: int, rng: RandomSource
    ) -> list[bytes]:
        """Make ``count`` nonce pairs for ``key_name`` (no message yet); their public nonces."""
        table = self._keys.setdefault(key_name, OrderedDict())
        thresh_pk = xonly(share.group_public_key)
        published = []
        for _ in range(count):
            secnonce = nonce_gen(
                rng, share.secret_share, share.verifying_share, thresh_pk=thresh_pk, msg=None
            )
            table[secnonce.pubnonce] = secnonce
            published.append(secnonce.pubnonce)
        while len(table) > self._max:
            table.popitem(last=False)
        return published

    def take(self, key_name: str, pubnonce: bytes) -> SecNonce:
        """Out of the table before anything else: never used twice."""
        secnonce = self._keys.get(key_name, OrderedDict()).pop(pubnonce, None)
        if secnonce is None:
            raise NonceUnknownError(f"no unused BIP-340 nonce of key {key_name!r} matches")
        return secnonce

    def available(self, key_name: str) -> int:
        return len(self._keys.get(key_name, ()))

    def forget(self, key_name: str) -> None:
        self._keys.pop(key_name, None)


def decode_tweaks(encoded: Sequence[bytes]) -> tuple[Tweak, ...]:
    """``mode byte || 32-byte tweak`` each (mode 0 plain, 1 x-only)."""
    tweaks = []
    for item in encoded:
        mode = _MODES.get(item[0]) if len(item) == 33 else None
        if mode is None:
            raise InvalidParameters("a tweak is a mode byte (0 plain, 1 x-only) and 32 bytes")
        tweaks.append(Tweak(item[1:], mode))
    return tuple(tweaks)


def output_key(share: KeyShare, tweaks: Sequence[Tweak]) -> bytes:
    """The x-only key that verifies signatures under ``tweaks`` (what approvals name)."""
    return tweak_key(share.group_public_key, tweaks).xonly_key


def sign_item(
    share: KeyShare,
    secnonce: SecNonce,
    *,
    signers: Sequence[int],
    pubnonces: Sequence[bytes],
    tweaks: Sequence[Tweak],
    message: bytes,
) -> bytes:
    """This node's partial signature of ``message`` by ``signers`` (their public nonces in the
    same order), the signer set checked against this node's own key package."""
    group = share.group
    ids = [Identifier.from_int(group, i) for i in signers]
    if share.identifier not in ids:
        raise SessionError("this node is not among the signers")
    by_id: Mapping[Identifier, bytes] = dict(zip(ids, pubnonces, strict=True))
    if by_id[share.identifier] != secnonce.pubnonce:
        raise SessionError("the item names another nonce of this node")
    context = SessionContext(
        nonce_agg(by_id),
        SignersContext.from_public(share.public, ids),
        tuple(tweaks),
        message,
    )
    return sign(secnonce, share.secret_share, share.identifier, context)
