"""The emulated KMS's keys on disk, so a dev cluster's keys survive ``dev down`` / ``dev up``.

moto keeps KMS keys in the memory of the cloud process. A node's sealed state is sealed under a
data key that only its KMS key can decrypt, so when the process ends every key the cluster held
would be lost with it. This module writes moto's symmetric keys — id, ARN, key material, policy,
state, tags — to one JSON file in the cluster directory (mode 0600, replaced atomically) after
every request that may change them, and puts them back into moto when the cloud process starts.

Emulation only: the file holds the KMS keys' material in the clear, exactly as the emulated KMS
holds it in memory; a real cluster's KMS keys never leave AWS. Asymmetric KMS keys (which no
cluster creates) are not kept.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["STATE_FILE", "KmsKeyState"]

log = logging.getLogger("keyshard.dev.kms")

#: The file's name in a cluster directory.
STATE_FILE = "kms-state.json"
_VERSION = 1
_SYMMETRIC = "SYMMETRIC_DEFAULT"


def _backends() -> Iterator[Any]:
    from moto.kms.models import kms_backends  # noqa: PLC0415 -- moto is an emulation-only dependency

    for account in list(kms_backends.values()):
        yield from list(account.values())


class KmsKeyState:
    """Saves and restores the emulated KMS's keys in ``path`` (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # the KMS serves requests on many threads

    def save(self) -> int:
        """Write every symmetric key of moto's KMS backends; how many."""
        with self._lock:
            keys = [
                _key_record(backend, key)
                for backend in _backends()
                for key in list(backend.keys.values())
                if key.key_spec == _SYMMETRIC
            ]
            temporary = self.path.with_suffix(".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"v": _VERSION, "keys": keys}, handle, indent=1)
            temporary.replace(self.path)
            return len(keys)

    def restore(self) -> int:
        """Put the saved keys back into moto (nothing saved: nothing to do); how many."""
        from moto.kms.models import Key, kms_backends  # noqa: PLC0415 -- emulation only

        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        if saved.get("v") != _VERSION:
            raise ValueError(f"{self.path}: unknown emulated KMS state version")
        for record in saved["keys"]:
            backend = kms_backends[record["account_id"]][record["region"]]
            key = Key(  # type: ignore[abstract]
                record["policy"],
                record["key_usage"],
                _SYMMETRIC,
                record["description"],
                record["account_id"],
                record["region"],
            )
            key.id, key.arn = record["id"], record["arn"]
            key.key_material = base64.b64decode(record["key_material"])
            key.key_state, key.enabled = record["key_state"], record["enabled"]
            key.creation_date = record["creation_date"]
            deletion = record["deletion_date"]
            key.deletion_date = None if deletion is None else datetime.fromisoformat(deletion)
            backend.keys[key.id] = key
            if record["tags"]:
                backend.tagger.tag_resource(key.id, record["tags"])
        log.info("emulated KMS keys restored", extra={"fields": {"keys": len(saved["keys"])}})
        return len(saved["keys"])


def _key_record(backend: Any, key: Any) -> dict[str, Any]:
    return {
        "id": key.id,
        "arn": key.arn,
        "account_id": key.account_id,
        "region": key.region,
        "policy": key.policy,
        "key_usage": key.key_usage,
        "description": key.description,
        "key_material": base64.b64encode(key.key_material).decode("ascii"),
        "key_state": key.key_state,
        "enabled": key.enabled,
        "creation_date": key.creation_date,
        "deletion_date": None if key.deletion_date is None else key.deletion_date.isoformat(),
        "tags": backend.tagger.list_tags_for_resource(key.id)["Tags"],
    }
