"""The kit's throughput helpers: reading one page ahead, starting a read beside another one,
and a rolling window shared by concurrent callers (crm_pulse.connectors.read_ahead,
start_reading, crm_pulse.retry.RollingWindow)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from crm_pulse.connectors import RollingWindow, read_ahead, start_reading


class Pages:
    """A cursor-style page source that records when each request starts and ends."""

    def __init__(self, n: int, *, fail_at: int | None = None) -> None:
        self.n = n
        self.fail_at = fail_at
        self.log: list[str] = []
        self.in_flight = 0
        self.peak = 0
        self.closed = False
        self.release = asyncio.Event()
        self.release.set()

    async def pages(self) -> AsyncIterator[int]:
        try:
            for i in range(self.n):
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
                self.log.append(f"request {i}")
                await self.release.wait()
                await asyncio.sleep(0.001)  # the round trip
                self.in_flight -= 1
                if i == self.fail_at:
                    raise RuntimeError(f"page {i} failed")
                yield i
        finally:
            self.closed = True


async def test_read_ahead_asks_for_the_next_page_while_the_caller_holds_this_one() -> None:
    source = Pages(4)
    got = []
    async for page in read_ahead(source.pages()):
        # the next page's request has already gone out before the caller works on this one
        if page < 3:
            assert f"request {page + 1}" in source.log
        source.log.append(f"mapped {page}")
        got.append(page)
    assert got == [0, 1, 2, 3]  # every page, in order
    assert source.peak == 1  # one request per cursor at a time, never more
    # request n + 1 starts before page n is mapped
    assert source.log.index("request 2") < source.log.index("mapped 1")


async def test_read_ahead_hands_out_every_page_before_the_failing_one() -> None:
    source = Pages(5, fail_at=2)
    got = []
    with pytest.raises(RuntimeError, match="page 2 failed"):
        async for page in read_ahead(source.pages()):
            got.append(page)
    assert got == [0, 1]
    assert source.closed


async def test_stopping_early_cancels_the_request_in_flight_and_closes_the_pages() -> None:
    source = Pages(10)
    pages = read_ahead(source.pages())
    assert await anext(pages) == 0
    source.release.clear()  # the read-ahead request now hangs
    await asyncio.sleep(0.01)
    await pages.aclose()  # type: ignore[attr-defined]  # an async generator
    assert source.closed
    assert source.log == ["request 0", "request 1"]


async def test_a_started_read_is_in_flight_beside_other_work_and_reads_ahead_later() -> None:
    source = Pages(3)
    async with start_reading(source.pages()) as pages:
        await asyncio.sleep(0.01)  # other work (the scan beside it)
        assert source.log == ["request 0"]  # asked for at once, nothing more until taken
        got = []
        async for page in pages:
            if page < 2:
                assert f"request {page + 1}" in source.log  # then one page ahead
            got.append(page)
    assert got == [0, 1, 2]
    assert source.peak == 1 and source.closed


async def test_a_started_read_left_unread_is_cancelled_and_closed() -> None:
    source = Pages(10)
    source.release.clear()  # its first request hangs
    async with start_reading(source.pages()):
        await asyncio.sleep(0.01)
    assert source.closed
    assert source.log == ["request 0"]
    # and one whose first page came but was never taken asks for no second page
    source = Pages(10)
    async with start_reading(source.pages()):
        await asyncio.sleep(0.01)
    assert source.log == ["request 0"] and source.closed


async def test_a_started_read_hands_out_every_page_before_the_failing_one() -> None:
    source = Pages(5, fail_at=1)
    got = []
    with pytest.raises(RuntimeError, match="page 1 failed"):
        async with start_reading(source.pages()) as pages:
            async for page in pages:
                got.append(page)
    assert got == [0]
    assert source.closed


async def test_a_rolling_window_never_lets_concurrent_callers_exceed_it() -> None:
    now = [0.0]
    starts: list[float] = []

    async def sleep(seconds: float) -> None:  # a clock that moves only while callers sleep
        until = now[0] + seconds
        await asyncio.sleep(0)
        now[0] = max(now[0], until)

    window = RollingWindow(3, 2.0, clock=lambda: now[0], sleep=sleep)

    async def call() -> None:
        await window.acquire()
        starts.append(now[0])

    await asyncio.gather(*(call() for _ in range(10)))
    assert len(starts) == 10
    for s in starts:  # at most 3 starts in any 2-second window
        assert sum(1 for t in starts if s <= t < s + 2.0) <= 3
    assert starts[:3] == [0.0, 0.0, 0.0]  # the allowance is used at once, not spread out
    assert max(starts) == pytest.approx(6.0)  # 10 calls = 4 windows: no wait beyond the limit
    assert window.waited > 0


def test_a_rolling_window_follows_a_limit_learned_later_and_keeps_a_margin() -> None:
    now = [0.0]
    window = RollingWindow(2, 1.0, margin=0.1, clock=lambda: now[0])
    asyncio.run(window.acquire())
    asyncio.run(window.acquire())  # two calls started at 0
    assert window.wait_for() == pytest.approx(1.1)  # the vendor counts arrivals, a bit later
    window.calls = 5  # the answers said the account allows more
    assert window.wait_for() == 0.0
    now[0] = 1.2
    window.calls = 1
    assert window.wait_for() == 0.0  # both starts have left the window


def test_a_call_counts_in_the_window_from_its_answer_once_told() -> None:
    """The vendor counts a call on arrival, after our start: counting from the answer keeps
    the next call out of the vendor's window however late the first one arrived."""
    now = [0.0]
    window = RollingWindow(1, 1.0, clock=lambda: now[0])

    async def main() -> None:
        entry = await window.acquire()
        now[0] = 0.4  # the answer comes 0.4 s later (it arrived somewhere in between)
        window.answered(entry)
        now[0] = 1.2
        assert window.wait_for() == pytest.approx(0.2)  # 1 s after the answer, not the start
        now[0] = 1.4
        assert window.wait_for() == 0.0

    asyncio.run(main())


def test_a_call_without_its_answer_counts_as_arriving_now() -> None:
    """With ``until_answered`` a call in flight (stalled in a thread, on the wire) keeps its
    place in the window however long it takes; from its answer it counts from then."""
    now = [0.0]
    window = RollingWindow(1, 1.0, until_answered=True, clock=lambda: now[0])

    async def main() -> None:
        entry = await window.acquire()
        now[0] = 5.0  # no answer after 5 s: it may reach the vendor any moment
        assert window.wait_for() == pytest.approx(1.0)
        window.answered(entry)
        now[0] = 5.5
        assert window.wait_for() == pytest.approx(0.5)
        now[0] = 6.0
        assert window.wait_for() == 0.0

    asyncio.run(main())
