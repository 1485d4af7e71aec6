"""A kill -9 between a write reaching the CRM and the outbox settling it.

Then the CRM holds the sent value while the ``written`` table still holds the one before. If the
value then goes back to that one (the next process consumes its backlog before its writers
start, or the value moved back while the write was in flight), the outbox must not cancel the
pending write as "unchanged": the CRM does not hold what ``written`` says. Found by
tests/streams/test_crash.py: ``Account a16 won_qtd`` kept 11408 in the sink where every later
value ended in 0 (written 0 earlier, 11408 sent just before a kill, 0 again after the restart).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.connectors.protocols import FieldWrite, WriteResult
from crm_pulse.metrics.events import Event, parse_time
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.writeback import Backoff, SQLiteOutbox, Writer

from .conftest import Clock


class Killed(BaseException):
    """The process died (kill -9): nothing after this point runs."""


class CrmSink:
    """Applies writes to ``crm`` (kept across 'restarts'); ``during`` runs while a write is in
    flight; ``kill_after`` dies once that many calls reached the CRM (before the settle)."""

    max_batch = 100
    rounds_in_flight = 1

    def __init__(self, crm: dict[tuple[str, str, str], Any]) -> None:
        self.crm = crm
        self.calls: list[list[FieldWrite]] = []
        self.during: Callable[[int], None] | None = None
        self.kill_after: int | None = None

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        self.calls.append(list(writes))
        if self.during is not None:
            self.during(len(self.calls))
        for x in writes:
            self.crm[(x.object, x.record_id, x.field)] = x.value
        if self.kill_after is not None and len(self.calls) >= self.kill_after:
            raise Killed
        return [WriteResult(x, ok=True) for x in writes]


def w(value: float | int | None) -> FieldWrite:
    return FieldWrite("crm", "Account", "a16", "won_qtd", value)


KEY = ("Account", "a16", "won_qtd")


class Process:
    """One run of the runtime on the state file: its outbox, its writer, its consumer's puts."""

    def __init__(self, path: Path, crm: dict[tuple[str, str, str], Any]) -> None:
        self.db = Database(path)
        self.outbox = SQLiteOutbox(self.db)
        self.db.call(lambda: self.outbox.recover(self.db.conn))  # as the runtime does at start
        self.clock = Clock(1000.0)
        self.sink = CrmSink(crm)
        backoff = Backoff(1.0, 60.0, 3)
        self.writer = Writer("crm", self.sink, self.outbox, backoff, clock=self.clock)

    def plan(self, value: float | int | None) -> None:
        """What the consumer does with a batch's writes (in its transaction)."""
        self.db.call(
            self.db.transaction(
                lambda conn: SQLiteOutbox.put(
                    conn, [w(value)], self.clock.now, 0.0, maybe_sent=self.outbox.maybe_sent
                )
            )
        )

    async def flush_killed(self) -> None:
        with pytest.raises(Killed):
            await self.writer.flush()
        self.db.close()

    def close(self) -> None:
        self.db.close()


async def test_a_value_back_to_a_written_one_after_a_killed_write_is_written(
    tmp_path: Path,
) -> None:
    crm: dict[tuple[str, str, str], Any] = {}
    p = Process(tmp_path / "s.sqlite", crm)
    p.plan(0)
    await p.writer.flush()
    assert crm[KEY] == 0
    p.plan(11408)
    p.sink.kill_after = 2
    await p.flush_killed()  # 11408 reached the CRM; the outbox never heard
    assert crm[KEY] == 11408

    p = Process(tmp_path / "s.sqlite", crm)  # the restart consumes its backlog first
    p.plan(18783)
    p.plan(0)  # where the value ends: the one `written` (wrongly) says the CRM holds
    await p.writer.flush()
    assert crm[KEY] == 0
    assert await p.writer.flush() == 0
    assert p.db.call(lambda: SQLiteOutbox.depth(p.db.conn)) == 0
    p.close()


