"""Coalescing: concurrent single requests of one kind leave as one batch request.

An application with many signatures in flight (N tasks each calling ``sign``) would otherwise
pay one request per signer per signature; a :class:`Coalescer` gathers the calls made while the
event loop is busy into one batch of at most ``max_items`` — the batch starts on the loop's next
turn, so a lone call waits for nothing — and hands each caller its own result.

Isolation: a batch is all-or-nothing on the wire, so when a batch of several fails for a reason
that may concern one item only (``isolate(error)``, e.g. an approval that does not hold for one
message), each item is retried alone and every caller gets its own outcome; other failures (a
node unreachable) are every caller's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

_T = TypeVar("_T")
_R = TypeVar("_R")


class Coalescer(Generic[_T, _R]):
    def __init__(
        self,
        run: Callable[[list[_T]], Awaitable[Sequence[_R]]],
        *,
        max_items: int,
        isolate: Callable[[BaseException], bool],
    ) -> None:
        self._run = run
        self._max = max_items
        self._isolate = isolate
        self._pending: list[tuple[_T, asyncio.Future[_R]]] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def submit(self, item: _T) -> _R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_R] = loop.create_future()
        self._pending.append((item, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            task = asyncio.get_running_loop().create_task(self._serve(batch))
            self._running.add(task)  # held until done: asyncio keeps only weak references
            task.add_done_callback(self._running.discard)

    async def _serve(self, batch: list[tuple[_T, asyncio.Future[_R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as error:
            if len(batch) > 1 and self._isolate(error):
                await asyncio.gather(*(self._serve([one]) for one in batch))
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
