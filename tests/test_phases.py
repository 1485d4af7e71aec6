"""Two phases: record state -> deltas -> per-group aggregate engines == one engine == reference."""

from __future__ import annotations

import json
import pickle
import random
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_pulse.metrics import (
    Delta,
    Engine,
    MetricValue,
    WindowSpec,
    build_catalog,
    builtin_definitions,
    definitions_from_mapping,
    partition_of,
    reference_report,
)
from crm_pulse.metrics.catalog import Catalog
from crm_pulse.metrics.state import Key

from .test_property import DAY, T0, WINDOWS, history, shuffled


def _catalog() -> Catalog:
    """The built-in catalog plus goals on a company-wide and a per-owner metric."""
    user = definitions_from_mapping(
        {
            "goals": [
                {"name": "q1_wins", "metric": "deals_won", "window": "2026-Q1", "target": 5},
                {
                    "name": "u1_feb",
                    "metric": "deals_won",
                    "window": "2026-02",
                    "group": {"owner_id": "u1"},
                    "target": 2,
                },
            ]
        }
    )
    return build_catalog(builtin_definitions().merged(user), timezone="Europe/Berlin")


WINDOW_SETS = [
    WINDOWS,
    (WindowSpec("quarter"),),
    (WindowSpec("year"), WindowSpec("rolling", 7)),
    (WindowSpec("rolling", 30),),
]


def _keyed(rows: list[MetricValue]) -> dict[tuple[str, str, str], object]:
    out: dict[tuple[str, str, str], object] = {}
    for row in rows:
        j = row.to_json()
        key = (j["metric"], j["window"], json.dumps(j["group"], sort_keys=True))
        assert key not in out, f"row reported twice: {key}"
        out[key] = j["value"]
    return out


def _wire(delta: Delta) -> Delta:
    """A delta after a trip through JSON, as it would travel over Kafka."""
    back = Delta.from_wire(json.loads(json.dumps(delta.to_wire())))
    assert back == delta
    return back


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    order=st.integers(0, 10**6),
    as_of_day=st.integers(10, 200),
    partitions=st.integers(1, 5),
    windows=st.sampled_from(WINDOW_SETS),
)
def test_deltas_split_by_group_equal_single_engine_and_reference(
    seed: int, order: int, as_of_day: int, partitions: int, windows: tuple[WindowSpec, ...]
) -> None:
    catalog = _catalog()
    events = history(seed)
    as_of = T0 + as_of_day * DAY
    records = Engine(catalog, windows=windows)  # phase 1 only
    groups = [Engine(catalog, windows=windows) for _ in range(partitions)]  # phase 2 only
    single = Engine(catalog, windows=windows)
    for event in shuffled(events, order):
        single.apply(event)
        for delta in records.deltas(event) or ():
            groups[partition_of(delta.group, partitions)].apply_deltas([_wire(delta)])

    assert all(key[0] == "r" for key, _ in records.store.items())
    for engine in groups:
        assert all(key[0] != "r" for key, _ in engine.store.items())
    union: list[MetricValue] = []
    for i, engine in enumerate(groups):
        union.extend(engine.report(as_of, owns=lambda g, i=i: partition_of(g, partitions) == i))
    expected = _keyed(reference_report(catalog, events, as_of, windows))
    assert _keyed(single.report(as_of)) == expected
    assert _keyed(union) == expected


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    order=st.integers(0, 10**6),
    partitions=st.integers(2, 4),
    windows=st.sampled_from(WINDOW_SETS),
)
def test_changes_of_group_engines_are_the_single_engines_changes(
    seed: int, order: int, partitions: int, windows: tuple[WindowSpec, ...]
) -> None:
    catalog = _catalog()
    events = shuffled(history(seed), order)
    as_of = T0 + 150 * DAY
    records = Engine(catalog, windows=windows)
    groups = [Engine(catalog, windows=windows) for _ in range(partitions)]
    single = Engine(catalog, windows=windows)
    rng = random.Random(order)
    i = 0
    while i < len(events):
        batch = events[i : i + rng.randint(1, 6)]
        i += len(batch)
        single.apply_all(batch)
        routed: list[list[Delta]] = [[] for _ in range(partitions)]
        for event in batch:
            for delta in records.deltas(event) or ():
                routed[partition_of(delta.group, partitions)].append(delta)
        union: list[MetricValue] = []
        for engine, deltas in zip(groups, routed, strict=True):
            engine.apply_deltas(deltas)
            union.extend(engine.changes(as_of))
        assert _keyed(union) == _keyed(single.changes(as_of))


def test_delta_wire_form_is_plain_data_and_rejects_garbage() -> None:
    from datetime import date

    delta = Delta(3, ("owner_id", "u1"), ("quarter", date(2026, 4, 1)), None, -5, -1)
    wire = delta.to_wire()
    assert wire == [3, ["owner_id", "u1"], ["quarter", {"date": "2026-04-01"}], None, -5, -1]
    assert Delta.from_wire(json.loads(json.dumps(wire))) == delta
    assert delta.key == '["owner_id","u1"]'
    for bad in ([1, 2], "x", [1, "g", None, None, 1, 1], ["1", [], None, None, 1, 1]):
        try:
            Delta.from_wire(bad)  # type: ignore[arg-type]
        except ValueError as exc:
            assert "delta" in str(exc)
        else:
            raise AssertionError(f"accepted {bad!r}")


class CopyingStore:
    """A store that hands out copies, as one that serialises (SQLite, Faust tables) does."""

    def __init__(self) -> None:
        self.data: dict[Key, bytes] = {}

    def get(self, key: Key) -> Any | None:
        raw = self.data.get(key)
        return None if raw is None else pickle.loads(raw)

    def put(self, key: Key, value: Any) -> None:
        self.data[key] = pickle.dumps(value)

    def delete(self, key: Key) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[Key, Any]]:
        for key in list(self.data):
            yield key, pickle.loads(self.data[key])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), order=st.integers(0, 10**6), as_of_day=st.integers(10, 200))
def test_a_store_that_copies_gives_the_same_rows_and_changes(
    seed: int, order: int, as_of_day: int
) -> None:
    catalog = _catalog()
    events = shuffled(history(seed), order)
    as_of = T0 + as_of_day * DAY
    copying = Engine(catalog, store=CopyingStore(), windows=WINDOWS)
    memory = Engine(catalog, windows=WINDOWS)
    for start in range(0, len(events), 5):
        batch = events[start : start + 5]
        copying.apply_all(batch)
        memory.apply_all(batch)
        assert _keyed(copying.changes(as_of)) == _keyed(memory.changes(as_of))
    expected = _keyed(reference_report(catalog, history(seed), as_of, WINDOWS))
    assert _keyed(copying.report(as_of)) == expected
    assert _keyed(memory.report(as_of)) == expected
