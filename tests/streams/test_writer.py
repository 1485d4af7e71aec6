"""Write-back: batching, coalescing, no-op suppression, retries, Retry-After, dead letters."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from crm_pulse.connectors.protocols import FieldWrite, WriteResult
from crm_pulse.errors import RateLimited, RetriableError
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.writeback import Backoff, SQLiteOutbox, Writer

from .conftest import Clock
from .fakes import ScriptedSink


def w(record: str, value: float, field: str = "f") -> FieldWrite:
    return FieldWrite("crm", "Account", record, field, value)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "s.sqlite")


def plan(db: Database, writes: Sequence[FieldWrite], now: float, debounce: float = 2.0) -> None:
    db.call(db.transaction(lambda conn: SQLiteOutbox.put(conn, writes, now, debounce)))


class Longest(random.Random):
    """Full jitter picks a delay in [0, cap]; this picks the cap, so the caps can be checked."""

    def uniform(self, a: float, b: float) -> float:
        return b


def make_writer(db: Database, sink: ScriptedSink, clock: Clock, attempts: int = 3) -> Writer:
    backoff = Backoff(1.0, 60.0, attempts, rng=Longest())
    return Writer("crm", sink, SQLiteOutbox(db), backoff, clock=clock)


async def test_a_burst_is_coalesced_and_batched(db: Database) -> None:
    clock = Clock(1000.0)
    sink = ScriptedSink(max_batch=100)
    writer = make_writer(db, sink, clock)
    # 250 records x 20 successive values each within the debounce: 5,000 changed values
    for step in range(20):
        plan(db, [w(f"r{i}", step * 1000 + i) for i in range(250)], clock.now)
        clock.now += 0.05
    assert await writer.flush() == 0  # debounce not over
    clock.now += 2
    calls = await writer.flush()
    assert calls == 3  # 100 + 100 + 50
    assert sink.values == {("Account", f"r{i}", "f"): 19_000 + i for i in range(250)}
    # the same values again: nothing to send
    plan(db, [w(f"r{i}", 19_000 + i) for i in range(250)], clock.now)
    clock.now += 5
    assert await writer.flush() == 0
    assert len(sink.calls) == 3


async def test_value_back_to_the_written_one_cancels_the_pending_write(db: Database) -> None:
    clock = Clock(0.0)
    sink = ScriptedSink()
    writer = make_writer(db, sink, clock)
    plan(db, [w("a", 1)], clock.now)
    clock.now += 3
    await writer.flush()
    plan(db, [w("a", 2)], clock.now)
    plan(db, [w("a", 1)], clock.now)
    clock.now += 3
    assert await writer.flush() == 0
    assert [c[0].value for c in sink.calls] == [1]


async def test_a_write_cancelled_while_in_flight_is_undone(db: Database) -> None:
    """The value goes 1 (written) -> 2 (sent) -> 1 while 2 is on its way: the CRM ends up
    holding 2 unless the writer sends 1 again (kill -9 test: a rolling count written one short)."""
    clock = Clock(0.0)

    def meanwhile(n: int, writes: Sequence[FieldWrite]) -> None:
        if n == 2:  # while 2 is being written, the value goes back to the written 1
            plan(db, [w("a", 1)], clock.now, debounce=0)

    sink = ScriptedSink(script=meanwhile)
    writer = make_writer(db, sink, clock)
    plan(db, [w("a", 1)], clock.now, debounce=0)
    await writer.flush()
    plan(db, [w("a", 2)], clock.now, debounce=0)
    await writer.flush()
    assert sink.values == {("Account", "a", "f"): 1}
    assert [c[0].value for c in sink.calls] == [1, 2, 1]
    assert await writer.flush() == 0


async def test_rate_limit_waits_for_retry_after_without_using_attempts(db: Database) -> None:
    clock = Clock(0.0)

    def script(n: int, writes: Sequence[FieldWrite]) -> list[WriteResult] | Exception | None:
        return RateLimited("429 from the test", retry_after=30) if n <= 4 else None

    sink = ScriptedSink(script=script)
    writer = make_writer(db, sink, clock, attempts=2)
    plan(db, [w("a", 1)], clock.now, debounce=0)
    for _ in range(4):
        assert await writer.flush() == 1
        assert await writer.flush() == 0  # paused: not one call before Retry-After
        clock.now += 29
        assert await writer.flush() == 0
        clock.now += 1.5
    await writer.flush()
    assert sink.values == {("Account", "a", "f"): 1}
    assert writer.stats.rate_limited == 4 and writer.stats.dead == 0


async def test_retriable_failures_back_off_then_dead_letter(db: Database) -> None:
    clock = Clock(0.0)

    def script(n: int, writes: Sequence[FieldWrite]) -> list[WriteResult] | Exception | None:
        out = []
        for x in writes:
            if x.record_id == "locked":
                out.append(WriteResult(x, ok=False, retriable=True, reason="UNABLE_TO_LOCK_ROW"))
            elif x.record_id == "gone":
                out.append(WriteResult(x, ok=False, reason="ENTITY_IS_DELETED"))
            else:
                out.append(WriteResult(x, ok=True))
        return out

    sink = ScriptedSink(script=script)
    writer = make_writer(db, sink, clock, attempts=3)
    plan(db, [w("ok", 1), w("locked", 2), w("gone", 3)], clock.now, debounce=0)
    await writer.flush()
    dead = db.call(lambda: SQLiteOutbox.dead_letters(db.conn))
    assert [(d["record_id"], d["reason"]) for d in dead] == [("gone", "ENTITY_IS_DELETED")]
    # the locked row comes back after a growing delay, then goes to the dead letters
    times = []
    for _ in range(50):
        clock.now += 0.25
        before = len(sink.calls)
        await writer.flush()
        if len(sink.calls) > before:
            times.append(clock.now)
    assert len(times) == 2  # attempts 2 and 3
    assert times[1] - times[0] > 1.0  # exponential: the second cap is twice the first
    dead = db.call(lambda: SQLiteOutbox.dead_letters(db.conn))
    assert dead[0]["record_id"] == "locked" and "UNABLE_TO_LOCK_ROW" in str(dead[0]["reason"])
    assert db.call(lambda: SQLiteOutbox.depth(db.conn)) == 0


async def test_whole_call_failure_retries_every_write(db: Database) -> None:
    clock = Clock(0.0)

    def script(n: int, writes: Sequence[FieldWrite]) -> list[WriteResult] | Exception | None:
        return RetriableError("503 from the test") if n == 1 else None

    sink = ScriptedSink(script=script)
    writer = make_writer(db, sink, clock)
    plan(db, [w("a", 1), w("b", 2)], clock.now, debounce=0)
    await writer.flush()
    assert sink.values == {}
    clock.now += 5
    await writer.flush()
    assert sink.values == {("Account", "a", "f"): 1, ("Account", "b", "f"): 2}


async def test_newer_value_planned_during_a_write_is_still_sent(db: Database) -> None:
    clock = Clock(0.0)

    def script(n: int, writes: Sequence[FieldWrite]) -> list[WriteResult] | Exception | None:
        if n == 1:  # while the first write is in flight, the value changes again
            plan(db, [w("a", 2)], clock.now, debounce=0)
        return None

    sink = ScriptedSink(script=script)
    writer = make_writer(db, sink, clock)
    plan(db, [w("a", 1)], clock.now, debounce=0)
    await writer.flush()
    await writer.flush()
    assert [c[0].value for c in sink.calls] == [1, 2]
    assert sink.values == {("Account", "a", "f"): 2}
