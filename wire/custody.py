"""What export and import bind, as bytes both the client and every node compute the same way.

Export (``keyshard key export``): each holder's masked share is sealed with HPKE (RFC 9180,
base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM) to the recipient's X25519 key,
with :func:`export_info` as HPKE ``info``: the key, its group public key and epoch, the export
session, the recipient, every holder and this holder's position. A wrapped share therefore opens
only for this export of this key at this epoch, as this holder's contribution — never in another
place of the sum.

Import (``keyshard key import``): the client seals each holder's Shamir share to the box key of
that holder's current boot (``crypto_box_seal``) as :func:`encode_import_share`: the share names
the key, the import session and the holder it is for, so an envelope replayed to another node or
into another import is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from wire import cbor
from wire.errors import MalformedMessageError
from wire.hashing import lp_join

__all__ = [
    "HPKE",
    "HPKE_SUITE_NAME",
    "decode_import_share",
    "encode_import_share",
    "export_info",
]

#: The HPKE ciphersuite of exported shares (RFC 9180 identifiers: KEM 0x0020, KDF 0x0001,
#: AEAD 0x0001).
HPKE_SUITE_NAME = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM"
#: That suite, from ``cryptography`` (47 and later implement RFC 9180's single-shot base mode).
HPKE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_128_GCM)
_EXPORT_DOMAIN = b"keyshard/export/v1"
_IMPORT_VERSION = 1
_IMPORT_FIELDS = frozenset({"v", "key", "session", "to", "share"})


def export_info(
    *,
    key_name: str,
    group_public_key: bytes,
    epoch: int,
    session_id: bytes,
    recipient: bytes,
    holders: Sequence[str],
    identifier: int,
) -> bytes:
    """HPKE ``info`` of one holder's wrapped share (``holders``: every holder, sorted)."""
    return lp_join(
        (
            _EXPORT_DOMAIN,
            key_name.encode(),
            group_public_key,
            epoch.to_bytes(4, "big"),
            session_id,
            recipient,
            lp_join(h.encode() for h in sorted(holders)),
            identifier.to_bytes(2, "big"),
        )
    )


def encode_import_share(key_name: str, session_id: bytes, node_id: str, share: bytes) -> bytes:
    """The plaintext sealed to one holder's box key: its share, and where it belongs."""
    return cbor.dumps(
        {
            "v": _IMPORT_VERSION,
            "key": key_name,
            "session": session_id,
            "to": node_id,
            "share": share,
        }
    )


def decode_import_share(data: bytes) -> tuple[str, bytes, str, bytes]:
    """``(key name, session id, node id, share bytes)``; :class:`MalformedMessageError` else."""
    value = cbor.loads_map(
        data, what="import share", fields=_IMPORT_FIELDS, version=_IMPORT_VERSION
    )
    key, session, to, share = value["key"], value["session"], value["to"], value["share"]
    if not (
        type(key) is str and type(session) is bytes and type(to) is str and type(share) is bytes
    ):
        raise MalformedMessageError("import share", "wrong field types")
    return key, session, to, share
