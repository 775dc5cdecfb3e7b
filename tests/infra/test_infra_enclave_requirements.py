"""infra/image/requirements-enclave.txt pins exactly what the enclave runs, and nothing for tests.

The enclave image installs that file with ``--no-deps``, so a stale or extra pin ships as measured
code (it changes the PCRs and widens what an auditor must read) without anything importing it.
The runtime closure is computed from pyproject's ``[project].dependencies`` and the installed
packages' own metadata (markers evaluated for this interpreter, the image's CPython 3.11 on Linux);
the pins are compared by name, since versions move when lock-wheels.sh is rerun.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"
PINS = REPO / "infra" / "image" / "requirements-enclave.txt"
PROJECT = "keyshard"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(roots: Iterable[str], *, strict: bool) -> set[str]:
    """Canonical names of ``roots`` and everything they require, per installed metadata.

    ``strict``: a package that is not installed is an error (runtime dependencies must be installed
    to be tested); otherwise it is skipped.
    """
    seen: set[str] = set()
    stack = [Requirement(root) for root in roots]
    while stack:
        req = stack.pop()
        name = _canonical(req.name)
        if name in seen or name == PROJECT:
            continue
        try:
            declared = requires(req.name) or []
        except PackageNotFoundError:
            if strict:
                raise
            continue
        seen.add(name)
        extras = req.extras or {""}
        for line in declared:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in extras):
                stack.append(dep)
    return seen


def _pyproject() -> dict[str, object]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    assert isinstance(project, dict)
    return project


def _runtime_closure() -> set[str]:
    dependencies = _pyproject()["dependencies"]
    assert isinstance(dependencies, list)
    return _closure(dependencies, strict=True)


def _pinned() -> set[str]:
    names = [
        match.group(1)
        for line in PINS.read_text().splitlines()
        if (match := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==", line))
    ]
    assert len(names) == len(set(names)), "a package is pinned twice"
    return {_canonical(name) for name in names}


def test_pins_are_exactly_the_runtime_closure() -> None:
    pinned, runtime = _pinned(), _runtime_closure()
    assert pinned - runtime == set(), "pinned but not needed at runtime"
    assert runtime - pinned == set(), "needed at runtime but not pinned"


def test_no_test_only_package_ships_in_the_image() -> None:
    extras = _pyproject()["optional-dependencies"]
    assert isinstance(extras, dict)
    optional = [req for group in extras.values() for req in group]
    test_only = _closure(optional, strict=False) - _runtime_closure()
    assert "ecdsa" in test_only  # the [dev] extra's pure-Python curve arithmetic: tests only
    assert _pinned() & test_only == set()
