"""Re-emit the enclave's log lines (the log channel, ``PutLogs``) in the parent's log stream.

The enclave's lines arrive already in the one JSON-lines format (:mod:`transport.jsonlog`). The
parent re-emits each as a record of its own logging, keeping the enclave's ``ts``, ``level``,
``logger`` and fields and marking it ``source: "enclave"``, so the parent's stream (stderr, a file,
the CloudWatch agent) carries both sides in one format. The parent protects itself as it does for
every host-services request: a line that is not a JSON object of scalars is counted as malformed
and not re-emitted, and the enclave's level is mapped onto the known levels only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from transport.jsonlog import SCALARS

__all__ = ["EnclaveLogRelay", "RelayCounts"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_HEADER = frozenset({"ts", "level", "source", "logger", "msg"})


@dataclass(slots=True)
class RelayCounts:
    """What the relay did since the parent started (exported as metrics)."""

    relayed: int = 0
    malformed: int = 0
    dropped_by_enclave: int = 0


class EnclaveLogRelay:
    """Turns enclave log lines into records of the parent's logging (logger ``enclave.*``)."""

    def __init__(self, prefix: str = "enclave") -> None:
        self._prefix = prefix
        self.counts = RelayCounts()

    def relay(self, lines: Iterable[str], dropped: int = 0) -> None:
        if dropped:
            self.counts.dropped_by_enclave += dropped
            logging.getLogger("parent.enclavelogs").warning(
                "enclave dropped log lines",
                extra={"fields": {"event": "enclave_log_dropped", "count": dropped}},
            )
        for line in lines:
            record = self._record(line)
            if record is None:
                self.counts.malformed += 1
                continue
            logging.getLogger(record.name).handle(record)
            self.counts.relayed += 1

    def _record(self, line: str) -> logging.LogRecord | None:
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        if not isinstance(entry, dict) or not all(isinstance(v, SCALARS) for v in entry.values()):
            return None
        level = _LEVELS.get(str(entry.get("level")))
        ts = entry.get("ts")
        if level is None or not isinstance(ts, int | float) or isinstance(ts, bool):
            return None
        name = str(entry.get("logger", self._prefix))
        if name != self._prefix and not name.startswith(f"{self._prefix}."):
            name = f"{self._prefix}.{name}"  # the enclave names only its own loggers
        record = logging.LogRecord(name, level, "enclave", 0, str(entry.get("msg", "")), None, None)
        record.created = float(ts)
        record.source = "enclave"
        record.fields = {k: v for k, v in entry.items() if k not in _HEADER}
        return record
