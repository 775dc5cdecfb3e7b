"""``keyshard --help`` and each group's ``--help`` import no heavy machinery, and need no extra.

Each case runs the CLI in a fresh interpreter (imports are per process) and reports which modules
ended up in ``sys.modules``. The rules being checked are in :mod:`keyshard.cli.main`'s docstring.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Top-level packages whose import is the cost (or the optional extra) --help must not pay.
HEAVY = ("boto3", "botocore", "moto", "werkzeug", "flask", "enclave", "parent", "transport")
#: Stricter for the groups whose modules follow the rules already: no SDK, no crypto either.
HEAVIER = (*HEAVY, "attestation", "cryptography", "cbor2", "keyshard.client", "keyshard.dev.")

_PROBE = """
import json, sys
for blocked in sys.argv[2:]:
    sys.modules[blocked] = None  # as if not installed: import fails, find_spec says None
from keyshard.cli.main import main
code = None
try:
    code = main(json.loads(sys.argv[1]))
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(n for n, m in sys.modules.items() if m)}))
"""


def _probe(argv: list[str], blocked: tuple[str, ...] = ()) -> tuple[int, list[str], str, str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv), *blocked],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=120,
    )
    *shown, report = done.stdout.splitlines() or [""]
    try:
        result = json.loads(report)
    except json.JSONDecodeError:
        pytest.fail(f"probe crashed:\n{done.stdout}\n{done.stderr}")
    return result["code"], result["modules"], "\n".join(shown), done.stderr


def _loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [
        name
        for name in modules
        if any(name == p or name.startswith(p if p.endswith(".") else p + ".") for p in prefixes)
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["attestation", "--help"],
        ["attestation", "inspect", "--help"],
        ["attestation", "verify", "--help"],
        ["dev", "--help"],
        ["dev", "up", "--help"],
        ["dev", "status", "--help"],
        ["dev", "down", "--help"],
        ["dev", "demo", "--help"],
        ["approver", "--help"],
        ["approver", "keygen", "--help"],
        ["key", "--help"],
        ["key", "backup", "--help"],
        ["key", "restore", "--help"],
        ["backup", "--help"],
        ["backup", "verify", "--help"],
        ["backup", "reconstruct", "--help"],
        ["recovery-key", "--help"],
        ["recovery-key", "generate", "--help"],
        ["offline", "--help"],
        ["offline", "sign", "--help"],
    ],
    ids=" ".join,
)
def test_help_imports_no_machinery(argv: list[str]) -> None:
    code, modules, out, err = _probe(argv)
    assert code == 0, err
    assert out
    assert _loaded(modules, HEAVIER) == []


def test_top_level_help_imports_no_group_module() -> None:
    code, modules, out, _ = _probe(["--help"])
    assert code == 0
    assert [m for m in modules if m.endswith("_cmd")] == []
    assert "importlib.metadata" not in modules  # only --version reads the metadata
    for group in ("key", "approver", "attestation", "dev"):
        assert f"\n    {group}" in out


EMULATION = ("werkzeug", "moto", "flask")


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["dev", "--help"], ["dev", "up", "--help"], ["key", "--help"]],
    ids=" ".join,
)
def test_help_works_without_the_emulation_extra(argv: list[str]) -> None:
    code, modules, out, err = _probe(argv, blocked=EMULATION)
    assert code == 0, err
    assert out
    assert _loaded(modules, EMULATION) == []


@pytest.mark.parametrize("verb", ["up", "status", "down", "demo", "add-node"])
def test_dev_without_the_emulation_extra_says_what_to_install(verb: str, tmp_path: Path) -> None:
    code, modules, out, err = _probe(["dev", verb, "--dir", str(tmp_path)], blocked=EMULATION)
    assert (code, out) == (1, "")
    assert err == (
        f"keyshard dev {verb}: this command needs the 'emulation' extra (werkzeug is not "
        "installed): pip install 'keyshard[emulation]'\n"
    )
    assert _loaded(modules, ("keyshard.dev.",)) == []
    assert list(tmp_path.iterdir()) == []
