"""What the gateway knows of its keys beyond the cluster: KMS ids, specs, usages and aliases.

The cluster knows a key by name, suite and shares; KMS callers know it by a UUID, an ARN or an
alias, with a key spec, a usage and a description. This registry is that mapping, kept in one JSON
file the gateway rewrites atomically after each change. It holds nothing secret: losing it loses
names, never key material (the cluster key ``kms-<uuid>`` stays, and is re-registered by hand).

The cluster key of KMS key ``<uuid>`` is named ``kms-<uuid>``, so ``keyshard key list`` shows
which keys the gateway made.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["ALIAS_PATTERN", "KeyRecord", "Registry", "RegistryError"]

ALIAS_PATTERN = re.compile(r"alias/[a-zA-Z0-9/_-]{1,250}")
_CLUSTER_PREFIX = "kms-"


class RegistryError(Exception):
    """The registry file is unreadable or malformed."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    key_spec: str
    key_usage: str
    description: str
    created: float

    @property
    def cluster_name(self) -> str:
        return _CLUSTER_PREFIX + self.key_id


class Registry:
    """Keys and aliases, persisted to ``path`` (created on first write)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._keys: dict[str, KeyRecord] = {}
        self._aliases: dict[str, str] = {}
        if path.exists():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                self._keys = {k["key_id"]: KeyRecord(**k) for k in raw["keys"]}
                self._aliases = {str(a): str(k) for a, k in raw["aliases"].items()}
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise RegistryError(f"cannot read the key registry {path}: {error}") from None

    @staticmethod
    def new_key_id() -> str:
        return str(uuid.uuid4())

    def add(self, record: KeyRecord) -> None:
        self._keys[record.key_id] = record
        self._save()

    def get(self, key_id: str) -> KeyRecord | None:
        return self._keys.get(key_id)

    def __iter__(self) -> Iterator[KeyRecord]:
        return iter(sorted(self._keys.values(), key=lambda r: (r.created, r.key_id)))

    def aliases(self) -> dict[str, str]:
        """Alias name -> key id, sorted by name."""
        return dict(sorted(self._aliases.items()))

    def aliases_of(self, key_id: str) -> list[str]:
        return sorted(a for a, k in self._aliases.items() if k == key_id)

    def target(self, alias: str) -> str | None:
        return self._aliases.get(alias)

    def set_alias(self, alias: str, key_id: str) -> None:
        self._aliases[alias] = key_id
        self._save()

    def delete_alias(self, alias: str) -> None:
        del self._aliases[alias]
        self._save()

    def _save(self) -> None:
        data = {
            "version": 1,
            "keys": [asdict(r) for r in self],
            "aliases": self.aliases(),
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=2), encoding="utf-8")
        temporary.replace(self._path)
