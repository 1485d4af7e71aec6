"""Ticks cost the groups whose rolling value can have moved (issue 17, items 5 and 8).

With ``by_time`` the planner keeps each rolling rule's groups indexed by the next time their
value can change by time alone (:mod:`crm_pulse.metrics.expiry`): a tick with nothing due
evaluates no group, and on random histories and times the fields it writes are exactly those of
the former full evaluation of every group at every tick.
"""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_pulse.config.loader import load_config_text
from crm_pulse.connectors.protocols import FieldWrite
from crm_pulse.metrics import Engine
from crm_pulse.metrics.events import Event
from crm_pulse.streams.writeback import Planner

HOUR = 3_600_000
T0 = 1_772_000_000_000  # 2026-02-25
DEPLOY = """
connectors:
  - file: {name: crm, path: out.jsonl}
writeback:
  - {metric: deals_won, window: "rolling:2d", group: owner_id,
     target: {connector: crm, object: User, field: won_2d}}
  - {metric: win_rate, window: "rolling:1d", group: owner_id,
     target: {connector: crm, object: User, field: win_rate_1d}}
  - {metric: median_deal_size, window: "rolling:3d", group: owner_id,
     target: {connector: crm, object: User, field: median_3d}}
  - {metric: won_revenue, window: "rolling:1d", group: {},
     target: {connector: crm, object: Company, record: c1, field: won_1d}}
  - {metric: deals_won, window: month, group: owner_id,
     target: {connector: crm, object: User, field: won_mtd}}
"""


def _deployment() -> Any:
    return load_config_text(DEPLOY, file="deploy.yaml", resolve_secrets=False)


def _deal(i: int, version: int, owner: str, status: str, closed_ms: int, amount: int) -> Event:
    closed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(closed_ms / 1000))
    fields = {"owner_id": owner, "status": status, "amount": str(amount)}
    return Event.model_validate(
        {"source": "crm", "object": "deal", "id": str(i), "op": "upsert", "version": version,
         "fields": fields | {"created_at": closed, "closed_at": closed}}
    )  # fmt: skip


def _delete(i: int, version: int) -> Event:
    return Event.model_validate(
        {"source": "crm", "object": "deal", "id": str(i), "op": "delete", "version": version}
    )


class _Run:
    """One engine, two planners (indexed by time, and every group at every tick), driven as
    the embedded consumer drives its planner: batches, then ticks."""

    def __init__(self) -> None:
        deployment = _deployment()
        self.engine = Engine(
            deployment.catalog(), windows=deployment.window_specs(), track_groups=True
        )
        self.indexed = Planner(deployment.writeback, self.engine.catalog, by_time=True)
        self.full = Planner(deployment.writeback, self.engine.catalog)
        self.fields: dict[str, dict[tuple[str, str, str], Any]] = {"indexed": {}, "full": {}}

    def _write(self, name: str, writes: list[FieldWrite]) -> None:
        fields = self.fields[name]
        for w in writes:
            key = (w.object, w.record_id, w.field)
            if w.value is None and fields.get(key) is None:
                continue  # as the outbox: no None to a field crm-pulse has not written
            fields[key] = w.value

    def batch(self, events: list[Event], now: int) -> None:
        engine = self.engine
        engine.advance(now)
        for event in events:
            engine.apply(event)
        self.indexed.touched(engine.touched(self.indexed.time_measures))
        values = engine.changes(now, metrics=self.full.wanted)
        self._write("indexed", self.indexed.plan(values, now, engine))
        self._write("full", self.full.plan(values, now, engine))

    def tick(self, now: int) -> None:
        engine = self.engine
        engine.advance(now)
        self.indexed.touched(engine.touched(self.indexed.time_measures))
        self._write("indexed", self.indexed.due_by_time(engine, now))
        self._write("full", self.full.due_by_time(engine, now))
        changed = engine.changes(now, metrics=self.full.wanted)
        self._write("indexed", self.indexed.plan(changed, now, engine))
        self._write("full", self.full.plan(changed, now, engine))


