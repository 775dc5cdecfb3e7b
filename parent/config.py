"""The parent's configuration file (JSON), validated in full before anything starts.

The mode (``real`` | ``emulated``) is read here, once, and decides the four seams (transport,
launcher, credentials; the NSM and KMS endpoint belong to the enclave); nothing deeper in the parent
branches on it. Every error names the offending field by its dotted path. Example (emulated)::

    {
      "mode": "emulated",
      "runtime_dir": "/tmp/ks-node1",
      "enclave_cid": 16,
      "node_id": "node-1",
      "inbound":  [{"name": "api", "listen": "127.0.0.1:7000", "enclave_port": 5000}],
      "outbound": [{"name": "kms", "port": 8443, "target": "127.0.0.1:4566"}],
      "allow":    ["127.0.0.1:4566"],
      "limits":   {"max_connections": 256, "idle_timeout": 300, "connect_timeout": 10,
                   "first_byte_timeout": 10},
      "blob_store": {"kind": "local", "dir": "/var/lib/keyshard/node1"},
      "credentials": {"kind": "static", "access_key_id": "AKIDEMU", "secret_access_key": "x",
                      "session_token": "x", "expiration": "2099-01-01T00:00:00Z"},
      "launcher": {"kind": "child", "argv": ["python", "-m", "enclave"], "workdir": "/tmp/ks-node1/e",
                   "env": {"KEYSHARD_CID": "16"}}
    }

Real mode uses ``"launcher": {"kind": "nitro", "eif_path": ..., "cpu_count": 2, "memory_mib": 2048}``,
``"credentials": {"kind": "imds"}`` and ``"blob_store": {"kind": "s3", "bucket": ..., "prefix": ...}``.
``node_id`` is the node of the image's cluster table this enclave runs as, handed to the enclave at
boot over host services (``GetLaunch``): every node runs the same image, so this is the one per-node
value. The enclave refuses an id its table does not list; without ``node_id`` it cannot boot.
``"operations": {"listen": "0.0.0.0:9100", "status_port": 5000}`` (optional) serves HTTP
``/metrics``, ``/health`` and ``/ready`` (:mod:`parent.operations`), asking the enclave's status
port (``status_port``, default 5000) for its telemetry.
Every outbound target must also appear in ``allow`` (listing it twice is deliberate: the allow-list is
the reviewed security boundary, the routes are plumbing).
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parent.errors import ConfigError
from parent.proxy import ProxyLimits
from transport.address import FIRST_ENCLAVE_CID, PARENT_CID, U32_MAX, VsockAddress
from transport.errors import AddressError
from transport.hostproto import HOST_SERVICES_PORT
from transport.unix import UnixSocketTransport

_NODE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""The enclave's node id syntax (``enclave.config``); checked here too so a typo fails at start."""
_PORT_RE = re.compile(r"0|[1-9][0-9]{0,4}")
"""A TCP port as canonical ASCII decimal (checked before ``int()`` sees the text)."""


class Mode(enum.Enum):
    REAL = "real"
    EMULATED = "emulated"


@dataclass(frozen=True, slots=True)
class InboundSpec:
    name: str
    listen_host: str
    listen_port: int
    enclave_port: int


@dataclass(frozen=True, slots=True)
class OutboundSpec:
    name: str
    port: int
    host: str
    target_port: int


@dataclass(frozen=True, slots=True)
class LocalStoreSpec:
    directory: Path


@dataclass(frozen=True, slots=True)
class S3StoreSpec:
    bucket: str
    prefix: str
    region: str | None
    endpoint_url: str | None


@dataclass(frozen=True, slots=True)
class ImdsSpec:
    url: str


@dataclass(frozen=True, slots=True)
class StaticCredentialsSpec:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: str


@dataclass(frozen=True, slots=True)
class NitroSpec:
    eif_path: Path
    cpu_count: int
    memory_mib: int
    enclave_name: str | None


@dataclass(frozen=True, slots=True)
class ChildSpec:
    argv: tuple[str, ...]
    workdir: Path
    env: dict[str, str]
    inherit: tuple[str, ...] | None
    output: Path | None


@dataclass(frozen=True, slots=True)
class OperationsSpec:
    listen_host: str
    listen_port: int
    status_port: int = 5000


@dataclass(frozen=True, slots=True)
class ParentConfig:
    mode: Mode
    runtime_dir: Path | None
    enclave_cid: int
    node_id: str | None
    inbound: tuple[InboundSpec, ...]
    outbound: tuple[OutboundSpec, ...]
    allow: frozenset[tuple[str, int]]
    limits: ProxyLimits
    blob_store: LocalStoreSpec | S3StoreSpec
    credentials: ImdsSpec | StaticCredentialsSpec | None
    launcher: NitroSpec | ChildSpec | None
    operations: OperationsSpec | None = None


