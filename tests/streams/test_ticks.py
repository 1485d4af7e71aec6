"""Ticks cost in proportion to the rules whose window moved: a restart does not re-evaluate
every group of every rule when no window rolled over while the process was down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.metrics.events import parse_time
from crm_pulse.streams.runtime import EmbeddedRuntime
from crm_pulse.streams.writeback import planner as planner_module

from .conftest import Clock
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
