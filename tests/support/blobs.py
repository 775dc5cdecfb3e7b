"""A parent's blob store in memory, for tests that run enclaves in process.

What the parent keeps is sealed, so a dict is a faithful stand-in; :meth:`DictHost.hold` parks
reads of one blob so a test can keep a request in flight without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["DictHost", "Gate"]


@dataclass
class Gate:
    """Parks every read of one blob: ``reached`` is set once a read waits, ``opened`` lets it go.

    A request that reads the blob stays in flight until the test opens the gate — the way to hold
    a request open without sleeping."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)


class DictHost:
    """The parent's blob store for one node, in a dict (what the parent keeps is all sealed)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self._gates: dict[str, Gate] = {}

    async def put_blob(self, name: str, data: bytes) -> None:
        self.blobs[name] = data

    async def get_blob(self, name: str) -> bytes | None:
        gate = self._gates.get(name)
        if gate is not None:
            gate.reached.set()
            await gate.opened.wait()
        return self.blobs.get(name)

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[Gate]:
        """Park reads of blob ``name`` until the gate opens (or the block ends). Call it inside
        the event loop that will wait on it."""
        gate = self._gates[name] = Gate()
        try:
            yield gate
        finally:
            gate.opened.set()
            del self._gates[name]
