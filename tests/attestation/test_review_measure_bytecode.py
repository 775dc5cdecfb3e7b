"""Review finding: sourceless bytecode in an image is executable code, so it cannot go unmeasured.

``measure_image`` skipped every ``.pyc`` / ``.pyo`` as a build dropping. Python imports a ``.pyc``
that sits in a package directory *without* a ``.py`` (sourceless import), so a file the
measurement ignored could add a module the enclave runs while PCR0 stayed that of the released
image. Such a file is now refused (``MeasurementError`` naming it). Bytecode under
``__pycache__`` stays outside the measurement (it is a cache of measured sources; the runtime must
not read an image's caches, see the module docstring).
"""

from __future__ import annotations

import importlib.util
import marshal
import sys
from pathlib import Path

import pytest

from attestation.errors import MeasurementError
from attestation.measure import measure_image

BASE = {
    "wire/__init__.py": b"",
    "transport/__init__.py": b"",
    "attestation/__init__.py": b"",
    "enclave/__init__.py": b"",
    "enclave/boot.py": b"STAGE = 'measured'\n",
}


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def _bytecode(source: str) -> bytes:
    """A real CPython .pyc for ``source`` (what an attacker would plant)."""
    code = compile(source, "planted", "exec")
    return importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code)


def test_sourceless_bytecode_is_importable(tmp_path: Path) -> None:
    """The premise: Python runs a lone .pyc in a package directory."""
    root = _tree(tmp_path / "img", {"rvwpkg/__init__.py": b""})
    (root / "rvwpkg" / "planted.pyc").write_bytes(_bytecode("PAYLOAD = 'unmeasured'\n"))
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("rvwpkg.planted")
        assert module.PAYLOAD == "unmeasured"
    finally:
        sys.path.remove(str(root))
        for name in ("rvwpkg.planted", "rvwpkg"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize("relative", ["enclave/planted.pyc", "transport/sub/x.pyo"])
def test_sourceless_bytecode_is_refused(tmp_path: Path, relative: str) -> None:
    root = _tree(tmp_path / "img", {**BASE, relative: _bytecode("X = 1\n")})
    with pytest.raises(MeasurementError, match=relative.replace(".", r"\.")):
        measure_image(root)


def test_bytecode_caches_are_still_not_part_of_the_measurement(tmp_path: Path) -> None:
    clean = measure_image(_tree(tmp_path / "a", BASE))
    cached = {**BASE, "enclave/__pycache__/boot.cpython-311.pyc": _bytecode("STAGE = 1\n")}
    assert measure_image(_tree(tmp_path / "b", cached)) == clean