def test_a_tick_with_nothing_due_evaluates_no_group() -> None:
    run = _Run()
    deals = [_deal(i, 1, f"u{i}", "won", T0 - 10 * HOUR + i * HOUR, 100 * i) for i in range(1, 4)]
    run.batch(deals, T0)
    run.tick(T0)  # the first tick evaluates every group of the rolling rules (and the index)
    first = run.indexed.evaluations
    assert first == run.full.evaluations > 0
    for later in (T0 + 60_000, T0 + HOUR, T0 + 13 * HOUR):
        run.tick(later)  # nothing leaves a window yet: no group evaluated
        assert run.indexed.evaluations == first
    assert run.full.evaluations > 3 * first  # the full evaluation did it all again, each time
    # u1's deal (closed at T0 - 9 h) leaves the 1-day windows at T0 + 15 h: u1's values and the
    # company's only
    run.tick(T0 + 15 * HOUR + 1)
    assert run.indexed.evaluations - first == 2  # u1's win rate, the company's sum
    assert run.fields["indexed"][("User", "u1", "win_rate_1d")] is None
    assert run.fields["indexed"][("Company", "c1", "won_1d")] == 500
    assert run.fields["indexed"][("User", "u1", "won_2d")] == 1  # 2 days: still in
    assert run.fields["indexed"] == run.fields["full"]
    # a new deal (a batch) touches u2's win rate only: the next tick evaluates nothing else
    at = T0 + 15 * HOUR + 120_000
    run.batch([_deal(9, 1, "u2", "lost", at, 5)], at)
    before = run.indexed.evaluations
    run.tick(at + 60_000)  # before u2's first deal leaves the 1-day windows (T0 + 16 h)
    assert run.indexed.evaluations == before + 1
    assert run.fields["indexed"] == run.fields["full"]
    assert run.fields["indexed"][("User", "u2", "win_rate_1d")] == 0.5
    run.tick(T0 + 16 * HOUR + 1)  # it does now: u2's win rate and the company's sum
    assert run.indexed.evaluations == before + 3
    assert run.fields["indexed"][("User", "u2", "win_rate_1d")] == 0
    assert run.fields["indexed"] == run.fields["full"]


_owner = st.sampled_from(["u1", "u2", "u3", "u4"])
_step = st.one_of(
    st.tuples(
        st.just("upsert"),
        st.integers(0, 11),  # record
        _owner,
        st.sampled_from(["won", "won", "lost"]),
        st.integers(-80, 50),  # closed, hours from now (future-dated too)
        st.integers(0, 500),
    ),
    st.tuples(st.just("delete"), st.integers(0, 11)),
    st.tuples(st.just("tick"), st.integers(1, 40 * 60)),  # minutes later
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_step, min_size=1, max_size=30))
def test_indexed_ticks_write_what_full_evaluations_write(steps: list[tuple[Any, ...]]) -> None:
    run = _Run()
    now = T0
    versions: dict[int, int] = {}
    pending: list[Event] = []
    for step in steps:
        if step[0] == "tick":
            if pending:
                run.batch(pending, now)
                pending = []
            now += step[1] * 60_000
            run.tick(now)
            assert run.fields["indexed"] == run.fields["full"], now
            continue
        i = step[1]
        versions[i] = versions.get(i, 0) + 1
        if step[0] == "delete":
            pending.append(_delete(i, versions[i]))
        else:
            _, _, owner, status, hours, amount = step
            pending.append(_deal(i, versions[i], owner, status, now + hours * HOUR, amount))
    if pending:
        run.batch(pending, now)
    for later in (now + 3_600_000, now + 50 * HOUR, now + 200 * HOUR):
        run.tick(later)
        assert run.fields["indexed"] == run.fields["full"], later
    # and what the fields hold is each group's value now
    engine, planner = run.engine, run.full
    for v in planner.values(engine, now + 200 * HOUR):
        key = (v.rule.target.object, v.record, v.rule.target.field)
        assert run.fields["indexed"].get(key) == v.value, key
