"""A typed view of the Terraform tree for the infrastructure tests.

python-hcl2 (>= 7) returns string literals with their quotes (``'"Allow"'``), expressions wrapped
as ``"${...}"``, block labels quoted, and bookkeeping keys (``__is_block__``, ``__comments__``).
:func:`load_module` normalises that once, so the tests read like the HCL they check: literals are
plain strings, expressions stay ``${...}`` strings, blocks are dicts, repeated blocks are lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "infra" / "terraform"
MODULES = TERRAFORM / "modules"
ENVS = TERRAFORM / "envs"

_BOOKKEEPING = frozenset(
    {"__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__"}
)

Json = Any


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text[1:-1]
        return value if isinstance(value, str) else text[1:-1]
    return text


def normalise(value: Json) -> Json:
    """Strip python-hcl2's quoting and bookkeeping, recursively."""
    if isinstance(value, str):
        return _unquote(value)
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): normalise(v) for k, v in value.items() if k not in _BOOKKEEPING}
    return value


def as_list(value: Json) -> list[Json]:
    """A block that may appear once (dict) or several times (list) as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass
class Module:
    """All top-level blocks of one Terraform directory, keyed the way HCL names them."""

    path: Path
    variables: dict[str, dict[str, Json]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Json]] = field(default_factory=dict)
    locals: dict[str, Json] = field(default_factory=dict)
    resources: dict[tuple[str, str], dict[str, Json]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Json]] = field(default_factory=dict)
    modules: dict[str, dict[str, Json]] = field(default_factory=dict)

    def resources_of(self, kind: str) -> dict[str, dict[str, Json]]:
        return {name: body for (k, name), body in self.resources.items() if k == kind}

    def data_of(self, kind: str) -> dict[str, dict[str, Json]]:
        return {name: body for (k, name), body in self.data.items() if k == kind}


def _named(blocks: Json) -> list[tuple[str, dict[str, Json]]]:
    out = []
    for block in as_list(blocks):
        for name, body in block.items():
            out.append((name, body))
    return out


def load_module(path: Path) -> Module:
    module = Module(path=path)
    for tf in sorted(path.glob("*.tf")):
        with tf.open(encoding="utf-8") as handle:
            parsed = normalise(hcl2.load(handle))
        for name, body in _named(parsed.get("variable")):
            module.variables[name] = body
        for name, body in _named(parsed.get("output")):
            module.outputs[name] = body
        for block in as_list(parsed.get("locals")):
            module.locals.update(block)
        for kind, named in _named(parsed.get("resource")):
            for name, body in named.items():
                module.resources[(kind, name)] = body
        for kind, named in _named(parsed.get("data")):
            for name, body in named.items():
                module.data[(kind, name)] = body
        for name, body in _named(parsed.get("module")):
            module.modules[name] = body
    return module


def node_module_dirs() -> list[Path]:
    return sorted(p for p in MODULES.iterdir() if p.is_dir() and p.name.startswith("node-"))


def all_module_dirs() -> list[Path]:
    return sorted({tf.parent for tf in TERRAFORM.rglob("*.tf") if ".terraform" not in tf.parts})


def conditions(statement: dict[str, Json]) -> list[dict[str, Json]]:
    """Static ``condition`` blocks and the content of ``dynamic "condition"`` blocks."""
    found = [c for c in as_list(statement.get("condition")) if isinstance(c, dict)]
    for dynamic in as_list(statement.get("dynamic")):
        if isinstance(dynamic, dict) and "condition" in dynamic:
            found.extend(as_list(dynamic["condition"].get("content")))
    return found


def statements(document: dict[str, Json]) -> list[dict[str, Json]]:
    return [s for s in as_list(document.get("statement")) if isinstance(s, dict)]


def principal_identifiers(statement: dict[str, Json]) -> list[str]:
    ids: list[str] = []
    for principal in as_list(statement.get("principals")):
        identifiers = principal.get("identifiers")
        ids.extend(as_list(identifiers) if isinstance(identifiers, list) else [identifiers])
        if principal.get("type") == "*":
            ids.append("*")
    return [str(i) for i in ids]
