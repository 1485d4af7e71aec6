"""Reads outside a report (write-back rules: ticks, the status page, ``/metrics``) find the
groups with data from an index the engine keeps up to date, not from a scan of the state: it
always names exactly the groups a scan finds, whatever was applied, deleted or came due."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_pulse.metrics import Engine, build_catalog
from crm_pulse.metrics.engine import _StateIndex
from crm_pulse.metrics.state import MemoryStore

from .test_property import DAY, T0, WINDOWS, history, shuffled


class Counting(MemoryStore):
    """A store that counts full scans (a subclass: the engine reads it through get/put)."""

    def __init__(self) -> None:
        super().__init__()
        self.scans = 0

    def items(self):  # type: ignore[no-untyped-def]
        self.scans += 1
        return super().items()


def scanned(engine: Engine) -> dict[tuple[int, tuple[str, ...]], set[object]]:
    index = _StateIndex.build(engine, engine.pending.horizon)
    out: dict[tuple[int, tuple[str, ...]], set[object]] = {}
    for mi, groups in index.groups.items():
        for g in groups:
            out.setdefault((mi, tuple(g[0::2])), set()).add(g)
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), order=st.integers(0, 10**6))
def test_the_live_index_names_the_groups_a_scan_finds(seed: int, order: int) -> None:
    catalog = build_catalog()
    store = Counting()
    engine = Engine(catalog, store, windows=WINDOWS, track_groups=True)
    rng = random.Random(order)
    now = T0
    engine.advance(now)
    events = shuffled(history(seed), order)
    fields_of = {
        (m.index, f)
        for metric in catalog.metrics.values()
        for m in metric.measures
        for f in metric.groups
    }
    i, first = 0, True
    while i < len(events):
        step = rng.randint(1, 9)
        engine.apply_all(events[i : i + step])
        i += step
        if rng.random() < 0.5:
            engine.changes(now)
        if rng.random() < 0.3:
            now += rng.randrange(0, 30) * DAY
            engine.advance(now)
        want = scanned(engine)
        scans = store.scans
        for mi, fields in fields_of:
            got = set(engine.groups_with_data(engine.measures[mi], fields))
            assert got == want.get((mi, fields), set()), (mi, fields)
        assert store.scans == scans + first  # one scan builds the index, then never again
        first = False


def test_without_tracking_every_read_scans_as_before() -> None:
    """Engines whose store changes under them (a Faust worker's tables after a rebalance or a
    rolled back batch) keep reading the state itself."""
    catalog = build_catalog()
    store = Counting()
    engine = Engine(catalog, store, windows=WINDOWS)
    engine.apply_all(history(3))
    metric = catalog.metrics["won_revenue"]
    for _ in range(2):
        scans = store.scans
        list(engine.groups_with_data(metric.measures[0], ("owner_id",)))
        assert store.scans == scans + 1
