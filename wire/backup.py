"""What a share backup's verifiable encryptions are bound to: the one label nodes and clients share.

Each holder's publicly verifiable encryption (:mod:`enclave.mpc.pve`) proves a statement whose
label is :func:`backup_label` of the key as the holder holds it: name, suite, the canonical
public key package (group key, threshold, every verification share), epoch and approval policy
(its canonical encoding, empty for none: a restored key keeps its policy, and a file whose policy
was stripped or changed no longer verifies). The node computes
it from its sealed key, the verifier of a backup file from the file's fields; an encryption made
for another key, another epoch (before a refresh) or another committee never verifies.
"""

from __future__ import annotations

from wire.hashing import lp_join

__all__ = ["backup_label"]

_LABEL_DOMAIN = b"keyshard/backup/v1"


def backup_label(
    key_name: str, suite: str, public_key_package: bytes, epoch: int, policy: bytes
) -> bytes:
    """The domain-separated, length-prefixed label of one key's backup."""
    return lp_join(
        (
            _LABEL_DOMAIN,
            key_name.encode(),
            suite.encode(),
            public_key_package,
            epoch.to_bytes(8, "big"),
            policy,
        )
    )
