"""Export and import of a key's shares (issue 11): the node's side, without sockets.

Export. A key leaves the cluster only if it was created ``exportable`` (sealed with its share,
bound into its DKG, and only with an approval policy) and its policy's quorum approved this
export: operation ``export`` over :func:`wire.approvals.lifecycle_digest` at the key's epoch with
the recipient's X25519 key as the detail — so an approval names the one recipient it lets the
key go to. Every holder takes part; each re-randomises its share before wrapping it:

    y_i = lambda_i * s_i + sum_{j != i} (+/-) m_ij,   m_ij = PRF(k_ij, export context)

``lambda_i`` is holder i's Lagrange coefficient over all holders (so ``sum_i y_i = s``), and
``k_ij`` the ``crypto_box`` key holders i and j share from their attested per-boot box keys
(each verifies the other's document): the masks cancel in the sum (``+`` for the lower node id,
``-`` for the higher) and are unknown to anyone but the two holders — a pseudo-random zero sharing
(Cramer, Damgard, Ishai, TCC 2005) that needs no extra round. What a holder wraps is therefore
no longer its stored share, and any set of wrapped values short of all of them is uniformly
random; a fresh session gives fresh masks. ``y_i`` is sealed to the recipient with HPKE
(:data:`HPKE`, RFC 9180, from ``cryptography``) under :func:`wire.custody.export_info`. The
recipient adds the ``y_i`` and checks ``y * G`` against the group public key.

Import. The client deals the outside secret with Feldman VSS and seals each holder's share to
that holder's attested box key (:func:`wire.custody.encode_import_share`). A holder opens its
envelope, checks that it is addressed to it for this import, and checks the share against the
commitment (:class:`ImportShareError` otherwise: nothing sealed); the public key package is then
the commitment's evaluation at every holder. As in a DKG the holder seals its share pending and
acknowledges to every peer, in an envelope, exactly what it sealed (:class:`KeyImportation`):
it commits only when every peer sealed the same commitment, suite, policy and flags.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Iterator, Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey, SealedBox

from enclave.mpc.encoding import lp_join
from enclave.mpc.errors import EncodingError, InvalidShare
from enclave.mpc.groups import Group, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.shamir import lagrange_coefficient
from enclave.mpc.vss import VssCommitment
from enclave.service.dkg import ACK_ROUND, KeyCreationPhase, sealed_digest
from enclave.service.envelope import EnvelopeHeader, Envelopes
from enclave.service.errors import EnvelopeError, ImportShareError, SessionError
from wire.custody import HPKE, decode_import_share, export_info
from wire.errors import MalformedMessageError

__all__ = [
    "KeyImportation",
    "export_mask",
    "import_digest",
    "open_import_share",
    "wrap_share",
]

_MASK_DOMAIN = b"keyshard/export-mask/v1"
_IMPORT_DOMAIN = b"keyshard/import/v1"


def export_mask(
    group: Group,
    me: str,
    box_key: PrivateKey,
    peer_box_keys: Mapping[str, bytes],
    context: bytes,
) -> Scalar:
    """This holder's part of a pseudo-random zero sharing among it and its peers: for each peer
    a scalar both derive from their shared box key and ``context``, added by the lower node id
    and subtracted by the higher, so the parts of all holders sum to zero."""
    total = group.zero()
    for peer, public in sorted(peer_box_keys.items()):
        shared = Box(box_key, PublicKey(public)).shared_key()
        low, high = sorted((me, peer))
        stream = hmac.new(
            bytes(shared),
            lp_join((_MASK_DOMAIN, context, low.encode(), high.encode())),
            hashlib.sha512,
        ).digest()
        mask = group.scalar_from_digest(stream)
        total = total + mask if me == low else total - mask
    return total


def wrap_share(
    share: KeyShare,
    *,
    key_name: str,
    epoch: int,
    session_id: bytes,
    recipient: bytes,
    me: str,
    holders: Sequence[str],
    box_key: PrivateKey,
    peer_box_keys: Mapping[str, bytes],
) -> bytes:
    """``y_i`` (see the module docstring), HPKE-sealed to ``recipient`` (``enc || ct``)."""
    try:
        recipient_key = X25519PublicKey.from_public_bytes(recipient)
    except ValueError:
        raise MalformedMessageError("recipient", "not an X25519 public key") from None
    group = share.group
    gpk = share.group_public_key.to_bytes()
    ident = int(share.identifier)

    def info_at(identifier: int) -> bytes:
        return export_info(
            key_name=key_name,
            group_public_key=gpk,
            epoch=epoch,
            session_id=session_id,
            recipient=recipient,
            holders=holders,
            identifier=identifier,
        )

    # the masks: one context for every holder (position 0); the HPKE info: this holder's place
    shared, info = info_at(0), info_at(ident)
    weight = lagrange_coefficient(group, share.identifier, share.public.identifiers)
    masked = weight * share.secret_share + export_mask(group, me, box_key, peer_box_keys, shared)
    try:
        return HPKE.encrypt(masked.to_bytes(), recipient_key, info=info)
    except ValueError:  # e.g. a small-order recipient key: the DH output is all zero
        raise MalformedMessageError("recipient", "not a usable X25519 public key") from None


def import_digest(
    public: PublicKeyPackage, suite: str, policy: bytes, exportable: bool, session_id: bytes
) -> bytes:
    """What a holder of an imported key acknowledges to its peers it sealed."""
    flags = b"\x01" if exportable else b"\x00"
    return sealed_digest(
        lp_join((_IMPORT_DOMAIN, public.to_bytes(), suite.encode(), policy, flags, session_id))
    )


def open_import_share(
    group: Group,
    *,
    box_key: PrivateKey,
    envelope: bytes,
    key_name: str,
    session_id: bytes,
    me: str,
    identifier: Identifier,
    commitment: VssCommitment,
) -> Scalar:
    """This holder's imported share, opened and checked against the dealer's commitment."""
    try:
        plaintext = SealedBox(box_key).decrypt(envelope)
        name, session, to, encoded = decode_import_share(bytes(plaintext))
        share = group.decode_scalar(encoded)
    except (CryptoError, MalformedMessageError, EncodingError, ValueError, TypeError):
        raise ImportShareError("the imported share does not open with this boot's key") from None
    if (name, to) != (key_name, me) or not hmac.compare_digest(session, session_id):
        raise ImportShareError("the imported share is for another key, import or node")
    try:
        commitment.verify_share(identifier, share)
    except InvalidShare:
        raise ImportShareError("the imported share does not match the commitment") from None
    return share


class KeyImportation:
    """An imported key sealed pending on this node, waiting for every peer's acknowledgement
    (the second phase of :mod:`enclave.service.dkg`, for a key no DKG made)."""

    def __init__(
        self,
        *,
        key_name: str,
        session_id: bytes,
        me: str,
        box_key: PrivateKey,
        peer_box_keys: Mapping[str, bytes],
        digest: bytes,
    ) -> None:
        self.key_name, self.session_id, self.me = key_name, session_id, me
        self._envelopes = Envelopes(me, box_key, peer_box_keys)
        self._peers = tuple(sorted(peer_box_keys))
        self._digest = digest
        self.phase = KeyCreationPhase.SEALED

    def _header(self, recipient: str = "") -> EnvelopeHeader:
        return EnvelopeHeader(self.key_name, self.session_id, ACK_ROUND, self.me, recipient)

    def acknowledge(self) -> dict[str, bytes]:
        return {p: self._envelopes.seal(self._header(p), self._digest) for p in self._peers}

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        if self.phase is not KeyCreationPhase.SEALED:
            raise SessionError(f"key import {self.key_name!r} is not waiting for a commit")
        self.phase = KeyCreationPhase.FAILED
        yield
        self.phase = KeyCreationPhase.DONE

    def commit(self, inbox: Sequence[bytes]) -> None:
        """Every peer sealed the same imported key; any defect fails the import for good."""
        with self._guard():
            seen: set[str] = set()
            for envelope in inbox:
                sender, body = self._envelopes.open(envelope, self._header())
                if sender in seen:
                    raise EnvelopeError(f"a second acknowledgement from {sender}")
                seen.add(sender)
                if not hmac.compare_digest(body, self._digest):
                    raise EnvelopeError(f"{sender} sealed another key")
            missing = [p for p in self._peers if p not in seen]
            if missing:
                raise EnvelopeError(f"acknowledgements lack {', '.join(missing)}")

    def __repr__(self) -> str:
        return f"KeyImportation({self.key_name}, {self.me}, {self.phase.name})"
