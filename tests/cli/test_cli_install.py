"""``pip install keyshard`` without extras gives a working ``keyshard`` command.

The emulated environment's packages (moto, werkzeug, flask) come only with the ``emulation``
extra; the command line must still start, list its groups, print its version and show
``key --help`` without them, and ``keyshard dev`` must say in one line what to install. This
builds the project from a copy of the source tree into a fresh virtual environment, fetching the
dependencies from the package index, as a user's machine or a clean CI runner would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
_NOT_PACKAGED = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "tests",
    "bench",
    "infra",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".benchmarks",
    ".keyshard",
)


def _clean_env() -> dict[str, str]:
    """The environment less anything that would let the fresh venv see the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    env.pop("KEYSHARD_FORMAT", None)
    return env


def _run(*argv: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_clean_env(),
        check=False,
        timeout=timeout,
    )


def test_install_without_extras_gives_a_working_cli(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=_NOT_PACKAGED)
    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", venv, cwd=tmp_path, timeout=300)
    assert made.returncode == 0, made.stderr
    python, keyshard = venv / "bin" / "python", venv / "bin" / "keyshard"

    installed = _run(python, "-m", "pip", "install", "--quiet", source, cwd=tmp_path, timeout=800)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    where = _run(python, "-c", "import keyshard; print(keyshard.__file__)", cwd=tmp_path)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    extras = _run(
        python,
        "-c",
        "import importlib.util as u; print([u.find_spec(m) for m in ('moto', 'werkzeug')])",
        cwd=tmp_path,
    )
    assert extras.stdout == "[None, None]\n", "the emulation extra got installed anyway"

    shown = _run(keyshard, "--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: keyshard")
    for group in ("key", "approver", "attestation", "dev"):
        assert f"\n    {group}" in shown.stdout

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    shown = _run(keyshard, "--version", cwd=tmp_path)
    assert (shown.returncode, shown.stdout, shown.stderr) == (0, f"keyshard {version}\n", "")

    shown = _run(keyshard, "key", "--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: keyshard key")
    assert "create" in shown.stdout

    shown = _run(keyshard, "dev", "status", "--dir", tmp_path / "cluster", cwd=tmp_path)
    assert (shown.returncode, shown.stdout) == (1, "")
    assert shown.stderr.count("\n") == 1
    assert "pip install 'keyshard[emulation]'" in shown.stderr
