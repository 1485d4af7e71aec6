"""Issue 13: a source's bad record is quarantined (never stops, never loops unseen), dead letters
of an outage come back by themselves, and the CLI manages both."""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from crm_pulse.cli import main
from crm_pulse.connectors.protocols import BadRecord, Connector, Cursor, FieldWrite, Page
from crm_pulse.errors import DataError, RetriableError
from crm_pulse.metrics.events import Event, parse_time
from crm_pulse.streams.embedded import quarantine
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.embedded.runtime import STALL_INTERVALS, EmbeddedRuntime
from crm_pulse.streams.writeback import Backoff, SQLiteOutbox, Writer

from .conftest import Clock
from .fakes import ScriptedSink
from .test_embedded_pipeline import deal


class BadRecordSource:
    """A plugin-like source: page 2 has a bad record, reported as the kit says (``rejected``)
    or by raising (``mode``: "reject", "data", "pydantic")."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.calls = 0

    async def _pages(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        self.calls += 1
        pos = int((cursor or {}).get("pos", 0))
        if pos == 0:
            yield Page([deal(1, 1, "won", "10", "2026-11-05T00:00:00Z")], {"pos": 1})
            pos = 1
        if pos == 1:
            if self.mode == "data":
                raise DataError("owner is not a number", where="record 2")
            if self.mode == "pydantic":
                Event.model_validate({"source": "crm", "object": "deal", "id": "2", "op": "x"})
            yield Page(
                [deal(3, 1, "won", "5", "2026-11-05T00:00:00Z")],
                {"pos": 3},
                skipped=[BadRecord("deal", "2", "owner is not a number")],
            )

    def backfill(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._pages(cursor)

    def poll(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        return self._pages(cursor)


class One(Connector):
    kind = "plugin"

    def __init__(self, source: Any) -> None:
        super().__init__("crm", {})
        self.source = source
        self.poll_interval = 1.0


async def test_a_rejected_record_is_quarantined_and_the_source_moves_on(
    make_deployment: Any,
) -> None:
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    rt = EmbeddedRuntime(
        make_deployment(), connectors={"crm": One(BadRecordSource("reject"))}, clock=clock
    )
    assert await rt.pollers["crm"].poll_once() == 2
    (entry,) = rt.db.call(lambda: quarantine.entries(rt.db.conn))
    assert (entry.connector, entry.stage, entry.position) == ("crm", "record", "deal 2")
    assert entry.reason == "owner is not a number"
    assert rt.pollers["crm"].stats.cursor == {"pos": 3}
    await rt.close()


class ReportingSource(BadRecordSource):
    """Reports its bad record with connectors.rejects.reject (as receivers do)."""

    async def _pages(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        from crm_pulse.connectors.rejects import reject

        reject(BadRecord("deal", "2", "owner is not a number"))
        yield Page([deal(1, 1, "won", "10", "2026-11-05T00:00:00Z")], {"pos": 1})


async def test_a_record_reported_with_reject_is_quarantined_with_its_page(
    make_deployment: Any,
) -> None:
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    rt = EmbeddedRuntime(
        make_deployment(), connectors={"crm": One(ReportingSource("x"))}, clock=clock
    )
    assert await rt.pollers["crm"].poll_once() == 1
    (entry,) = rt.db.call(lambda: quarantine.entries(rt.db.conn))
    assert (entry.stage, entry.position, entry.reason) == (
        "record",
        "deal 2",
        "owner is not a number",
    )
    await rt.close()


async def test_a_source_raising_on_a_bad_record_never_stops_and_shows_degraded(
    make_deployment: Any, tmp_path: Path
) -> None:
    for mode in ("data", "pydantic"):
        clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
        source = BadRecordSource(mode)
        rt = EmbeddedRuntime(
            make_deployment(),
            connectors={"crm": One(source)},
            clock=clock,
            state_path=tmp_path / f"{mode}.sqlite",
        )
        stop = asyncio.Event()
        task = asyncio.create_task(rt.pollers["crm"].run(stop))
        for _ in range(200):
            if rt.pollers["crm"].stats.last_error:
                break
            await asyncio.sleep(0.01)
        assert not task.done()  # the runtime goes on
        assert rt.health() is None  # not yet: one interval
        clock.now += (STALL_INTERVALS + 1) * 1.0
        assert rt.health() is not None and "degraded" in str(rt.health()), mode
        stop.set()
        await task
        entries = rt.db.call(lambda rt=rt: quarantine.entries(rt.db.conn))
        assert len(entries) == 1 and entries[0].stage == "record", mode  # once, not per retry
        assert rt.pollers["crm"].stats.cursor == {"pos": 1}  # the good page was kept
        await rt.close()


# ---------------------------------------------------------------------- dead letters


def _writes(n: int) -> list[FieldWrite]:
    return [FieldWrite("crm", "Account", f"r{i}", "f", float(i)) for i in range(n)]


async def test_dead_letters_of_an_outage_are_sent_again_once_the_crm_answers(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "s.sqlite")
    clock = Clock(1000.0)
    down = {"on": True}

    def script(n: int, writes: Sequence[FieldWrite]) -> Any:
        return RetriableError("503 service unavailable") if down["on"] else None

    sink = ScriptedSink(script=script)
    writer = Writer(
        "crm", sink, SQLiteOutbox(db), Backoff(1.0, 2.0, 2, rng=random.Random(1)), clock=clock
    )
    db.call(db.transaction(lambda c: SQLiteOutbox.put(c, _writes(3), clock.now, 0.0)))
    for _ in range(5):  # the outage outlasts the retries
        await writer.flush()
        clock.now += 10
    assert db.call(lambda: SQLiteOutbox.dead_letter_count(db.conn)) == 3
    down["on"] = False  # the CRM recovers; a later change is written...
    db.call(
        db.transaction(
            lambda c: SQLiteOutbox.put(
                c, [FieldWrite("crm", "Account", "other", "f", 7.0)], clock.now, 0.0
            )
        )
    )
    await writer.flush()
    # ...and the dead letters come back by themselves
    assert db.call(lambda: SQLiteOutbox.dead_letter_count(db.conn)) == 0
    await writer.flush()
    assert sink.values == {("Account", f"r{i}", "f"): float(i) for i in range(3)} | {
        ("Account", "other", "f"): 7.0
    }
    assert writer.stats.requeued == 3
    db.close()


async def test_a_permanent_refusal_does_not_come_back_by_itself(tmp_path: Path) -> None:
    from crm_pulse.connectors.protocols import WriteResult

    db = Database(tmp_path / "s.sqlite")
    clock = Clock(1000.0)

    def script(n: int, writes: Sequence[FieldWrite]) -> Any:
        return [WriteResult(w, ok=w.record_id != "r0", reason="no such field") for w in writes]

    sink = ScriptedSink(script=script)
    writer = Writer("crm", sink, SQLiteOutbox(db), Backoff(1.0, 2.0, 2), clock=clock)
    db.call(db.transaction(lambda c: SQLiteOutbox.put(c, _writes(2), clock.now, 0.0)))
    await writer.flush()
    await writer.flush()
    assert db.call(lambda: SQLiteOutbox.dead_letter_count(db.conn)) == 1
    db.close()


# ---------------------------------------------------------------------- the CLI


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_quarantine_and_deadletters_commands(tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite"
    config = tmp_path / "d.yaml"
    config.write_text(f"timezone: UTC\nconnectors: []\nruntime:\n  state_path: {state}\n")
    db = Database(state)

    def fill(c: Any) -> None:
        quarantine.put(c, "crm", "event", "7", "bad time", payload='{"x": 1}', now_ms=1)
        quarantine.put(c, "crm", "record", "deal 2", "bad owner token=abc123", now_ms=2)
        c.execute(
            "INSERT INTO dead_letters (connector, object, record_id, field, value, reason, "
            "attempts, failed_ms) VALUES ('crm', 'Account', 'r1', 'f', '5', 'gone', 3, 1)"
        )

    db.call(db.transaction(fill))
    db.close()
    code, out, _ = run_cli("quarantine", "list", "--config", str(config))
    assert code == 0 and "2 quarantined" in out and "bad time" in out
    code, out, _ = run_cli("quarantine", "show", "2", "--config", str(config))
    assert code == 0 and "token=***" in out and "abc123" not in out
    code, out, _ = run_cli("quarantine", "retry", "2", "--config", str(config))
    assert code == 1 and "cannot be retried" in out
    code, out, _ = run_cli("quarantine", "retry", "1", "--config", str(config))
    assert code == 0 and "appended to the log" in out
    code, out, _ = run_cli("quarantine", "drop", "--all", "--config", str(config))
    assert code == 0 and "dropped 1" in out
    code, out, _ = run_cli("deadletters", "list", "--config", str(config))
    assert code == 0 and "r1" in out and "1 dead letter" in out
    code, out, _ = run_cli("deadletters", "retry", "--all", "--config", str(config))
    assert code == 0 and "1 dead letter(s) put back" in out
    db = Database(state)
    assert db.call(lambda: SQLiteOutbox.depth(db.conn)) == 1
    assert db.call(lambda: db.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]) == 1
    db.close()
    code, out, _ = run_cli("deadletters", "drop", "--all", "--config", str(config))
    assert code == 0 and "dropped 0" in out
