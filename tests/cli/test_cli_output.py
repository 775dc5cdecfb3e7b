"""keyshard.cli.output: --format text|json (default from KEYSHARD_FORMAT) and --field NAME."""

from __future__ import annotations

import argparse
import json

import pytest

from keyshard.cli.errors import UnknownFieldError, UsageError
from keyshard.cli.exit_codes import EXIT_LOCAL_ERROR
from keyshard.cli.output import (
    FORMAT_ENV,
    OutputFormat,
    add_output_flags,
    emit,
    format_record,
    format_table,
)

RECORD = {
    "name": "payments",
    "threshold": 1,
    "ready": True,
    "nonce": None,
    "public_key": {"length": 2, "hex": "abcd"},
    "nodes": ["node-1", "node-2"],
}
ROWS = [{"node_id": "node-1", "state": "ready"}, {"node_id": "node-2", "state": "stopped"}]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_output_flags(parser)
    return parser.parse_args(argv)


def _emit(capsys: pytest.CaptureFixture[str], argv: list[str], result: object, **kw: object) -> str:
    emit(_args(*argv), result, **kw)  # type: ignore[arg-type]
    return capsys.readouterr().out


@pytest.fixture(autouse=True)
def _no_format_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FORMAT_ENV, raising=False)


def test_text_is_the_default_and_the_renderer_is_used(capsys: pytest.CaptureFixture[str]) -> None:
    assert _emit(capsys, [], RECORD, text=lambda: "for people") == "for people\n"
    assert _emit(capsys, [], RECORD, text="as given") == "as given\n"
    assert _emit(capsys, [], RECORD, text="") == ""


def test_json_prints_the_record_and_never_renders_text(capsys: pytest.CaptureFixture[str]) -> None:
    def boom() -> str:
        raise AssertionError("text rendered for --format json")

    assert json.loads(_emit(capsys, ["--format", "json"], RECORD, text=boom)) == RECORD
    assert json.loads(_emit(capsys, ["--format", "JSON"], ROWS, text=boom)) == ROWS


def test_the_environment_sets_the_default_and_the_flag_wins(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FORMAT_ENV, "json")
    assert json.loads(_emit(capsys, [], RECORD, text="text")) == RECORD
    assert _emit(capsys, ["--format", "text"], RECORD, text="text") == "text\n"
    assert _emit(capsys, ["--format", "table"], RECORD, text="text") == "text\n"  # Vault's name


def test_a_bad_environment_value_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FORMAT_ENV, "yaml")
    with pytest.raises(
        UsageError, match=r"KEYSHARD_FORMAT='yaml' is not one of: text, json"
    ) as info:
        emit(_args(), RECORD, "text")
    assert info.value.exit_code == EXIT_LOCAL_ERROR


def test_a_bad_format_flag_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _args("--format", "yaml")
    assert "argument --format: 'yaml' is not one of: text, json" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "printed"),
    [
        ("name", "payments\n"),  # strings raw, no quotes
        ("threshold", "1\n"),
        ("ready", "true\n"),
        ("nonce", "null\n"),
        ("public_key.hex", "abcd\n"),
        ("nodes.1", "node-2\n"),
        ("nodes", '[\n  "node-1",\n  "node-2"\n]\n'),
    ],
)
def test_field_prints_one_value_raw(
    capsys: pytest.CaptureFixture[str], field: str, printed: str
) -> None:
    assert _emit(capsys, ["--field", field], RECORD, text="text") == printed


def test_field_wins_over_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert _emit(capsys, ["--format", "json", "--field", "name"], RECORD) == "payments\n"


def test_field_of_rows_prints_one_line_per_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert _emit(capsys, ["--field", "state"], ROWS) == "ready\nstopped\n"
    assert _emit(capsys, ["--field", "state"], []) == ""


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("nmae", "unknown field 'nmae' (fields: name, threshold, ready, nonce, public_key, nodes)"),
        (
            "public_key.hx",
            "unknown field 'public_key.hx' (fields: public_key.length, public_key.hex)",
        ),
        ("nodes.2", "unknown field 'nodes.2' (fields: nodes.0, nodes.1)"),
        ("nonce.hex", "unknown field 'nonce.hex' (fields: none)"),
    ],
)
def test_an_unknown_field_is_a_usage_error_and_prints_nothing(
    capsys: pytest.CaptureFixture[str], field: str, message: str
) -> None:
    with pytest.raises(UnknownFieldError) as info:
        emit(_args("--field", field), RECORD, "text")
    assert str(info.value) == message
    assert info.value.exit_code == EXIT_LOCAL_ERROR
    assert capsys.readouterr().out == ""


def test_an_unknown_field_in_a_later_row_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    rows: list[dict[str, object]] = [{"state": "ready"}, {"other": 1}]
    with pytest.raises(UnknownFieldError, match="'state'"):
        emit(_args("--field", "state"), rows)
    assert capsys.readouterr().out == ""


def test_default_text_renderings(capsys: pytest.CaptureFixture[str]) -> None:
    assert _emit(capsys, [], {"name": "k", "threshold": 1, "nonce": None}) == (
        "name       k\nthreshold  1\nnonce      -\n"
    )
    assert _emit(capsys, [], ROWS) == ("NODE_ID  STATE\nnode-1   ready\nnode-2   stopped\n")


def test_format_helpers_leave_no_trailing_blanks() -> None:
    assert format_table([["A", "LONGER", ""], ["aaaa", "b", "detail"]]) == (
        "A     LONGER\naaaa  b       detail"
    )
    assert format_table([]) == ""
    assert format_record({}) == ""
    assert format_record({"nested": {"a": [1, 2]}}) == 'nested  {"a":[1,2]}'


def test_the_flags_land_in_args() -> None:
    args = _args("--format", "json", "--field", "name")
    assert (args.format, args.field) == (OutputFormat.JSON, "name")
    assert (_args().format, _args().field) == (None, None)
