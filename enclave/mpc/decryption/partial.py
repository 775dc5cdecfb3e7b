"""A node's share of a threshold decryption: ``D_i = x_i·E`` with a Chaum-Pedersen proof.

Node side (in the enclave, after the key's policy allowed the request): given the ciphertext's
ephemeral point ``E`` and its own share ``x_i``, return ``D_i = x_i·E`` and a DLEQ proof that
``log_G(Y_i) == log_E(D_i)``, where ``Y_i = x_i·G`` is the node's public verification share from
the DKG. The proof lets the client check every partial on its own and name a node that returned
garbage, without trusting the node or the parent that relayed the answer.

Trust notes:

* ``E`` comes from an untrusted client. It is a strictly decoded, non-identity, prime-order
  point (``Group.decode_point`` refuses small-order Ed25519 points), so ``D_i`` reveals nothing
  about ``x_i`` beyond the Diffie-Hellman value the protocol is meant to release. Whether this
  client may have it is the key policy's decision, made before this function is called.
* That value is released only for a ciphertext whose encryptor proved knowledge of ``e`` with
  ``E = e·G``, for this key and the request's context (``ecies.verify_ciphertext``, checked here
  before any arithmetic with the share): otherwise an approval for ``C' = (E + r·G, ·)`` would
  open ``C = (E, ·)`` (TDH2's reason for the proof; ``pok.py``).
* The proof is bound (``dleq.ProofContext``) to this protocol, the request's ``session_id`` and
  the node's identifier; the statement binds ``E``, ``Y_i`` and ``D_i``.
* A message never names its sender: the client pairs it with the identity the attested channel
  proved (``combine.combine`` takes ``Mapping[Identifier, PartialDecryption]``).
"""

from __future__ import annotations

from dataclasses import dataclass

from enclave.mpc.decryption.ecies import Ciphertext, verify_ciphertext
from enclave.mpc.dleq import DleqProof, DleqStatement, ProofContext, prove, verify
from enclave.mpc.encoding import Decoder, Encoder
from enclave.mpc.errors import EncodingError, InvalidParameters, InvalidProof
from enclave.mpc.groups import Group, Point
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.randomness import RandomSource

__all__ = ["DECRYPT_PROTOCOL", "PartialDecryption", "partial_decrypt", "verify_partial"]

DECRYPT_PROTOCOL = b"keyshard/decrypt/v1"
_KIND = "partial-decryption"
MAX_SESSION_ID = 256


@dataclass(frozen=True, slots=True)
class PartialDecryption:
    """Node -> client: ``D_i`` and its proof, for one request (``session_id``)."""

    group: Group
    session_id: bytes
    share: Point
    proof: DleqProof

    def __post_init__(self) -> None:
        if not 0 < len(self.session_id) <= MAX_SESSION_ID:
            raise InvalidParameters(f"session id must be 1..{MAX_SESSION_ID} bytes")
        if self.share.group is not self.group or self.proof.group is not self.group:
            raise InvalidParameters("partial decryption mixes groups")
        if self.share.is_identity():
            raise InvalidParameters("partial decryption must not be the identity")

    def to_bytes(self) -> bytes:
        enc = Encoder(_KIND, self.group).var_bytes(self.session_id).point(self.share)
        return enc.scalar(self.proof.challenge).scalar(self.proof.response).finish()

    @classmethod
    def from_bytes(cls, data: bytes, group: Group | None = None) -> PartialDecryption:
        dec = Decoder(data, _KIND, group)
        session_id = dec.var_bytes("session_id", max_length=MAX_SESSION_ID)
        if not session_id:
            raise EncodingError("session_id", "empty")
        share = dec.point("share")
        proof = DleqProof(dec.scalar("proof.challenge"), dec.scalar("proof.response"))
        dec.finish()
        return cls(dec.group, session_id, share, proof)


def _statement(verifying_share: Point, ciphertext: Ciphertext, share: Point) -> DleqStatement:
    group = ciphertext.group
    return DleqStatement(group.generator(), verifying_share, ciphertext.ephemeral, share)


def partial_decrypt(
    key_share: KeyShare,
    ciphertext: Ciphertext,
    session_id: bytes,
    rng: RandomSource,
    associated_data: bytes = b"",
) -> PartialDecryption:
    """Check the ciphertext's proof for this key and ``associated_data`` (the request's context;
    :class:`InvalidProof` if it fails), then compute ``D_i = x_i·E`` and prove it consistent
    with this node's ``Y_i``."""
    group = key_share.group
    if ciphertext.group is not group:
        raise InvalidParameters("ciphertext is for another group")
    verify_ciphertext(ciphertext, key_share.group_public_key, associated_data)
    share = ciphertext.ephemeral * key_share.secret_share
    statement = _statement(key_share.verifying_share, ciphertext, share)
    context = ProofContext(DECRYPT_PROTOCOL, session_id, key_share.identifier)
    proof = prove(key_share.secret_share, statement, context, rng)
    return PartialDecryption(group, session_id, share, proof)


def verify_partial(
    public: PublicKeyPackage,
    ciphertext: Ciphertext,
    sender: Identifier,
    partial: PartialDecryption,
    session_id: bytes,
) -> None:
    """Check one node's partial; :class:`InvalidProof` names ``sender`` if it is wrong.

    ``sender`` is the identity the authenticated channel proved, never a field of the message.
    A partial for another session or group is the sender's fault too (a replay or a mix-up
    that an honest node never produces for this request).
    """
    verifying_share = public.verifying_shares.get(sender)
    if verifying_share is None:
        raise InvalidParameters(f"party {int(sender)} is not in the key's committee")
    if ciphertext.group is not public.group:
        raise InvalidParameters("ciphertext is for another group")
    if partial.group is not public.group:
        raise InvalidProof((sender,), "partial decryption is for another group")
    if partial.session_id != session_id:
        raise InvalidProof((sender,), "partial decryption is for another session")
    statement = _statement(verifying_share, ciphertext, partial.share)
    verify(statement, partial.proof, ProofContext(DECRYPT_PROTOCOL, session_id, sender))
