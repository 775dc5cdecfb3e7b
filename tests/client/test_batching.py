"""The coalescer: concurrent calls leave as one batch; each caller gets its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from keyshard.client.batching import Coalescer


class ItemError(Exception):
    pass


def make(calls: list[list[int]], max_items: int = 4) -> Coalescer[int, int]:
    async def run(items: list[int]) -> list[int]:
        calls.append(list(items))
        if any(item < 0 for item in items):
            raise ItemError("a negative item")
        if 999 in items:
            raise ConnectionError("everyone's problem")
        return [item * 10 for item in items]

    return Coalescer(run, max_items=max_items, isolate=lambda e: isinstance(e, ItemError))


def test_concurrent_calls_share_batches_of_at_most_max_items() -> None:
    calls: list[list[int]] = []

    async def main() -> list[int]:
        coalescer = make(calls)
        return list(await asyncio.gather(*(coalescer.submit(i) for i in range(10))))

    assert asyncio.run(main()) == [i * 10 for i in range(10)]
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_lone_call_is_a_batch_of_one() -> None:
    calls: list[list[int]] = []

    async def main() -> None:
        coalescer = make(calls)
        assert await coalescer.submit(3) == 30
        assert await coalescer.submit(4) == 40

    asyncio.run(main())
    assert calls == [[3], [4]]


def test_an_item_failure_is_isolated_to_its_caller() -> None:
    calls: list[list[int]] = []

    async def main() -> list[object]:
        coalescer = make(calls)
        return list(
            await asyncio.gather(*(coalescer.submit(i) for i in (1, -2, 3)), return_exceptions=True)
        )

    first, second, third = asyncio.run(main())
    assert (first, third) == (10, 30)
    assert isinstance(second, ItemError)
    assert calls == [[1, -2, 3], [1], [-2], [3]]


def test_a_shared_failure_reaches_every_caller() -> None:
    calls: list[list[int]] = []

    async def main() -> list[object]:
        coalescer = make(calls)
        return list(
            await asyncio.gather(*(coalescer.submit(i) for i in (1, 999)), return_exceptions=True)
        )

    outcomes = asyncio.run(main())
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    assert calls == [[1, 999]]
    with pytest.raises(ConnectionError):
        asyncio.run(make([]).submit(999))
