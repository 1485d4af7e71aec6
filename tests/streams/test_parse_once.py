"""Events appended by this process reach the consumer parsed (each event parsed once), and only
once their append committed; whatever the hand-over misses is read back from the log."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.metrics import Engine
from crm_pulse.metrics.events import Event, parse_time
from crm_pulse.streams.embedded import log as log_module
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.embedded.log import RecentEvents, append_events, event_json, read_log
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime

from .conftest import Clock


def deal(i: int, version: int, rng: random.Random) -> Event:
    status = rng.choice(["open", "won", "lost"])
    return Event.model_validate(
        {
            "source": "crm",
            "object": "deal",
            "id": str(i),
            "op": rng.choice(["upsert"] * 9 + ["delete"]),
            "version": version,
            "fields": {
                "owner_id": f"u{rng.randrange(4)}",
                "status": status,
                "amount": str(rng.randrange(1, 500)),
                "type": "new",
                "created_at": "2026-10-01T00:00:00Z",
                "closed_at": None if status == "open" else "2026-11-02T10:00:00Z",
                "note": rng.choice(["plain", "Zoë ☃", None]),
            },
        }
    )


def test_only_committed_appends_are_handed_over(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.sqlite")
    recent = RecentEvents(db, limit=100)
    rng = random.Random(1)
    first = [deal(i, 1, rng) for i in range(5)]
    db.call(db.transaction(lambda conn: append_events(conn, "crm", first, 0, recent)))

    def fails(conn: sqlite3.Connection) -> None:
        append_events(conn, "crm", [deal(9, 1, rng)], 0, recent)
        raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        db.call(db.transaction(fails))
    assert len(recent) == 5  # the rolled-back append left nothing behind
    second = [deal(i, 2, rng) for i in range(3)]
    db.call(db.transaction(lambda conn: append_events(conn, "crm", second, 0, recent)))
    rows, bad = db.call(lambda: read_log(db.conn, 0, 100, recent))
    assert bad == []
    assert [p for p, _ in rows] == list(range(1, 9))  # the rolled-back position was reused
    assert all(e is want for (_, e), want in zip(rows, first + second, strict=True))
    assert len(recent) == 0
    db.close()


def test_a_gap_is_read_from_the_log_and_the_rest_still_handed_over(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.sqlite")
    recent = RecentEvents(db, limit=4)  # a page larger than the limit: the rest is read back
    rng = random.Random(2)
    mine = [deal(i, 1, rng) for i in range(6)]
    other = [deal(i, 3, rng) for i in range(2)]
    more = [deal(i, 4, rng) for i in range(2)]
    db.call(db.transaction(lambda conn: append_events(conn, "crm", mine, 0, recent)))
    # another writer (a second process, an older version): not in the hand-over
    db.call(db.transaction(lambda conn: append_events(conn, "crm", other, 0)))
    db.call(db.transaction(lambda conn: append_events(conn, "crm", more, 0, recent)))
    assert len(recent) == 4
    everything = mine + other + more
    rows, _bad = db.call(lambda: read_log(db.conn, 0, 3, recent))
    assert [e for _, e in rows] == everything[:3]
    rows, _bad = db.call(lambda: read_log(db.conn, 3, 100, recent))
    assert [p for p, _ in rows] == list(range(4, 11))
    assert [e for _, e in rows] == everything[3:]  # equal, parsed back from the log
    assert len(recent) == 0
    db.close()


def test_event_json_is_the_model_dump_text() -> None:
    import json

    rng = random.Random(3)
    for i in range(200):
        event = deal(i, rng.randrange(-5, 5), rng)
        dumped = event.model_dump(
            mode="json", include={"source", "object", "id", "op", "version", "fields"}
        )
        assert event_json(event) == json.dumps(dumped, separators=(",", ":"), sort_keys=True)
        assert Event.model_validate_json(event_json(event)) == event


async def test_the_runtime_parses_its_own_appends_once_and_equals_a_replay(
    make_deployment: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    deployment = make_deployment(batch=7)
    rng = random.Random(4)
    events = [deal(rng.randrange(30), rng.randrange(1, 4), rng) for _ in range(300)]
    parsed: list[str] = []
    real = log_module.Event.model_validate_json

    def counting(text: str) -> Event:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(log_module.Event, "model_validate_json", counting)
    rt = EmbeddedRuntime(deployment, clock=clock)
    for start in range(0, len(events), 25):
        await rt.ingest("crm", events[start : start + 25])
        if start % 50 == 0:
            await rt.consume_all()
    await rt.consume_all()
    assert parsed == []  # nothing read back from the log
    now = int(clock.now * 1000)
    got = rt.report(now)
    await rt.close()
    monkeypatch.undo()
    engine = Engine(deployment.catalog(), windows=deployment.window_specs())
    engine.apply_all(events)
    assert got == engine.report(now)
    # after a restart the log is read back (and parsed): the same values
    again = EmbeddedRuntime(deployment, clock=clock)
    assert again.report(now) == got
    await again.close()
