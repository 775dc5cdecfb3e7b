"""The one log format of every Keyshard process: one JSON object per line.

The enclave, the parent and the emulated cloud all write it, so an operator (or a log shipper such
as the CloudWatch agent) parses one format. It lives in ``transport`` because both sides of the
enclave/parent boundary use it and the enclave's log records cross that boundary (the log channel,
:class:`transport.hostproto.PutLogs`)::

    {"ts": 1764766800.123, "level": "info", "source": "parent", "logger": "parent.proxy",
     "msg": "route up", "event": "route_up", "route": "client", ...}

``source`` names the process kind (``enclave``, ``parent``, ``cloud``); a record relayed from the
enclave keeps ``source: "enclave"`` and its own ``ts`` and ``logger`` when the parent re-emits it.
Call sites pass their fields as ``extra={"fields": {...}}``. Values that are not JSON scalars are
written as ``"<unloggable>"`` rather than stringified, so a secret wrapper or a bytes value cannot
slip into a log line through ``repr``; an exception contributes its *type* only, never its text
(an error message may quote input). Everything logged is public by construction: events, sizes,
identifiers and error types, never key material, plaintexts or envelopes.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

__all__ = ["SCALARS", "JsonFormatter", "configure_json_logging", "record_entry"]

SCALARS = (str, int, float, bool, type(None))
_RESERVED = frozenset({"ts", "level", "source", "logger", "msg"})


def record_entry(record: logging.LogRecord, source: str) -> dict[str, object]:
    """The JSON object of one record (``record.source``, if set, overrides ``source``)."""
    entry: dict[str, object] = {
        "ts": round(record.created, 3),
        "level": record.levelname.lower(),
        "source": getattr(record, "source", None) or source,
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        for key, value in fields.items():
            name = str(key)
            if name in _RESERVED:
                name = f"field_{name}"
            entry[name] = value if isinstance(value, SCALARS) else "<unloggable>"
    if record.exc_info and record.exc_info[0] is not None:
        entry["error_type"] = record.exc_info[0].__name__
    return entry


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (keys sorted, so lines diff and grep well)."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_entry(record, self.source), sort_keys=True)


def configure_json_logging(
    source: str, level: int | str = logging.INFO, stream: TextIO | None = None
) -> logging.Handler:
    """Make the root logger write JSON lines to ``stream`` (stderr); returns the handler."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter(source))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return handler
