"""How every command shows its result: text for people, JSON for scripts, one raw field for shells.

In the manner of Vault's ``-format`` and ``-field``, a command that prints a result declares the
flags once with :func:`add_output_flags` and prints through :func:`emit`, once:

* ``--format text|json`` — ``text`` is the command's own rendering for people (``table`` is
  accepted as another name for it, as in Vault); ``json`` prints the result as indented JSON, the
  stable interface for scripts. Without the flag the format comes from ``KEYSHARD_FORMAT``, and
  without that it is ``text``.
* ``--field NAME`` — print one value of the result and nothing else: a string as it is (no quotes),
  any other value as JSON (``true``, ``3``, ``null``, objects indented). ``a.b`` descends into a
  nested record and ``a.0`` into a list. A name the result does not have is a usage error (exit 1)
  that lists the fields there are, raised before anything is printed. ``--field`` wins over
  ``--format``.

A *result* is one record (a mapping from field names to JSON values) or a list of records (rows,
e.g. one per node); with a list, ``--field`` prints the field of each row on its own line.

Usage, in a command module (its top level stays light: this module imports only the stdlib)::

    from keyshard.cli.output import add_output_flags, emit

    def register(verbs):
        info = verbs.add_parser("info", ...)
        add_output_flags(info)
        info.set_defaults(handler=_info)

    def _info(args):
        key = ...                                   # call the SDK
        record = {"name": key.name, "threshold": key.threshold}
        emit(args, record, lambda: f"{key.name}: any {key.threshold + 1} nodes sign")
        return EXIT_OK

``text`` may be a string, a function returning one (called only for ``--format text``, so a
costly table is not built for JSON), or omitted: then a record prints as aligned ``field  value``
lines and a list of records as a table with one column per field (see :func:`format_record` and
:func:`format_table`, also usable on their own).
"""

from __future__ import annotations

import argparse
import enum
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

from keyshard.cli.errors import UnknownFieldError, UsageError

__all__ = [
    "FORMAT_ENV",
    "OutputFormat",
    "Result",
    "add_output_flags",
    "emit",
    "format_record",
    "format_table",
    "output_format",
    "select_field",
]

#: The environment variable holding the default ``--format`` (as Vault's ``VAULT_FORMAT``).
FORMAT_ENV = "KEYSHARD_FORMAT"

Record: TypeAlias = Mapping[str, object]
#: What a command shows: one record, or a list of records (rows).
Result: TypeAlias = Record | Sequence[Record]


class OutputFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


_ALIASES = {"table": OutputFormat.TEXT}


def _parse_format(text: str) -> OutputFormat:
    value = text.strip().lower()
    if value in _ALIASES:
        return _ALIASES[value]
    try:
        return OutputFormat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not one of: text, json") from None


def _format_argument(text: str) -> OutputFormat:
    try:
        return _parse_format(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """Declare ``--format`` and ``--field`` on a verb's parser (once per parser).

    They land in ``args.format`` (an :class:`OutputFormat`, or None for "from the environment")
    and ``args.field`` (a name or None); read them through :func:`emit` or :func:`output_format`.
    """
    parser.add_argument(
        "--format",
        type=_format_argument,
        default=None,
        metavar="{text,json}",
        help=f"text for people, json for scripts (env {FORMAT_ENV}; default text)",
    )
    parser.add_argument(
        "--field",
        metavar="NAME",
        default=None,
        help="print only this field of the result, raw (a.b for nested fields)",
    )


def output_format(args: argparse.Namespace) -> OutputFormat:
    """The format asked for: ``--format``, else ``$KEYSHARD_FORMAT``, else text."""
    chosen: OutputFormat | None = getattr(args, "format", None)
    if chosen is not None:
        return chosen
    from_env = os.environ.get(FORMAT_ENV, "")
    if not from_env:
        return OutputFormat.TEXT
    try:
        return _parse_format(from_env)
    except ValueError as error:
        raise UsageError(f"{FORMAT_ENV}={error}") from None


def emit(
    args: argparse.Namespace,
    result: Result,
    text: str | Callable[[], str] | None = None,
) -> None:
    """Print ``result`` on stdout as ``args`` asks: one field, JSON, or ``text``.

    Raises :class:`~keyshard.cli.errors.UnknownFieldError` (exit 1) before printing anything when
    ``--field`` names nothing in the result, and :class:`~keyshard.cli.errors.UsageError` for an
    unusable ``KEYSHARD_FORMAT``. ``result`` must hold JSON values only (hex-encode bytes).
    """
    field: str | None = getattr(args, "field", None)
    if field is not None:
        records: Sequence[Record] = [result] if isinstance(result, Mapping) else result
        values = [_lookup(record, field) for record in records]  # raises before printing
        for value in values:
            print(_raw(value))
        return
    if output_format(args) is OutputFormat.JSON:
        print(json.dumps(result, indent=2))
        return
    if text is None:
        rendered = format_record(result) if isinstance(result, Mapping) else _default_table(result)
    else:
        rendered = text if isinstance(text, str) else text()
    if rendered:
        print(rendered)


def select_field(result: Result, name: str) -> object:
    """The value of field ``name`` (dotted path allowed); for a list of records, a list of them."""
    if isinstance(result, Mapping):
        return _lookup(result, name)
    return [_lookup(record, name) for record in result]


def format_record(record: Record) -> str:
    """Aligned ``field  value`` lines; nested values as compact JSON, absent ones as ``-``."""
    if not record:
        return ""
    width = max(len(key) for key in record)
    return "\n".join(f"{key:<{width}}  {_cell(value)}" for key, value in record.items())


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned on the widest cell; the last column is not padded (no trailing blanks)."""
    if not rows:
        return ""
    columns = max(len(row) for row in rows)
    widths = [max((len(row[c]) for row in rows if c < len(row)), default=0) for c in range(columns)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[c]) for c, cell in enumerate(row[:-1])] + list(row[-1:])
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _default_table(rows: Sequence[Record]) -> str:
    headers: list[str] = []
    for row in rows:
        headers += [key for key in row if key not in headers]
    if not headers:
        return ""
    body = [[_cell(row.get(key)) for key in headers] for row in rows]
    return format_table([[key.upper() for key in headers], *body])


def _lookup(record: Record, name: str) -> object:
    if name in record:
        return record[name]
    value: object = record
    walked: list[str] = []
    for part in name.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise UnknownFieldError(name, _fields_at(value, walked))
        walked.append(part)
    return value


def _fields_at(value: object, walked: list[str]) -> list[str]:
    prefix = "".join(f"{part}." for part in walked)
    if isinstance(value, Mapping):
        return [f"{prefix}{key}" for key in value]
    if isinstance(value, list):
        return [f"{prefix}{index}" for index in range(len(value))]
    return []


def _raw(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list):
        return json.dumps(value, indent=2)
    return json.dumps(value)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
