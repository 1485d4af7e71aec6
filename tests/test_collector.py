"""Batches are applied with the cyclic garbage collector paused, and it runs again after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from crm_pulse.metrics import Engine, Event, build_catalog
from crm_pulse.metrics.collector import collector_paused


def _events(seen: list[bool]) -> Iterator[Event]:
    for i in range(3):
        seen.append(gc.isenabled())
        yield Event(source="crm", object="deal", id=str(i), op="upsert", version=1, fields={})


def test_apply_all_pauses_the_collector_and_restores_it() -> None:
    assert gc.isenabled()
    seen: list[bool] = []
    assert Engine(build_catalog()).apply_all(_events(seen)) == 3
    assert seen == [False, False, False] and gc.isenabled()


def test_a_failure_inside_restores_it_and_a_paused_one_stays_paused() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()
