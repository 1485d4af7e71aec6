"""Ticks cost in proportion to the rules whose window moved: a restart does not re-evaluate
every group of every rule when no window rolled over while the process was down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.connectors.protocols import Connector
from crm_pulse.metrics.events import parse_time
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.writeback import planner as planner_module

from .conftest import Clock
from .fakes import ListSource
from .test_every_covered_value import DEPLOY, deal


async def test_a_restart_re_evaluates_only_rules_whose_window_rolled_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = load_config_text(
        DEPLOY.format(out=tmp_path / "writes.jsonl", state=tmp_path / "state.sqlite"),
        base_dir=tmp_path,
    )
    evaluated: list[str] = []
    real = planner_module.evaluate

    def counting(
        catalog: Any, source: Any, metric: Any, group: Any, window: Any, as_of: int
    ) -> Any:
        evaluated.append(window.label)
        return real(catalog, source, metric, group, window, as_of)

    monkeypatch.setattr(planner_module, "evaluate", counting)
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    rt = EmbeddedRuntime(deployment, clock=clock)
    await rt.ingest(
        "crm", [deal(i, "won", "2026-11-02T10:00:00Z", f"a{i}", f"u{i}") for i in range(20)]
    )
    await rt.consume_all()
    await rt.tick()  # the first tick of a first start: every rule is new
    await rt.close()

    clock.now += 3600  # restarted an hour later: no window rolled over
    again = EmbeddedRuntime(deployment, clock=clock)
    evaluated.clear()
    await again.tick()
    assert evaluated == []
    clock.now = parse_time("2027-01-02T00:00:00Z") / 1000  # a quarter and a year later
    await again.tick()
    assert sorted(set(evaluated)) == ["2027", "2027-Q1"]
    assert len(evaluated) == 40  # every group of both rules, once
    await again.close()


class _Crm(Connector):
    kind = "plugin"


async def test_a_restart_after_the_first_reads_neither_waits_nor_re_evaluates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a pulling source: the first-read rule's whole-value writes are kept with the writes
    they planned, so a restart after them writes at once (no wait for another complete read)
    and its first tick re-evaluates no rule whose window did not roll over. A restart before
    them (the first read stored, never applied) still waits and then writes every value."""
    deployment = load_config_text(
        DEPLOY.format(out=tmp_path / "writes.jsonl", state=tmp_path / "state.sqlite").replace(
            "connectors:\n", f'connectors:\n  - file: {{name: crm, path: "{tmp_path}/u.jsonl"}}\n'
        ),
        base_dir=tmp_path,
    )
    evaluated: list[str] = []
    real = planner_module.evaluate

    def counting(
        catalog: Any, source: Any, metric: Any, group: Any, window: Any, as_of: int
    ) -> Any:
        evaluated.append(window.label)
        return real(catalog, source, metric, group, window, as_of)

    monkeypatch.setattr(planner_module, "evaluate", counting)
    clock = Clock(parse_time("2026-11-20T12:00:00Z") / 1000)
    crm = _Crm("crm", {})
    crm.source = ListSource(
        [deal(i, "won", "2026-11-02T10:00:00Z", f"a{i}", f"u{i}") for i in range(20)], page=7
    )
    rt = EmbeddedRuntime(deployment, connectors={"crm": crm}, clock=clock)
    await rt.pollers["crm"].poll_once()
    await rt.close()  # stopped before the consumer applied the first read
    rt = EmbeddedRuntime(deployment, connectors={"crm": crm}, clock=clock)
    assert rt.planner.waiting_for == {"crm"}  # nothing was written after it yet
    evaluated.clear()
    await rt.consume_all()
    await rt.tick()
    assert len(evaluated) == 40  # the first writes: every group of both rules, once
    assert len(rt.pending_writes()) == 40
    await rt.close()

    clock.now += 3600  # restarted an hour later: no window rolled over
    again = EmbeddedRuntime(deployment, connectors={"crm": crm}, clock=clock)
    assert again.planner.ready
    evaluated.clear()
    await again.consume_all()
    await again.tick()
    assert evaluated == []
    await again.ingest("crm", [deal(99, "won", "2026-11-19T10:00:00Z", "a1", "u1")])
    await again.consume_all()  # a change is written at once: nothing waits for a read
    pending = {(w.record_id, w.value) for w, _old in again.pending_writes()}
    assert {("a1", 200), ("u1", 200)} <= pending
    await again.close()
