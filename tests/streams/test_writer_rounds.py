"""Write-back rounds in flight: the writer hands the sink its next round before the last one
settles (``Sink.rounds_in_flight``), and stays exact: a field is in one round out at most, so
its values reach the CRM in order and a later value is never overwritten by an earlier one;
rounds settle in the order they were handed over; after a rate limit no new round goes out;
rounds still out when the process dies are sent again after the restart."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.connectors.protocols import FieldWrite, WriteResult
from crm_pulse.errors import FatalError, RateLimited
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.writeback import Backoff, Outcome, SQLiteOutbox, Writer

from .conftest import Clock

Key = tuple[str, str, str]


def w(record: str, value: float | int | None, field: str = "f") -> FieldWrite:
    return FieldWrite("crm", "Account", record, field, value)


class Killed(BaseException):
    """The process died (kill -9): nothing after this point runs."""


class GatedSink:
    """A CRM behind a sink whose calls wait until the test opens their gate (``auto``: open
    at once); it records every value each field received, in the order the CRM applied them,
    and how many calls were out at once."""

    def __init__(self, rounds_in_flight: int, max_batch: int = 10, *, auto: bool = False) -> None:
        self.rounds_in_flight = rounds_in_flight
        self.max_batch = max_batch
        self.auto = auto
        self.crm: dict[Key, Any] = {}
        self.received: dict[Key, list[Any]] = {}
        self.calls: list[list[FieldWrite]] = []
        self.gates: list[asyncio.Event] = []
        self.out = 0
        self.peak = 0
        self.fail: dict[int, BaseException] = {}  # call number (1-based) -> raised after applying
        self.refuse: dict[int, BaseException] = {}  # call number -> raised, nothing applied
        self.latency: tuple[float, float] | None = None

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        assert len(writes) <= self.max_batch
        self.calls.append(list(writes))
        n = len(self.calls)
        gate = asyncio.Event()
        self.gates.append(gate)
        self.out += 1
        self.peak = max(self.peak, self.out)
        try:
            if self.latency is not None:
                await asyncio.sleep(random.uniform(*self.latency))
            elif not self.auto:
                await gate.wait()
            if n in self.refuse:
                raise self.refuse[n]
            for x in writes:
                key = (x.object, x.record_id, x.field)
                self.crm[key] = x.value
                self.received.setdefault(key, []).append(x.value)
            if n in self.fail:
                raise self.fail[n]
            return [WriteResult(x, ok=True) for x in writes]
        finally:
            self.out -= 1


async def until(condition: Any, timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(wait(), timeout)


class Run:
    def __init__(self, path: Path, sink: GatedSink, clock: Clock | None = None) -> None:
        self.db = Database(path)
        self.outbox = SQLiteOutbox(self.db)
        self.db.call(lambda: self.outbox.recover(self.db.conn))
        self.clock = clock or Clock(1000.0)
        self.sink = sink
        self.writer = Writer("crm", sink, self.outbox, Backoff(1.0, 60.0, 3), clock=self.clock)
        self.settled: list[list[FieldWrite]] = []
        settle = self.outbox.settle

        async def recording(outcomes: Sequence[Outcome], now_ms: int) -> None:
            self.settled.append([o.item.write for o in outcomes])
            await settle(outcomes, now_ms)

        self.outbox.settle = recording  # type: ignore[method-assign]

    def plan(self, writes: Sequence[FieldWrite]) -> None:
        self.db.call(
            self.db.transaction(
                lambda conn: SQLiteOutbox.put(
                    conn, writes, self.clock.now, 0.0, maybe_sent=self.outbox.maybe_sent
                )
            )
        )

    def depth(self) -> int:
        return self.db.call(lambda: SQLiteOutbox.depth(self.db.conn))


@pytest.mark.parametrize("rounds", [1, 2, 3])
async def test_the_next_rounds_go_out_before_the_first_one_settles(
    tmp_path: Path, rounds: int
) -> None:
    sink = GatedSink(rounds, max_batch=10)
    run = Run(tmp_path / "s.sqlite", sink)
    run.plan([w(f"r{i:02}", i) for i in range(50)])
    flush = asyncio.create_task(run.writer.flush())
    await until(lambda: len(sink.calls) == rounds)
    await asyncio.sleep(0.05)
    assert len(sink.calls) == rounds  # never more than the sink allows
    assert run.settled == []
    for k in range(5):  # each round settled lets one more go out
        sink.gates[k].set()
        await until(lambda k=k: len(sink.calls) == min(5, k + 1 + rounds))
        await asyncio.sleep(0.02)
        assert len(sink.calls) == min(5, k + 1 + rounds)
        assert len(run.settled) == k + 1
    assert await flush == 5
    assert sink.peak == rounds
    assert sink.crm == {("Account", f"r{i:02}", "f"): i for i in range(50)}
    assert run.depth() == 0
    # every row went out once, in the outbox's order
    assert [x.record_id for c in sink.calls for x in c] == [f"r{i:02}" for i in range(50)]


async def test_a_field_in_a_round_out_waits_for_its_settle(tmp_path: Path) -> None:
    """Rounds 1 [a b c] and 2 [d e f] go out; while they are out d = 2 is planned. Round 1
    settles and round 3 goes out -- without d, whose older value is still out in round 2;
    d = 2 follows once round 2 is settled."""
    sink = GatedSink(2, max_batch=3)
    run = Run(tmp_path / "s.sqlite", sink)
    run.plan([w(r, 1) for r in "abcdef"])
    flush = asyncio.create_task(run.writer.flush())
    await until(lambda: len(sink.calls) == 2)
    run.plan([w("d", 2), w("g", 1), w("h", 1)])
    sink.gates[0].set()
    await until(lambda: len(sink.calls) == 3)
    assert [(x.record_id, x.value) for x in sink.calls[2]] == [("g", 1), ("h", 1)]
    sink.gates[2].set()
    await asyncio.sleep(0.05)
    assert len(sink.calls) == 3  # round 3 is back but settles after round 2
    sink.gates[1].set()
    await until(lambda: len(sink.calls) == 4)
    assert [(x.record_id, x.value) for x in sink.calls[3]] == [("d", 2)]
    sink.gates[3].set()
    assert await flush == 4
    assert sink.received[("Account", "d", "f")] == [1, 2]
    assert sink.crm[("Account", "d", "f")] == 2
    assert run.depth() == 0


async def test_a_second_flush_never_takes_a_field_the_first_has_out(tmp_path: Path) -> None:
    """A flush has a = 1 out (slow); a = 2 is planned and another flush starts (the writer was
    woken): it must not send a = 2, which would land first and be overwritten by the older 1."""
    sink = GatedSink(2, max_batch=2)
    run = Run(tmp_path / "s.sqlite", sink)
    run.plan([w("a", 1), w("b", 1)])
    first = asyncio.create_task(run.writer.flush())
    await until(lambda: len(sink.calls) == 1)
    run.plan([w("a", 2), w("c", 1), w("d", 1)])
    second = asyncio.create_task(run.writer.flush())
    await until(lambda: len(sink.calls) == 2)
    await asyncio.sleep(0.05)
    sent = [(x.record_id, x.value) for c in sink.calls[1:] for x in c]
    assert ("a", 2) not in sent
    assert sent == [("c", 1), ("d", 1)]
    sink.gates[1].set()
    await second
    sink.auto = True  # calls from now on answer at once
    sink.gates[0].set()
    await first
    assert sink.received[("Account", "a", "f")] == [1, 2]
    assert run.depth() == 0


async def test_rounds_settle_in_the_order_they_were_handed_over(tmp_path: Path) -> None:
    sink = GatedSink(3, max_batch=2)
    run = Run(tmp_path / "s.sqlite", sink)
    run.plan([w(f"r{i}", i) for i in range(6)])
    flush = asyncio.create_task(run.writer.flush())
    await until(lambda: len(sink.calls) == 3)
    sink.gates[2].set()
    sink.gates[1].set()
    await asyncio.sleep(0.05)
    assert run.settled == []  # rounds 2 and 3 are back, round 1 is not: nothing settles yet
    sink.gates[0].set()
    assert await flush == 3
    assert run.settled == sink.calls


async def test_after_a_rate_limit_no_round_goes_out_until_the_pause_ends(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    sink = GatedSink(2, max_batch=5, auto=True)
    sink.refuse[1] = RateLimited("429 too many requests", 30.0)
    run = Run(tmp_path / "s.sqlite", sink, clock)
    run.plan([w(f"r{i:02}", i) for i in range(20)])
    assert await run.writer.flush() == 2  # round 1 refused, round 2 already out and written
    assert len(sink.calls) == 2
    assert run.writer.stats.paused_until == pytest.approx(1030.0)
    assert run.depth() == 15  # round 1's five wait for Retry-After, the other ten were not sent
    assert await run.writer.flush() == 0  # still paused
    clock.now += 31
    assert await run.writer.flush() == 3
    assert sink.crm == {("Account", f"r{i:02}", "f"): i for i in range(20)}
    assert run.depth() == 0


async def test_a_fatal_error_cancels_the_rounds_out_and_leaves_them_pending(
    tmp_path: Path,
) -> None:
    sink = GatedSink(2, max_batch=5)
    sink.refuse[1] = FatalError("bad credentials")
    run = Run(tmp_path / "s.sqlite", sink)
    run.plan([w(f"r{i:02}", i) for i in range(10)])
    flush = asyncio.create_task(run.writer.flush())
    await until(lambda: len(sink.calls) == 2)
    sink.gates[0].set()
    with pytest.raises(FatalError):
        await flush
    assert len(sink.calls) == 2
    assert sink.out == 0  # the second round was cancelled, not left running
    assert run.depth() == 10
    assert len(run.outbox.maybe_sent) == 10  # either may have reached the CRM


async def test_rounds_out_when_the_process_dies_are_sent_again_after_the_restart(
    tmp_path: Path,
) -> None:
    """Rounds 1 and 2 both reach the CRM; the process dies before either settles. Meanwhile
    the values of round 2 went back to the ones written before: after the restart they are
    still written (the CRM holds the newer ones), and every field ends at its last value."""
    path = tmp_path / "s.sqlite"
    sink = GatedSink(2, max_batch=5, auto=True)
    run = Run(path, sink)
    run.plan([w(f"r{i:02}", 0) for i in range(10)])
    await run.writer.flush()
    run.plan([w(f"r{i:02}", 100 + i) for i in range(10)])
    sink.fail[4] = Killed()  # round 2 of this flush lands, then the process dies
    sink.latency = None
    with pytest.raises(Killed):
        await run.writer.flush()
    assert all(sink.crm[("Account", f"r{i:02}", "f")] == 100 + i for i in range(10))
    run.db.close()

    crm = sink.crm
    sink = GatedSink(2, max_batch=5, auto=True)
    sink.crm = crm
    run = Run(path, sink)  # the restart: consumes its backlog first
    run.plan([w(f"r{i:02}", 0) for i in range(5, 10)])  # back to the `written` value
    await run.writer.flush()
    assert sink.crm == {("Account", f"r{i:02}", "f"): (100 + i if i < 5 else 0) for i in range(10)}
    assert run.depth() == 0
    run.db.close()


@pytest.mark.parametrize("seed", range(6))
async def test_random_latencies_and_changing_values_reach_the_crm_in_order(
    tmp_path: Path, seed: int
) -> None:
    """Values of 12 fields change while the writer runs with 3 rounds out, each call taking a
    random time: every field's received values follow the order they were planned in (never
    an older after a newer, none twice), and each field ends at its last planned value."""
    rng = random.Random(seed)
    random.seed(seed)
    sink = GatedSink(3, max_batch=4)
    sink.latency = (0.0, 0.01)
    run = Run(tmp_path / "s.sqlite", sink)
    fields = [f"r{i:02}" for i in range(12)]
    planned: dict[str, list[int]] = {f: [] for f in fields}
    stop = asyncio.Event()
    counter = 0

    async def produce() -> None:
        nonlocal counter
        for _ in range(60):
            batch = {}
            for f in rng.sample(fields, rng.randint(1, 5)):
                counter += 1
                batch[f] = counter
                planned[f].append(counter)
            run.plan([w(f, v) for f, v in batch.items()])
            await asyncio.sleep(rng.uniform(0, 0.004))
        stop.set()

    async def write() -> None:
        while not stop.is_set():
            await run.writer.flush()
            await asyncio.sleep(0.001)
        await run.writer.flush()

    await asyncio.gather(produce(), write())
    assert sink.peak > 1  # rounds did overlap
    for f in fields:
        got = sink.received.get(("Account", f, "f"), [])
        assert got == sorted(set(got)), f  # in plan order, none twice
        assert set(got) <= set(planned[f])
        if planned[f]:
            assert sink.crm[("Account", f, "f")] == planned[f][-1]
    assert run.depth() == 0


async def test_a_round_reads_its_rows_off_an_index_without_sorting_every_due_row(
    tmp_path: Path,
) -> None:
    """The query ``due`` runs (as SQLite traced it, values bound) is planned without a sort of
    the due rows: a round of 400 out of 40,000 pending reads 400 index entries."""
    run = Run(tmp_path / "s.sqlite", GatedSink(1, auto=True))
    run.plan([w(f"r{i:03}", i) for i in range(300)])
    seen: list[str] = []
    run.db.call(lambda: run.db.conn.set_trace_callback(seen.append))
    items = await run.outbox.due("crm", 2000.0, 10)
    run.db.call(lambda: run.db.conn.set_trace_callback(None))
    assert [i.write.record_id for i in items] == [f"r{i:03}" for i in range(10)]
    [query] = [q for q in seen if q.lstrip().upper().startswith("SELECT")]
    plan = run.db.call(lambda: run.db.conn.execute("EXPLAIN QUERY PLAN " + query).fetchall())
    assert not any("TEMP B-TREE" in str(row[-1]) for row in plan), plan
    run.db.close()
