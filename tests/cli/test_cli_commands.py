"""The commands of the CLI frame: --version, each verb's help, and the shared output flags in use."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
from pathlib import Path

import pytest

import keyshard
from keyshard.cli.main import GROUPS, build_parser, main
from keyshard.cli.output import FORMAT_ENV

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "attestation"
GOOD = DATA_DIR / "evervault_beta_valid.bin"
MANIFEST = {entry["file"]: entry for entry in json.loads((DATA_DIR / "manifest.json").read_text())}
OWN_GROUPS = ("approver", "attestation", "backup", "dev", "key", "offline", "recovery-key")


@pytest.fixture(autouse=True)
def _no_format_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FORMAT_ENV, raising=False)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"keyshard {importlib.metadata.version('keyshard')}\n"


def test_version_without_metadata_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert keyshard.__version__ == "0+unknown"
    with pytest.raises(AttributeError):
        _ = keyshard.no_such_attribute  # type: ignore[attr-defined]


def _subparsers(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action


def _register(name: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The subparsers of a bare parser after the module of group ``name`` registered."""
    groups = argparse.ArgumentParser(prog="keyshard").add_subparsers()
    module = next(group.module for group in GROUPS if group.name == name)
    importlib.import_module(module).register(groups)
    return groups


@pytest.mark.parametrize("group", [group.name for group in GROUPS])
def test_the_group_table_matches_what_each_module_registers(group: str) -> None:
    """main.GROUPS lists groups without importing them: its help lines must not drift."""
    registered = {action.dest: action.help for action in _register(group)._choices_actions}
    assert registered[group] == next(g.help for g in GROUPS if g.name == group)


@pytest.mark.parametrize("group", OWN_GROUPS)
def test_every_verb_has_a_description_and_examples(group: str) -> None:
    verbs = _subparsers(_register(group).choices[group]).choices
    assert verbs
    for name, verb in verbs.items():
        assert verb.description, f"{group} {name}: no description"
        assert verb.formatter_class is argparse.RawDescriptionHelpFormatter, name
        assert "examples:\n  keyshard " in verb.format_help(), name


def test_the_full_parser_registers_every_group_once() -> None:
    assert set(_subparsers(build_parser()).choices) == {group.name for group in GROUPS}


def test_a_group_typo_lists_every_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["attestaton", "inspect"])
    assert info.value.code == 1
    listed = ", ".join(f"'{group.name}'" for group in GROUPS)
    assert f"choose from {listed}" in capsys.readouterr().err
    assert {"key", "approver", "attestation", "dev", "node", "gateway"} <= {g.name for g in GROUPS}


def test_inspect_format_json_and_fields(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = MANIFEST[GOOD.name]
    code, out, _ = _run(capsys, "attestation", "inspect", str(GOOD), "--format", "json")
    assert code == 0
    assert json.loads(out)["module_id"] == expected["module_id"]

    code, out, _ = _run(capsys, "attestation", "inspect", str(GOOD), "--field", "module_id")
    assert (code, out) == (0, expected["module_id"] + "\n")
    code, out, _ = _run(capsys, "attestation", "inspect", str(GOOD), "--field", "nonzero_pcrs.8")
    assert (code, out) == (0, expected["nonzero_pcrs"]["8"] + "\n")
    code, out, _ = _run(capsys, "attestation", "inspect", str(GOOD), "--field", "debug_mode")
    assert (code, out) == (0, "false\n")

    monkeypatch.setenv(FORMAT_ENV, "json")
    code, out, _ = _run(capsys, "attestation", "inspect", str(GOOD))
    assert json.loads(out)["timestamp_ms"] == expected["timestamp_ms"]
    code, out, _ = _run(capsys, "attestation", "inspect", str(GOOD), "--format", "text")
    assert out.startswith("NOT VERIFIED")


def test_an_unknown_field_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "attestation", "inspect", str(GOOD), "--field", "modul_id")
    assert (code, out) == (1, "")
    assert err.startswith(
        "keyshard attestation inspect: unknown field 'modul_id' (fields: module_id,"
    )
    assert err.count("\n") == 1


def test_verify_fields_on_success_and_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, "attestation", "verify", str(GOOD), "--at", "doc", "--field", "verified"
    )
    assert (code, out, err) == (0, "true\n", "")
    code, out, _ = _run(
        capsys, "attestation", "verify", str(GOOD), "--at", "doc", "--format", "json"
    )
    assert json.loads(out)["module_id"] == MANIFEST[GOOD.name]["module_id"]

    code, out, err = _run(capsys, "attestation", "verify", str(GOOD), "--field", "check")
    assert (code, out) == (1, "chain step 0\n")
    assert err.startswith("refused: chain step 0: certificate expired")


def test_an_unreadable_file_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "attestation", "inspect", "/nonexistent/doc.bin")
    assert (code, out) == (1, "")
    assert (
        err
        == "keyshard attestation inspect: cannot read /nonexistent/doc.bin: No such file or directory\n"
    )


def test_approver_keygen_output(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _run(capsys, "approver", "keygen", "--out", str(tmp_path / "a.pem"))
    assert code == 0
    assert len(bytes.fromhex(out.strip())) == 32
    code, out, _ = _run(
        capsys, "approver", "keygen", "--out", str(tmp_path / "b.pem"), "--format", "json"
    )
    assert code == 0
    assert json.loads(out)["private_key_file"] == str(tmp_path / "b.pem")
