"""Backfill then incremental polling, and loop safety of our own writes."""

from __future__ import annotations

from typing import Any

import pytest

from crm_pulse.connectors.protocols import Connector
from crm_pulse.metrics import Engine
from crm_pulse.metrics.events import Event, parse_time
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime

from .conftest import Clock
from .fakes import ListSource, ScriptedSink
from .test_embedded_pipeline import deal


class ListConnector(Connector):
    kind = "list"

    def __init__(self, source: ListSource, sink: ScriptedSink) -> None:
        super().__init__("out", {})
        self.source = source
        self.sink = sink


def runtime(
    make_deployment: Any, source: ListSource, sink: ScriptedSink, clock: Clock
) -> EmbeddedRuntime:
    return EmbeddedRuntime(
        make_deployment(), connectors={"out": ListConnector(source, sink)}, clock=clock
    )


async def test_backfill_then_poll_continues_from_where_it_ended(make_deployment: Any) -> None:
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    history = [deal(i, 1, "won", "10", "2026-11-05T00:00:00Z") for i in range(95)]
    source = ListSource(history, page=10)
    rt = runtime(make_deployment, source, ScriptedSink(), clock)
    (poller,) = rt.pollers.values()
    assert await poller.backfill() == 95
    assert await poller.poll_once() == 0  # nothing new: polling starts after the backfill
    source.events.append(deal(200, 1, "lost", "5", "2026-11-06T00:00:00Z"))
    assert await poller.poll_once() == 1
    await rt.consume_all()
    engine = Engine(rt.catalog, windows=rt.deployment.window_specs())
    engine.apply_all(source.events)
    as_of = int(clock.now * 1000)
    assert rt.report(as_of) == engine.report(as_of)
    await rt.close()


async def test_an_interrupted_backfill_resumes_after_its_last_page(make_deployment: Any) -> None:
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    history = [deal(i, 1, "won", "10", "2026-11-05T00:00:00Z") for i in range(95)]
    source = ListSource(history, page=10)
    source.fail_after_pages = 4
    rt = runtime(make_deployment, source, ScriptedSink(), clock)
    with pytest.raises(ConnectionError):
        await rt.pollers["out"].backfill()
    await rt.close()
    source.fail_after_pages = None
    rt = runtime(make_deployment, source, ScriptedSink(), clock)
    assert (
        await rt.pollers["out"].backfill() == 55
    )  # the 40 stored before the failure are not re-read
    await rt.consume_all()
    status = rt.status()
    assert status["log_position"] == 95 and status["backlog"] == 0
    await rt.close()


async def test_our_own_writes_change_no_metric_and_cause_no_write(make_deployment: Any) -> None:
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    deals = [
        deal(i, 1, "won" if i % 2 else "lost", "10", "2026-11-05T00:00:00Z", owner=f"u{i % 3}")
        for i in range(30)
    ]
    source = ListSource(list(deals), page=10)
    sink = ScriptedSink()
    rt = runtime(make_deployment, source, sink, clock)
    await rt.pollers["out"].backfill()
    await rt.consume_all()
    await rt.tick()
    clock.now += 3
    await rt.flush_writes()
    calls = len(sink.calls)
    assert calls >= 1
    changes_before = rt.changed_values
    assert changes_before > 0
    # our writes come back as modifications: new versions, same canonical fields
    echoes: list[Event] = [e.model_copy(update={"version": e.version + 1000}) for e in deals]
    source.events.extend(echoes)
    # ... and a "pipeline edit" flood bumps every deal thousands of times
    source.events.extend(
        e.model_copy(update={"version": e.version + 2000 + k}) for k in range(100) for e in deals
    )
    assert await rt.pollers["out"].poll_once() == 30 * 101
    assert await rt.consume_all() == 30 * 101
    clock.now += 60
    await rt.tick()
    await rt.flush_writes()
    assert len(sink.calls) == calls
    assert rt.changed_values == changes_before
    await rt.close()
