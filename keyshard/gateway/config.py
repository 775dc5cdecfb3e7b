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

An optional ``"xks"`` section serves AWS KMS's External Key Store proxy API
(:mod:`keyshard.gateway.xks_api`) under ``uri_prefix``, with its own SigV4 credentials (the ones
configured in KMS's custom key store; any of them verifies, so two allow rotation) and its
external keys, each a cluster key (Ed25519) with the usages it may serve::

    "xks": {"uri_prefix": "/keyshard/xks",
            "access_keys": [{"id": "<20-30 chars A-Z 2-7>", "secret": "<base64, 43-64 chars>"}],
            "keys": [{"id": "<externalKeyId>", "cluster_key": "<name>",
                      "usage": ["ENCRYPT", "DECRYPT"]}]}
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AccessKey",
    "ConfigError",
    "GatewayConfig",
    "XksConfig",
    "XksKey",
    "new_access_key",
    "new_xks_credentials",
]

_ACCESS_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_ACCOUNT = re.compile(r"\d{12}")
_XKS_PREFIX = re.compile(r"(/[a-zA-Z0-9_-]+)*")
_XKS_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
XKS_USAGES = frozenset({"ENCRYPT", "DECRYPT"})


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


def new_xks_credentials() -> AccessKey:
    """XKS credentials in the shape the specification asks: a 26-character Base32 access key
    id and a Base64 secret of 256 random bits (44 characters)."""
    key_id = base64.b32encode(secrets.token_bytes(20)).decode()[:26]
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    return AccessKey(key_id, secret)


@dataclass(frozen=True, slots=True)
class XksKey:
    """An external key: its XKS id, the cluster key behind it, and the usages it serves."""

    key_id: str
    cluster_key: str
    usage: frozenset[str]

    def __post_init__(self) -> None:
        if not _XKS_KEY_ID.fullmatch(self.key_id):
            raise ConfigError(f"XKS key id {self.key_id!r}: 1-128 of A-Z a-z 0-9 . _ -")
        if not self.usage or not self.usage <= XKS_USAGES:
            raise ConfigError(f"XKS key {self.key_id}: usage is ENCRYPT and/or DECRYPT")

    def to_json(self) -> dict[str, object]:
        return {"id": self.key_id, "cluster_key": self.cluster_key, "usage": sorted(self.usage)}


@dataclass(frozen=True, slots=True)
class XksConfig:
    uri_prefix: str
    access_keys: tuple[AccessKey, ...]
    keys: tuple[XksKey, ...]

    def __post_init__(self) -> None:
        if not _XKS_PREFIX.fullmatch(self.uri_prefix) or len(self.uri_prefix) > 116:
            raise ConfigError("xks.uri_prefix is /-separated letters, digits, - and _")
        ids = [k.key_id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise ConfigError("XKS key ids must be distinct")

    def key(self, key_id: str) -> XksKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)

    def secret_of(self, access_key_id: str) -> str | None:
        return next((k.secret for k in self.access_keys if k.access_key_id == access_key_id), None)

    def to_json(self) -> dict[str, object]:
        return {
            "uri_prefix": self.uri_prefix,
            "access_keys": [{"id": k.access_key_id, "secret": k.secret} for k in self.access_keys],
            "keys": [k.to_json() for k in self.keys],
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> XksConfig:
        access = raw["access_keys"]
        keys = raw["keys"]
        if not isinstance(access, list) or not isinstance(keys, list):
            raise TypeError("xks.access_keys and xks.keys are lists")
        return cls(
            str(raw["uri_prefix"]),
            tuple(AccessKey(str(k["id"]), str(k["secret"])) for k in access),
            tuple(
                XksKey(str(k["id"]), str(k["cluster_key"]), frozenset(str(u) for u in k["usage"]))
                for k in keys
            ),
        )


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    region: str
    account: str
    access_keys: tuple[AccessKey, ...]
    xks: XksConfig | None = None

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
        data: dict[str, object] = {
            "version": 1,
            "region": self.region,
            "account": self.account,
            "access_keys": [k.to_json() for k in self.access_keys],
        }
        if self.xks is not None:
            data["xks"] = self.xks.to_json()
        return json.dumps(data, indent=2)

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
            xks = XksConfig.from_json(raw["xks"]) if raw.get("xks") is not None else None
            return cls(str(raw["region"]), str(raw["account"]), keys, xks)
        except (KeyError, TypeError) as error:
            raise ConfigError(f"{path}: missing or malformed field {error}") from None
