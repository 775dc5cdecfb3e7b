"""Record every byte the parent forwards or serves: the parent's view, for the secrecy test.

The threat model lets the parent read everything it moves and stores; the acceptance test must show
that this view holds no share, no data key and no plaintext secret. :class:`TrafficRecorder` is the
tap that captures that view: one append-only file per ``(route, direction)`` under a directory
(``api-in.bin``, ``kms-out.bin``, ``hostservices-in.bin`` ...). It records nothing the parent could
not already see, so it needs no protection of its own — but it is a testing aid: it slows the proxy
and fills the disk, so production configurations never enable it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class TrafficRecorder:
    """``recorder(route, direction, data)`` appends ``data`` to ``<dir>/<route>-<direction>.bin``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._files: dict[tuple[str, str], BinaryIO] = {}

    def __call__(self, route: str, direction: str, data: bytes) -> None:
        key = (route, direction)
        f = self._files.get(key)
        if f is None:
            name = f"{_SAFE.sub('_', route)}-{_SAFE.sub('_', direction)}.bin"
            f = self._files[key] = open(self.directory / name, "ab")  # noqa: SIM115
        f.write(data)
        f.flush()

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