class _Fields:
    """Typed access to one JSON object; unknown keys are refused when :meth:`done` is called."""

    def __init__(self, raw: object, path: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(path or "<root>", "must be an object")
        self._raw: dict[str, Any] = raw
        self._path = path
        self._seen: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def get(self, key: str, kind: type, *, default: Any = ..., nullable: bool = False) -> Any:
        self._seen.add(key)
        if key not in self._raw:
            if default is ...:
                raise ConfigError(self._name(key), "is required")
            return default
        value = self._raw[key]
        if value is None and nullable:
            return None
        if kind is int and (type(value) is not int):
            raise ConfigError(self._name(key), "must be an integer")
        if kind is float and type(value) not in (int, float):
            raise ConfigError(self._name(key), "must be a number")
        if kind not in (int, float) and not isinstance(value, kind):
            raise ConfigError(self._name(key), f"must be a {kind.__name__}")
        return value

    def text(self, key: str, **kw: Any) -> Any:
        value = self.get(key, str, **kw)
        if value == "":
            raise ConfigError(self._name(key), "must not be empty")
        return value

    def port(self, key: str, *, low: int = 1, high: int = 65535) -> int:
        value: int = self.get(key, int)
        if not low <= value <= high:
            raise ConfigError(self._name(key), f"must be in {low}..{high}")
        return value

    def done(self) -> None:
        extra = sorted(set(self._raw) - self._seen)
        if extra:
            raise ConfigError(self._name(extra[0]), "unknown field")


def _host_port(text: str, where: str, *, allow_zero: bool = False) -> tuple[str, int]:
    """Parse ``host:port`` (``[v6]:port`` too); port 0 (any free port) only where allowed."""
    host, sep, port = text.rpartition(":")
    low = 0 if allow_zero else 1
    # ASCII decimal only: str.isdigit() also takes other scripts' digits, which int() accepts,
    # so the allow list a reviewer reads would not be the one enforced.
    if not sep or not host or not _PORT_RE.fullmatch(port) or not low <= int(port) <= 65535:
        raise ConfigError(where, f"{text!r} is not host:port")
    return host.strip("[]").lower(), int(port)


def _objects(raw: object, path: str) -> list[_Fields]:
    if not isinstance(raw, list):
        raise ConfigError(path, "must be a list")
    return [_Fields(item, f"{path}[{i}]") for i, item in enumerate(raw)]


def parse_config(raw: object) -> ParentConfig:
    """Validate a decoded JSON document; raises :class:`ConfigError` naming the first bad field."""
    root = _Fields(raw, "")
    try:
        mode = Mode(root.get("mode", str))
    except ValueError:
        raise ConfigError("mode", "must be 'real' or 'emulated'") from None
    runtime = root.get("runtime_dir", str, default=None, nullable=True)
    if mode is Mode.EMULATED and not runtime:
        raise ConfigError(
            "runtime_dir", "is required in emulated mode (the Unix sockets live there)"
        )
    cid = root.port("enclave_cid", low=FIRST_ENCLAVE_CID, high=U32_MAX - 1)
    node_id = root.get("node_id", str, default=None, nullable=True)
    if node_id is not None and not _NODE_ID_RE.fullmatch(node_id):
        raise ConfigError("node_id", "must be 1-64 of [A-Za-z0-9._-], starting alphanumeric")

    inbound = []
    for f in _objects(root.get("inbound", list, default=[]), "inbound"):
        host, port = _host_port(f.text("listen"), f._name("listen"), allow_zero=True)
        inbound.append(
            InboundSpec(f.text("name"), host, port, f.port("enclave_port", high=U32_MAX - 1))
        )
        f.done()
    outbound = []
    for f in _objects(root.get("outbound", list, default=[]), "outbound"):
        host, port = _host_port(f.text("target"), f._name("target"))
        outbound.append(OutboundSpec(f.text("name"), f.port("port", high=U32_MAX - 1), host, port))
        f.done()
    names = [r.name for r in inbound] + [r.name for r in outbound]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError("inbound/outbound", f"route name {name!r} is used twice")
    allow_raw = root.get("allow", list, default=[])
    allow = frozenset(_host_port(str(a), f"allow[{i}]") for i, a in enumerate(allow_raw))
    for i, spec in enumerate(outbound):
        if (spec.host, spec.target_port) not in allow:
            raise ConfigError(f"outbound[{i}].target", "is not in the allow list")

    limits = _limits(root.get("limits", dict, default={}))
    if runtime:
        _check_runtime_dir(
            Path(runtime),
            [VsockAddress(PARENT_CID, HOST_SERVICES_PORT)]
            + [VsockAddress(PARENT_CID, r.port) for r in outbound]
            + [VsockAddress(cid, r.enclave_port) for r in inbound],
        )

    store = _store(root.get("blob_store", dict))

    credentials = _credentials(root.get("credentials", dict, default=None, nullable=True), mode)
    launcher = _launcher(root.get("launcher", dict, default=None, nullable=True), mode)
    operations = _operations(root.get("operations", dict, default=None, nullable=True))
    root.done()
    return ParentConfig(
        mode=mode,
        runtime_dir=Path(runtime) if runtime else None,
        enclave_cid=cid,
        node_id=node_id,
        inbound=tuple(inbound),
        outbound=tuple(outbound),
        allow=allow,
        limits=limits,
        blob_store=store,
        credentials=credentials,
        launcher=launcher,
        operations=operations,
    )


def _operations(raw: object) -> OperationsSpec | None:
    if raw is None:
        return None
    f = _Fields(raw, "operations")
    host, port = _host_port(f.text("listen"), "operations.listen", allow_zero=True)
    status_port: int = f.get("status_port", int, default=5000)
    if not 1 <= status_port <= U32_MAX - 1:
        raise ConfigError("operations.status_port", f"must be in 1..{U32_MAX - 1}")
    f.done()
    return OperationsSpec(host, port, status_port)


def _check_runtime_dir(runtime: Path, addresses: list[VsockAddress]) -> None:
    """Every socket path this parent will use must fit ``sun_path`` (fail now, not at listen)."""
    transport = UnixSocketTransport(runtime)
    for addr in addresses:
        try:
            transport.path_for(addr)
        except AddressError as exc:
            raise ConfigError("runtime_dir", str(exc)) from None


def _limits(raw: object) -> ProxyLimits:
    f = _Fields(raw, "limits")
    try:
        limits = ProxyLimits(
            max_connections=f.get("max_connections", int, default=256),
            idle_timeout=f.get("idle_timeout", float, default=300.0, nullable=True),
            connect_timeout=f.get("connect_timeout", float, default=10.0),
            first_byte_timeout=f.get("first_byte_timeout", float, default=10.0, nullable=True),
        )
    except ConfigError as exc:
        raise ConfigError(f"limits.{exc.field}", exc.reason) from None
    f.done()
    return limits


def _store(raw: object) -> LocalStoreSpec | S3StoreSpec:
    f = _Fields(raw, "blob_store")
    kind = f.text("kind")
    store: LocalStoreSpec | S3StoreSpec
    if kind == "local":
        store = LocalStoreSpec(Path(f.text("dir")))
    elif kind == "s3":
        store = S3StoreSpec(
            f.text("bucket"),
            f.get("prefix", str, default=""),
            f.get("region", str, default=None, nullable=True),
            f.get("endpoint_url", str, default=None, nullable=True),
        )
    else:
        raise ConfigError("blob_store.kind", "must be 'local' or 's3'")
    f.done()
    return store


def _credentials(raw: object, mode: Mode) -> ImdsSpec | StaticCredentialsSpec | None:
    if raw is None:
        return None
    f = _Fields(raw, "credentials")
    kind = f.text("kind")
    spec: ImdsSpec | StaticCredentialsSpec
    if kind == "imds":
        spec = ImdsSpec(f.get("url", str, default="http://169.254.169.254"))
    elif kind == "static":
        if mode is Mode.REAL:
            raise ConfigError("credentials.kind", "static credentials are for emulated mode only")
        spec = StaticCredentialsSpec(
            f.text("access_key_id"),
            f.text("secret_access_key"),
            f.text("session_token"),
            f.text("expiration"),
        )
    else:
        raise ConfigError("credentials.kind", "must be 'imds' or 'static'")
    f.done()
    return spec


def _launcher(raw: object, mode: Mode) -> NitroSpec | ChildSpec | None:
    if raw is None:
        return None
    f = _Fields(raw, "launcher")
    kind = f.text("kind")
    spec: NitroSpec | ChildSpec
    if kind == "nitro":
        if mode is not Mode.REAL:
            raise ConfigError("launcher.kind", "nitro launches only in real mode")
        spec = NitroSpec(
            Path(f.text("eif_path")),
            f.port("cpu_count", low=1, high=1024),
            f.port("memory_mib", low=64, high=U32_MAX),
            f.get("enclave_name", str, default=None, nullable=True),
        )
        if "debug_mode" in f._raw:
            raise ConfigError("launcher.debug_mode", "debug mode is never used")
    elif kind == "child":
        if mode is not Mode.EMULATED:
            raise ConfigError("launcher.kind", "child launches only in emulated mode")
        argv = f.get("argv", list)
        if not argv or not all(isinstance(a, str) and a for a in argv):
            raise ConfigError("launcher.argv", "must be a non-empty list of strings")
        env = f.get("env", dict, default={})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ConfigError("launcher.env", "must map strings to strings")
        inherit = f.get("inherit", list, default=None, nullable=True)
        if inherit is not None and not all(isinstance(n, str) for n in inherit):
            raise ConfigError("launcher.inherit", "must be a list of variable names")
        output = f.get("output", str, default=None, nullable=True)
        spec = ChildSpec(
            tuple(argv),
            Path(f.text("workdir")),
            dict(env),
            tuple(inherit) if inherit is not None else None,
            Path(output) if output else None,
        )
    else:
        raise ConfigError("launcher.kind", "must be 'nitro' or 'child'")
    f.done()
    return spec


def load_config(path: Path) -> ParentConfig:
    """Read and validate a JSON config file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigError(str(path), f"not valid JSON: {exc}") from None
    return parse_config(raw)
