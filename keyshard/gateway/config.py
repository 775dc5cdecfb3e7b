"""The gateway's configuration: its region and account, and who may call it with what.

Format (JSON, version 1; the file holds secret access keys, so it is written 0600)::

    {"version": 1, "region": "us-east-1", "account": "000000000000",
     "access_keys": [{"id": "AKIA...", "secret": "...",
                      "keys": ["*"] | ["<key id>", "alias/<name>", ...],
                      "operations": ["*"] | ["Sign", "Verify", "GetPublicKey", ...]}]}

Each access key is allowed the listed KMS operations (API names) on the listed keys: ``"*"`` for
all; a key id (UUID) for that key; ``alias/NAME`` for the key the alias names *at the time of the
call*. ``CreateKey``, ``ListKeys`` and ``ListAliases`` concern no existing key: the operation alone
decides. The gateway knows nothing of AWS IAM; this table is its whole policy.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AccessKey", "ConfigError", "GatewayConfig", "new_access_key"]

_ACCESS_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_ACCOUNT = re.compile(r"\d{12}")


class ConfigError(Exception):
    """The configuration file is missing, malformed or inconsistent (which field, and why)."""


@dataclass(frozen=True, slots=True)
class AccessKey:
    """One caller: its access key id, secret, and what it may do. The secret never prints."""

    access_key_id: str
    secret: str = field(repr=False)
    keys: frozenset[str] = frozenset({"*"})
    operations: frozenset[str] = frozenset({"*"})

    def allows_operation(self, operation: str) -> bool:
        return "*" in self.operations or operation in self.operations

    def allows_key(self, key_id: str, aliases: Iterable[str]) -> bool:
        return "*" in self.keys or key_id in self.keys or any(a in self.keys for a in aliases)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.access_key_id,
            "secret": self.secret,
            "keys": sorted(self.keys),
            "operations": sorted(self.operations),
        }


def new_access_key(keys: Iterable[str] = ("*",), operations: Iterable[str] = ("*",)) -> AccessKey:
    """A fresh access key in AWS's shape (``AKIA`` + 16 characters; a 40-character secret)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    key_id = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    return AccessKey(key_id, secrets.token_urlsafe(30), frozenset(keys), frozenset(operations))


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    region: str
    account: str
    access_keys: tuple[AccessKey, ...]

    def __post_init__(self) -> None:
        if not _REGION.fullmatch(self.region):
            raise ConfigError(f"region {self.region!r} is not an AWS region name")
        if not _ACCOUNT.fullmatch(self.account):
            raise ConfigError("account must be 12 digits")
        ids = [k.access_key_id for k in self.access_keys]
        if len(set(ids)) != len(ids):
            raise ConfigError("access key ids must be distinct")
        for key in self.access_keys:
            if not _ACCESS_KEY_ID.fullmatch(key.access_key_id):
                raise ConfigError(f"access key id {key.access_key_id!r} is malformed")
            if len(key.secret) < 16:
                raise ConfigError(
                    f"the secret of {key.access_key_id} is shorter than 16 characters"
                )

    def access_key(self, access_key_id: str) -> AccessKey | None:
        for key in self.access_keys:
            if key.access_key_id == access_key_id:
                return key
        return None

    def secret_of(self, access_key_id: str) -> str | None:
        key = self.access_key(access_key_id)
        return None if key is None else key.secret

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "region": self.region,
                "account": self.account,
                "access_keys": [k.to_json() for k in self.access_keys],
            },
            indent=2,
        )

    def save(self, path: Path) -> None:
        """Write the file 0600 (it holds secrets), replacing any older one atomically."""
        temporary = path.with_suffix(".tmp")
        temporary.touch(mode=0o600)
        temporary.chmod(0o600)
        temporary.write_text(self.to_json(), encoding="utf-8")
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> GatewayConfig:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"cannot read {path}: {error.strerror}") from None
        except ValueError:
            raise ConfigError(f"{path} is not JSON") from None
        try:
            if raw["version"] != 1:
                raise ConfigError(f"unknown gateway config version {raw['version']!r}")
            keys = tuple(
                AccessKey(
                    str(k["id"]),
                    str(k["secret"]),
                    frozenset(str(x) for x in k.get("keys", ["*"])),
                    frozenset(str(x) for x in k.get("operations", ["*"])),
                )
                for k in raw["access_keys"]
            )
            return cls(str(raw["region"]), str(raw["account"]), keys)
        except (KeyError, TypeError) as error:
            raise ConfigError(f"{path}: missing or malformed field {error}") from None
