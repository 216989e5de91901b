"""The group commit under the queue backends: one round trip at a time, each caller its answer."""

from __future__ import annotations

import asyncio

import pytest

from pricefleet.queue.coalesce import Coalescer


class Echo:
    """A round trip that answers each request with itself doubled (an error for negatives),
    records the batches it got, and can be held open until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self.fail_whole: Exception | None = None

    async def __call__(self, requests: list[int]) -> list[int | Exception]:
        self.batches.append(list(requests))
        self.entered.set()
        await self.gate.wait()
        if self.fail_whole is not None:
            raise self.fail_whole
        return [ValueError(f"bad {r}") if r < 0 else 2 * r for r in requests]


async def test_an_idle_call_goes_at_once_alone() -> None:
    """With nothing in flight a call is sent by itself, in the caller's task, no waiting."""
    echo = Echo()
    coalescer = Coalescer(echo)
    assert await coalescer.submit(3) == 6
    assert await coalescer.submit(4) == 8
    assert echo.batches == [[3], [4]]


async def test_calls_arriving_in_flight_share_the_next_round_trip() -> None:
    """While one call is in flight the others wait, then go together, each with its answer."""
    echo = Echo()
    echo.gate.clear()
    coalescer = Coalescer(echo)
    first = asyncio.create_task(coalescer.submit(1))
    await echo.entered.wait()
    rest = [asyncio.create_task(coalescer.submit(n)) for n in range(2, 10)]
    await asyncio.sleep(0)
    echo.gate.set()
    assert await first == 2
    assert [await task for task in rest] == [2 * n for n in range(2, 10)]
    assert echo.batches == [[1], list(range(2, 10))]
    assert (coalescer.flushes, coalescer.requests) == (2, 9)


async def test_an_item_error_goes_to_its_caller_only() -> None:
    """A request the round trip answers with an error raises in its caller; others succeed."""
    echo = Echo()
    echo.gate.clear()
    coalescer = Coalescer(echo)
    first = asyncio.create_task(coalescer.submit(1))
    await echo.entered.wait()
    tasks = [asyncio.create_task(coalescer.submit(n)) for n in (5, -1, 7)]
    await asyncio.sleep(0)
    echo.gate.set()
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    assert results[:2] == [2, 10]
    assert isinstance(results[2], ValueError)
    assert str(results[2]) == "bad -1"
    assert results[3] == 14
    with pytest.raises(ValueError, match="bad -2"):
        await coalescer.submit(-2)  # alone, too


async def test_a_failed_round_trip_fails_each_of_its_callers() -> None:
    """An error of the whole round trip (a lost connection) reaches every caller in it, and the
    next calls go on."""
    echo = Echo()
    echo.gate.clear()
    coalescer = Coalescer(echo)
    first = asyncio.create_task(coalescer.submit(1))
    await echo.entered.wait()
    tasks = [asyncio.create_task(coalescer.submit(n)) for n in (2, 3)]
    await asyncio.sleep(0)
    echo.fail_whole = ConnectionError("gone")
    echo.gate.set()
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    echo.fail_whole = None
    assert await coalescer.submit(4) == 8


async def test_a_caller_cancelled_while_waiting_is_never_sent() -> None:
    """Cancelling a waiting call drops it from the next batch; the others are answered."""
    echo = Echo()
    echo.gate.clear()
    coalescer = Coalescer(echo)
    first = asyncio.create_task(coalescer.submit(1))
    await echo.entered.wait()
    tasks = [asyncio.create_task(coalescer.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    echo.gate.set()
    assert await first == 2
    assert await tasks[0] == 4
    assert await tasks[2] == 8
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    assert echo.batches == [[1], [2, 4]]


async def test_a_caller_cancelled_in_flight_leaves_the_batch_alone() -> None:
    """Cancelling a call whose batch is in flight does not stop the batch; the others get their
    answers and the cancelled one's answer goes to `orphan` (a lease is given back)."""
    echo = Echo()
    echo.gate.clear()
    orphans: list[int] = []

    async def orphan(result: int) -> None:
        orphans.append(result)

    coalescer = Coalescer(echo, orphan=orphan)
    first = asyncio.create_task(coalescer.submit(1))
    await echo.entered.wait()
    tasks = [asyncio.create_task(coalescer.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    echo.entered.clear()
    echo.gate.set()  # wakes the first batch only: the second finds the gate shut
    echo.gate.clear()
    assert await first == 2
    await echo.entered.wait()  # the second batch is in flight now
    tasks[1].cancel()
    echo.gate.set()
    assert await tasks[0] == 4
    assert await tasks[2] == 8
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    await asyncio.sleep(0)
    assert orphans == [6]
    assert echo.batches == [[1], [2, 3, 4]]


async def test_cancelling_the_first_caller_cancels_only_its_own_call() -> None:
    """The call sent alone runs in its caller's task: cancelling it ends that call only, and
    the calls that queued behind it still go."""
    echo = Echo()
    echo.gate.clear()
    coalescer = Coalescer(echo)
    first = asyncio.create_task(coalescer.submit(1))
    await echo.entered.wait()
    second = asyncio.create_task(coalescer.submit(2))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    echo.gate.set()
    assert await second == 4


async def test_batches_are_bounded() -> None:
    """No round trip carries more than `limit` requests."""
    echo = Echo()
    echo.gate.clear()
    coalescer = Coalescer(echo, limit=3)
    tasks = [asyncio.create_task(coalescer.submit(n)) for n in range(8)]
    await echo.entered.wait()
    echo.gate.set()
    assert await asyncio.gather(*tasks) == [2 * n for n in range(8)]
    assert echo.batches == [[0], [1, 2, 3], [4, 5, 6], [7]]


def test_a_new_event_loop_starts_afresh() -> None:
    """A queue used from a second event loop (asyncio.run twice) is not stuck on the first's."""
    echo = Echo()
    coalescer = Coalescer(echo)

    async def abandon() -> None:
        echo.gate.clear()
        first = asyncio.create_task(coalescer.submit(1))
        await echo.entered.wait()
        asyncio.create_task(coalescer.submit(2))  # noqa: RUF006 (left behind on purpose)
        await asyncio.sleep(0)
        first.cancel()

    async def use() -> int:
        echo.gate.set()
        return await coalescer.submit(5)

    asyncio.run(abandon())
    assert asyncio.run(use()) == 10
