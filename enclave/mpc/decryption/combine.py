"""Client side of threshold decryption: check every partial, interpolate ``x·E``, decrypt.

Runs in the client (SDK), never in a node: the plaintext is assembled only where it is meant to
be read (ARCHITECTURE "Protocol choices").

1. Validate before arithmetic: one group, the ciphertext for the package's group, every sender
   in the key's committee, at least ``t + 1`` partials.
2. Verify **every** partial's DLEQ proof against its sender's verification share. If any fails,
   nothing is combined: :class:`~enclave.mpc.errors.InvalidProof` names all the failing senders
   so the caller can drop them and ask other nodes (decryption has no single-use state, so a
   retry with ``t + 1`` honest nodes is safe and completes).
3. ``S = sum_i lambda_i · D_i`` (Lagrange at 0 over the senders present), which equals ``x·E``
   for any ``t + 1`` or more valid partials.
4. Derive the AEAD key from ``S`` and decrypt; an authentication failure is an opaque
   :class:`~enclave.mpc.errors.SecretError`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from enclave.mpc.decryption.ecies import Ciphertext, open_with_shared_point
from enclave.mpc.decryption.partial import PartialDecryption, verify_partial
from enclave.mpc.errors import InvalidParameters, InvalidProof
from enclave.mpc.groups import Group, Scalar
from enclave.mpc.identifiers import Identifier, validate_identifiers
from enclave.mpc.keys import PublicKeyPackage
from enclave.mpc.shamir import lagrange_coefficient

__all__ = ["combine"]


def combine(
    public: PublicKeyPackage,
    ciphertext: Ciphertext,
    partials: Mapping[Identifier, PartialDecryption],
    session_id: bytes,
    associated_data: bytes = b"",
) -> bytes:
    """Verify the partials (keyed by authenticated sender), combine them and decrypt."""
    group = public.group
    if ciphertext.group is not group:
        raise InvalidParameters("ciphertext is for another group")
    senders = validate_identifiers(group, partials.keys())
    unknown = [i for i in senders if i not in public.verifying_shares]
    if unknown:
        names = ", ".join(str(int(i)) for i in unknown)
        raise InvalidParameters(f"partials from parties outside the committee: {names}")
    if len(senders) < public.threshold + 1:
        raise InvalidParameters(
            f"need {public.threshold + 1} partial decryptions, got {len(senders)}"
        )
    culprits: list[Identifier] = []
    for sender in senders:
        try:
            verify_partial(public, ciphertext, sender, partials[sender], session_id)
        except InvalidProof:
            culprits.append(sender)
    if culprits:
        raise InvalidProof(culprits, "partial decryption proof does not verify")
    shared = group.multi_mul(
        list(zip(_coefficients(group, senders), (partials[i].share for i in senders), strict=True))
    )
    return open_with_shared_point(ciphertext, public.group_public_key, shared, associated_data)


@functools.lru_cache(maxsize=256)
def _coefficients(group: Group, senders: tuple[Identifier, ...]) -> tuple[Scalar, ...]:
    """The Lagrange coefficients at 0 of a sender set (public values): a client decrypting many
    ciphertexts of one key meets the same few sets again and again, and each coefficient costs
    a scalar inversion."""
    return tuple(lagrange_coefficient(group, i, senders) for i in senders)
