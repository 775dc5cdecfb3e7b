"""Structured logs to stderr, one JSON object per line.

Everything the enclave writes to stderr leaves through the untrusted parent (the console of a Nitro
enclave, the log file of an emulated one), so it is public by construction: call sites log events,
sizes, identifiers and error *types* — never key material, plaintexts or envelopes. Fields are
passed as ``extra={"fields": {...}}``; values that are not JSON scalars are refused rather than
stringified, so a secret wrapper or a bytes value cannot slip in through ``repr``.
"""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "configure_logging"]

_SCALARS = (str, int, float, bool, type(None))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry[str(key)] = value if isinstance(value, _SCALARS) else "<unloggable>"
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
        return json.dumps(entry, sort_keys=True)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