async def test_a_write_cancelled_in_flight_then_killed_is_undone_after_the_restart(
    tmp_path: Path,
) -> None:
    crm: dict[tuple[str, str, str], Any] = {}
    p = Process(tmp_path / "s.sqlite", crm)
    p.plan(0)
    await p.writer.flush()
    p.plan(11408)
    proc = p

    def back_to_zero(n: int) -> None:
        if n == 2:  # while 11408 is on its way, a batch takes the value back to 0
            proc.plan(0)

    p.sink.during = back_to_zero
    p.sink.kill_after = 2
    await p.flush_killed()
    assert crm[KEY] == 11408

    p = Process(tmp_path / "s.sqlite", crm)
    await p.writer.flush()
    assert crm[KEY] == 0
    assert p.db.call(lambda: SQLiteOutbox.depth(p.db.conn)) == 0
    p.close()


async def test_without_a_kill_a_value_back_to_the_written_one_is_still_cancelled(
    tmp_path: Path,
) -> None:
    """No redundant write when nothing was lost: 0 written, 5 planned, 0 again before the
    writer ran: nothing is sent (also after a clean restart with an empty outbox)."""
    crm: dict[tuple[str, str, str], Any] = {}
    p = Process(tmp_path / "s.sqlite", crm)
    p.plan(0)
    await p.writer.flush()
    p.plan(5)
    p.plan(0)
    assert await p.writer.flush() == 0
    p.close()
    p = Process(tmp_path / "s.sqlite", crm)
    p.plan(5)
    p.plan(0)
    assert await p.writer.flush() == 0
    assert [c[0].value for c in p.sink.calls] == []
    p.close()


DEPLOY = """
timezone: UTC
connectors:
  - file: {{name: out, path: "{out}", max_batch: 100}}
writeback:
  - {{metric: won_revenue, window: quarter, group: account_id, target: {{connector: out, object: Account, field: won_qtd}}}}
runtime:
  state_path: "{state}"
  debounce: 1s
"""


def deal(version: int, status: str, amount: int) -> Event:
    return Event.model_validate(
        {
            "source": "crm",
            "object": "deal",
            "id": "d1",
            "op": "upsert",
            "version": version,
            "fields": {
                "owner_id": "u1",
                "account_id": "a16",
                "status": status,
                "amount": str(amount),
                "created_at": "2026-11-01T00:00:00Z",
                "closed_at": "2026-11-10T10:00:00Z",
                "type": "new",
            },
        }
    )


async def test_the_runtime_restarted_after_a_killed_write_writes_the_value_back(
    tmp_path: Path,
) -> None:
    """The embedded runtime end to end: 8336 then 0 written, 11408 reaches the CRM and the process dies
    before the settle; the next process consumes a batch that takes the value back to 0 before
    its writer runs. The CRM must end at 0 (it kept 11408)."""
    deployment = load_config_text(
        DEPLOY.format(out=tmp_path / "writes.jsonl", state=tmp_path / "state.sqlite"),
        base_dir=tmp_path,
    )
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    crm: dict[tuple[str, str, str], Any] = {}
    sink = CrmSink(crm)
    rt = EmbeddedRuntime(deployment, clock=clock, sinks={"out": sink})
    await rt.ingest("crm", [deal(1, "won", 8336)])
    await rt.consume_all()
    clock.now += 2
    await rt.flush_writes()
    await rt.ingest("crm", [deal(2, "lost", 8336)])
    await rt.consume_all()
    clock.now += 2
    await rt.flush_writes()
    assert crm == {KEY: 0}
    await rt.ingest("crm", [deal(3, "won", 11408)])
    await rt.consume_all()
    clock.now += 2
    sink.kill_after = 3
    with pytest.raises(Killed):
        await rt.flush_writes()
    assert crm == {KEY: 11408}
    await rt.close()  # nothing after the sink's call ran: the outbox never heard of it

    sink = CrmSink(crm)
    rt = EmbeddedRuntime(deployment, clock=clock, sinks={"out": sink})
    await rt.ingest("crm", [deal(4, "lost", 11408)])
    await rt.consume_all()
    clock.now += 2
    await rt.flush_writes()
    assert crm == {KEY: 0}
    assert rt.db.call(lambda: SQLiteOutbox.depth(rt.db.conn)) == 0
    await rt.close()
