"""The embedded runtime's pipeline without HTTP: log -> engine -> outbox -> sink."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_pulse.connectors.file import read_values
from crm_pulse.metrics import Engine
from crm_pulse.metrics.events import Event, parse_time
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.writeback import field_value

from .conftest import Clock


def deal(i: int, version: int, status: str, amount: str, closed: str, owner: str = "u1") -> Event:
    return Event.model_validate(
        {
            "source": "crm",
            "object": "deal",
            "id": str(i),
            "op": "upsert",
            "version": version,
            "fields": {
                "owner_id": owner,
                "status": status,
                "amount": amount,
                "created_at": "2026-10-01T00:00:00Z",
                "closed_at": closed if status != "open" else None,
                "type": "new",
            },
        }
    )


def expected(deployment, events: list[Event], as_of: int) -> dict[tuple[str, str, str], object]:  # type: ignore[no-untyped-def]
    """What the write-back rules should leave in the CRM, computed from scratch."""
    engine = Engine(deployment.catalog(), windows=deployment.window_specs())
    engine.apply_all(events)
    rows = engine.report(as_of, keep_null=True)
    from crm_pulse.streams.writeback import Planner

    planner = Planner(deployment.writeback, engine.catalog)
    out = {}
    for w in planner.plan(rows, as_of):
        out[(w.object, w.record_id, w.field)] = w.value
    return out


async def test_values_reach_the_sink_once_and_equal_a_recompute(
    make_deployment, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    deployment = make_deployment()
    rt = EmbeddedRuntime(deployment, clock=clock)
    events = [
        deal(1, 1, "won", "100", "2026-11-02T10:00:00Z"),
        deal(2, 1, "lost", "50", "2026-11-03T10:00:00Z", owner="u2"),
        deal(3, 1, "won", "70", "2026-10-15T10:00:00Z"),
        deal(1, 2, "won", "120", "2026-11-02T10:00:00Z"),  # amount changed
        deal(2, 1, "lost", "50", "2026-11-03T10:00:00Z", owner="u2"),  # duplicate
    ]
    await rt.ingest("crm", events)
    await rt.consume_all()
    await rt.tick()
    assert await rt.flush_writes() == 0  # debounce: nothing is due yet
    clock.now += 3
    calls = await rt.flush_writes()
    values = read_values(tmp_path / "writes.jsonl")
    want = expected(deployment, events, int(clock.now * 1000))
    assert values == {k: v for k, v in want.items() if v is not None}
    assert values[("Company", "c1", "won_revenue_mtd")] == 120
    assert values[("Company", "c1", "won_revenue_last_month")] == 70
    assert values[("User", "u2", "win_rate_qtd")] == 0
    assert calls == 1  # every field in one batch
    # nothing changed: no call at all
    await rt.ingest("crm", [deal(1, 3, "won", "120", "2026-11-02T10:00:00Z")])  # same content
    await rt.consume_all()
    clock.now += 10
    assert await rt.flush_writes() == 0
    lines = (tmp_path / "writes.jsonl").read_text().splitlines()
    assert len(lines) == len(values)
    await rt.close()


async def test_month_rollover_is_written_without_an_event(make_deployment, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(parse_time("2026-11-30T23:00:00Z") / 1000)
    deployment = make_deployment()
    rt = EmbeddedRuntime(deployment, clock=clock)
    await rt.ingest("crm", [deal(1, 1, "won", "100", "2026-11-02T10:00:00Z")])
    await rt.consume_all()
    await rt.tick()
    clock.now += 3
    await rt.flush_writes()
    values = read_values(tmp_path / "writes.jsonl")
    assert values[("Company", "c1", "won_revenue_mtd")] == 100
    assert values[("Company", "c1", "deals_won_30d")] == 1
    # December starts: this month has nothing yet, last month is November; no event needed
    clock.now = parse_time("2026-12-01T00:05:00Z") / 1000
    await rt.tick()
    await rt.flush_writes()
    values = read_values(tmp_path / "writes.jsonl")
    assert values[("Company", "c1", "won_revenue_mtd")] == 0
    assert values[("Company", "c1", "won_revenue_last_month")] == 100
    # the deal leaves the rolling 30 days on 2 December 10:00
    clock.now = parse_time("2026-12-02T11:00:00Z") / 1000
    await rt.tick()
    await rt.flush_writes()
    assert read_values(tmp_path / "writes.jsonl")[("Company", "c1", "deals_won_30d")] == 0
    await rt.close()


async def test_state_survives_a_restart(make_deployment, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    deployment = make_deployment()
    rt = EmbeddedRuntime(deployment, clock=clock)
    first = [
        deal(
            i, 1, "won" if i % 3 else "lost", str(10 * i), "2026-11-05T00:00:00Z", owner=f"u{i % 4}"
        )
        for i in range(1, 60)
    ]
    await rt.ingest("crm", first)
    await rt.consume_all()
    await rt.close()
    rt = EmbeddedRuntime(deployment, clock=clock)
    second = [
        deal(i, 2, "won", str(10 * i), "2026-11-06T00:00:00Z", owner=f"u{i % 4}")
        for i in range(30, 80)
    ]
    await rt.ingest("crm", second)
    await rt.consume_all()
    as_of = int(clock.now * 1000)
    engine = Engine(deployment.catalog(), windows=deployment.window_specs())
    engine.apply_all(first + second)
    assert rt.report(as_of) == engine.report(as_of)
    await rt.close()
    _ = field_value


async def test_a_future_dated_deal_is_written_when_its_time_comes(
    make_deployment, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A deal won "on the 25th" arrives on the 20th: in no window yet. The tick that passes its
    time writes it, also after a restart in between (the horizon is kept with the state), and
    the values equal replay's at every step."""
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    deployment = make_deployment()
    rt = EmbeddedRuntime(deployment, clock=clock)
    events = [
        deal(1, 1, "won", "100", "2026-11-02T10:00:00Z"),
        deal(2, 1, "won", "6000", "2026-11-25T09:00:00Z"),  # ahead of the clock
        deal(3, 1, "won", "7", "2026-12-03T09:00:00Z", owner="u2"),  # next month
    ]
    await rt.ingest("crm", events)
    await rt.consume_all()
    await rt.tick()
    clock.now += 3
    await rt.flush_writes()
    values = read_values(tmp_path / "writes.jsonl")
    assert values[("Company", "c1", "won_revenue_mtd")] == 100
    assert values[("Company", "c1", "deals_won_30d")] == 1
    assert ("User", "u2", "win_rate_qtd") not in values  # no row before its time
    assert rt.report() == expected_rows(deployment, events, int(clock.now * 1000))
    await rt.close()

    rt = EmbeddedRuntime(deployment, clock=clock)
    clock.now = parse_time("2026-11-25T09:00:01Z") / 1000
    await rt.tick()
    clock.now += 3
    await rt.flush_writes()
    values = read_values(tmp_path / "writes.jsonl")
    assert values[("Company", "c1", "won_revenue_mtd")] == 6100
    assert values[("Company", "c1", "deals_won_30d")] == 2
    assert rt.report() == expected_rows(deployment, events, int(clock.now * 1000))
    clock.now = parse_time("2026-12-03T10:00:00Z") / 1000
    await rt.tick()
    clock.now += 3
    await rt.flush_writes()
    values = read_values(tmp_path / "writes.jsonl")
    assert values[("User", "u2", "win_rate_qtd")] == 1
    assert values[("Company", "c1", "won_revenue_mtd")] == 7
    assert values[("Company", "c1", "won_revenue_last_month")] == 6100
    await rt.close()


