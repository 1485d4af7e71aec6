"""Rolling windows keep their exact times per hour (``"dh"``); a state written when they were
kept per day (``"dm"``) goes on giving the same values, and is retracted from, never added to."""

from __future__ import annotations

from typing import Any

import pytest

from crm_pulse.metrics import Engine, build_catalog
from crm_pulse.metrics.engine import HOUR_MS
from crm_pulse.metrics.state import MemoryStore

from .test_property import DAY, T0, WINDOWS, history, shuffled


def to_day_layout(store: MemoryStore) -> None:
    """Rewrite the hourly exact times as the day dicts an earlier version kept."""
    for key in [k for k in store.data if k[0] == "dh"]:
        _tag, index, group, hour = key
        day = hour * HOUR_MS // DAY
        store.data.setdefault(("dm", index, group, day), {}).update(store.data.pop(key))


@pytest.mark.parametrize("seed", range(12))
def test_a_state_with_day_dicts_gives_the_values_of_a_fresh_one(seed: int) -> None:
    catalog = build_catalog()
    events = shuffled(history(seed), seed)
    half = len(events) // 2
    old_store = MemoryStore()
    old = Engine(catalog, old_store, WINDOWS)
    old.apply_all(events[:half])
    to_day_layout(old_store)
    days_before = {k: dict(v) for k, v in old_store.data.items() if k[0] == "dm"}
    old.apply_all(events[half:])
    fresh = Engine(catalog, MemoryStore(), WINDOWS)
    fresh.apply_all(events)
    for offset in (0, 37 * DAY + 7 * HOUR_MS + 1234, 95 * DAY + 13 * HOUR_MS, 150 * DAY):
        as_of = T0 + offset
        want: Any = fresh.report(as_of, keep_null=True)
        assert old.report(as_of, keep_null=True) == want
    # the day dicts only lose times (retractions); new times went to hourly entries
    for key, times in old_store.data.items():
        if key[0] == "dm":
            assert set(times) <= set(days_before[key])


def test_exact_times_are_kept_per_hour() -> None:
    engine = Engine(build_catalog(), MemoryStore(), WINDOWS)
    engine.apply_all(history(3))
    store = engine.store
    assert isinstance(store, MemoryStore)
    hourly = [k for k in store.data if k[0] == "dh"]
    assert hourly and not [k for k in store.data if k[0] == "dm"]
    for _tag, _index, _group, hour in hourly:
        times = store.data[("dh", _index, _group, hour)]
        assert times and all(t // HOUR_MS == hour for t in times)