def expected_rows(deployment, events: list[Event], as_of: int) -> list[object]:  # type: ignore[no-untyped-def]
    engine = Engine(deployment.catalog(), windows=deployment.window_specs())
    engine.advance(as_of)
    engine.apply_all(events)
    return engine.report(as_of)  # type: ignore[return-value]


async def test_explain_reads_a_deployment_s_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``crm-pulse explain --config FILE`` (no events file): the records in the embedded
    state that make a value, and the value, equal to explaining the events file."""
    import io
    import json

    from crm_pulse.cli import main
    from crm_pulse.config import load_config

    from .conftest import DEPLOY

    config = tmp_path / "deploy.yaml"
    config.write_text(
        DEPLOY.format(
            out=tmp_path / "writes.jsonl", state=tmp_path / "state.sqlite", max_batch=10, batch=5
        )
    )
    deployment = load_config(config, resolve_secrets=False)
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    rt = EmbeddedRuntime(deployment, clock=clock)
    events = [
        deal(1, 1, "won", "100", "2026-11-02T10:00:00Z"),
        deal(2, 1, "lost", "50", "2026-11-03T10:00:00Z", owner="u2"),
        deal(3, 1, "won", "70.5", "2026-11-15T10:00:00Z"),
        deal(1, 2, "won", "120", "2026-11-02T10:00:00Z"),
        Event.model_validate(
            {"source": "crm", "object": "deal", "id": "3", "op": "delete", "version": 2}
        ),
        deal(4, 1, "won", "30", "2026-11-04T10:00:00Z", owner="u2"),
    ]
    await rt.ingest("crm", events)
    await rt.consume_all()
    await rt.close()
    (tmp_path / "events.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in events))

    def run(*args: str) -> list[dict[str, object]]:
        out = io.StringIO()
        base = ["explain", "--metric", "won_revenue", "--window", "2026-11"]
        assert (
            main([*base, "--as-of", "2026-11-20T12:00:00Z", "--format", "jsonl", *args], out) == 0
        )
        return [json.loads(line) for line in out.getvalue().splitlines()]

    from_state = run("--config", str(config))
    assert from_state == run(str(tmp_path / "events.jsonl"))
    assert from_state == [
        {"measure": "won_amount", "record": "crm/deal/1", "contribution": 120},
        {"measure": "won_amount", "record": "crm/deal/4", "contribution": 30},
        {"metric": "won_revenue", "window": "2026-11", "group": {}, "value": 150},
    ]
    rate = run("--config", str(config), "--group", "owner_id=u2")
    assert rate[-1]["value"] == 30
    monkeypatch.setenv("CRM_PULSE_CONFIG", str(config))  # found as every command finds it
    assert run() == from_state
    table = io.StringIO()
    assert (
        main(
            [
                "explain",
                "--config",
                str(config),
                "--metric",
                "win_rate",
                "--window",
                "2026-Q4",
                "--group",
                "owner_id=u2",
                "--as-of",
                "2026-11-20",
            ],
            table,
        )
        == 0
    )
    text = table.getvalue()
    assert "win_rate  2026-Q4  owner_id=u2  = 0.5" in text
    assert "crm/deal/2" in text and "crm/deal/4" in text
