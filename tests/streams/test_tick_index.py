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


def _deployment(text: str = DEPLOY) -> Any:
    return load_config_text(text, file="deploy.yaml", resolve_secrets=False)


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

    def __init__(self, text: str = DEPLOY) -> None:
        deployment = self.deployment = _deployment(text)
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

    def restart(self) -> None:
        """The indexed side starts again on the same state: a new engine and planner that know
        the last tick's target windows (kept with the writes), nothing else."""
        old = self.engine
        self.engine = Engine(old.catalog, old.store, old.specs, track_groups=True)
        if old.horizon is not None:
            self.engine.resume(old.horizon)
        ticked = self.indexed.tick_state()
        self.indexed = Planner(self.deployment.writeback, old.catalog, by_time=True)
        self.indexed.restore_tick_state(ticked)

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


# Every kind of measure and window a rule can read: counts, sums, percentiles, distinct counts
# (with at_least), stays, window conditions, 'active' counts at a window's start and end,
# 'among', period records (within: rolling too; exact: calendar only); rolling windows, and
# calendar days, weeks, months and quarters, current and previous. Per-group versions of the
# account and spend measures (the catalog's are company-wide) so a rollover has groups to skip.
KINDS = """
connectors:
  - file: {name: crm, path: out.jsonl}
metrics:
  measures:
    acct_churned: {object: account, where: {customer_since: {lt: window.start}}, at: churned_at}
    acct_at_start:
      object: account
      active: {start: customer_since, end: churned_at, when: window_start}
    acct_at_end:
      object: account
      active: {start: customer_since, end: churned_at, when: window_end}
    owner_upsells:
      object: deal
      where: {status: won, type: upsell, account_id: {set: true}}
      at: closed_at
      distinct: account_id
      among: acct_at_end
    cat_spend: {object: spend, period: {match: within}, sum: amount}
  metrics:
    owner_churn: {value: acct_churned / acct_at_start, groups: [owner_id],
                  category: customer perception}
    owner_customers: {value: acct_at_end, groups: [owner_id], category: customer perception}
    owner_churned: {value: acct_churned, groups: [owner_id], category: customer perception}
    owner_upsell_rate: {value: owner_upsells / acct_at_end, groups: [owner_id],
                        category: business performance}
    spend_by_category: {value: cat_spend, groups: [category], category: business performance}
writeback:
""" + "".join(
    f'  - {{metric: {metric}, window: "{window}", group: {group}, which: {which},'
    f" target: {{connector: crm, object: O, field: f{i}{', record: c1' if group == '{}' else ''}}}}}\n"
    for i, (metric, window, group, which) in enumerate(
        [
            ("deals_won", "rolling:2d", "owner_id", "current"),
            ("won_revenue", "rolling:1d", "{}", "current"),
            ("median_deal_size", "rolling:3d", "owner_id", "current"),
            ("repeat_purchase_rate", "rolling:2d", "{}", "current"),
            ("stage_duration_days", "rolling:1d", "stage", "current"),
            ("churn_rate", "rolling:2d", "{}", "current"),
            ("owner_churn", "rolling:2d", "owner_id", "current"),
            ("owner_customers", "rolling:1d", "owner_id", "current"),
            ("owner_churned", "rolling:1d", "owner_id", "current"),
            ("owner_upsell_rate", "rolling:1d", "owner_id", "current"),
            ("upsell_rate", "rolling:2d", "{}", "current"),
            ("cac", "rolling:31d", "{}", "current"),
            ("spend_by_category", "rolling:31d", "category", "current"),
            ("retention_cost", "rolling:40d", "{}", "current"),
            ("deals_won", "day", "owner_id", "current"),
            ("win_rate", "day", "owner_id", "previous"),
            ("median_deal_size", "week", "owner_id", "current"),
            ("stage_duration_days", "day", "stage", "current"),
            ("owner_churn", "day", "owner_id", "current"),
            ("owner_churned", "week", "owner_id", "current"),
            ("owner_customers", "week", "owner_id", "previous"),
            ("owner_upsell_rate", "day", "owner_id", "current"),
            ("repeat_purchase_rate", "month", "{}", "current"),
            ("spend_by_category", "month", "category", "current"),
            ("spend_by_category", "quarter", "category", "previous"),
            ("quota_attainment", "month", "owner_id", "current"),
            ("won_revenue", "month", "account_id", "current"),
        ]
    )
)
PERIOD_STARTS = ["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"]


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def kinds_event(step: tuple[Any, ...], now: int, versions: dict[tuple[str, int], int]) -> Event:
    """The event of an every-kind history's "upsert" or "delete" step (its next version)."""
    if step[0] == "delete":
        key = (step[1], step[2])
        versions[key] = versions.get(key, 0) + 1
        return Event.model_validate(
            {"source": "crm", "object": step[1], "id": f"{step[1][0]}{step[2]}",
             "op": "delete", "version": versions[key]}
        )  # fmt: skip
    obj, i, fields, times = step[1]
    key = (obj, i)
    versions[key] = versions.get(key, 0) + 1
    timed = {f: _iso(now + h * HOUR) for f, h in times.items() if h is not None}
    return _record(obj, i, versions[key], fields | timed)


def _record(obj: str, i: int, version: int, fields: dict[str, Any]) -> Event:
    return Event.model_validate(
        {"source": "crm", "object": obj, "id": f"{obj[0]}{i}", "op": "upsert",
         "version": version, "fields": fields}
    )  # fmt: skip


_hours = st.integers(-120, 60)  # from now: the past and future-dated
_maybe_hours = st.one_of(st.none(), _hours)


@st.composite
def _deal_record(draw: st.DrawFn) -> tuple[str, int, dict[str, Any], dict[str, int | None]]:
    """A deal: status, type, account, stage (its versions make stays)."""
    h = draw(_hours)
    fields = {
        "owner_id": draw(_owner),
        "status": draw(st.sampled_from(["won", "won", "lost", "open"])),
        "type": draw(st.sampled_from(["new", "upsell"])),
        "account_id": draw(st.sampled_from(["a0", "a1", "a2"])),
        "stage": draw(st.sampled_from(["s1", "s2"])),
        "amount": str(draw(st.integers(0, 500))),
    }
    times = {"closed_at": h, "created_at": h - 30, "stage_entered_at": h - 5}
    return "deal", draw(st.integers(0, 7)), fields, times


@st.composite
def _account_record(draw: st.DrawFn) -> tuple[str, int, dict[str, Any], dict[str, int | None]]:
    """An account: a customer from .. churned at (either may be unset), often churned soon
    after it became one (a window condition on customer_since flips while the churn counts)."""
    since, churned = draw(_maybe_hours), draw(_maybe_hours)
    soon = draw(st.one_of(st.none(), st.integers(1, 50)))
    if soon is not None and since is not None:
        churned = since + soon
    times = {"customer_since": since, "churned_at": churned}
    return "account", draw(st.integers(0, 2)), {"owner_id": draw(_owner)}, times


@st.composite
def _period_record(draw: st.DrawFn) -> tuple[str, int, dict[str, Any], dict[str, int | None]]:
    """Spend (a month or quarter, counted by rolling windows that hold it whole) or a quota."""
    fields: dict[str, Any] = {
        "period_start": draw(st.sampled_from(PERIOD_STARTS)),
        "amount": str(draw(st.integers(1, 900))),
    }
    if draw(st.booleans()):
        fields["category"] = draw(st.sampled_from(["acquisition", "retention"]))
        fields["period"] = draw(st.sampled_from(["month", "month", "quarter"]))
        return "spend", draw(st.integers(0, 3)), fields, {}
    fields |= {"owner_id": draw(_owner), "period": "month"}
    return "quota", draw(st.integers(0, 2)), fields, {}


_records = st.one_of(_deal_record(), _account_record(), _period_record())
_kinds_step = st.one_of(
    st.tuples(st.just("upsert"), _records),
    st.tuples(
        st.just("delete"), st.sampled_from(["deal", "account", "spend", "quota"]), st.integers(0, 7)
    ),
    st.tuples(st.just("again"), st.integers(0, 5)),  # a duplicate of an event already sent
    st.tuples(st.just("restart")),
    st.tuples(st.just("tick"), st.integers(1, 40 * 60)),  # minutes later
    st.tuples(st.just("tick"), st.integers(1, 12 * 24 * 60)),  # up to 12 days later
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_kinds_step, min_size=1, max_size=30))
def test_indexed_ticks_and_rollovers_write_what_full_evaluations_write_for_every_kind(
    steps: list[tuple[Any, ...]],
) -> None:
    run = _Run(KINDS)
    now = T0
    versions: dict[tuple[str, int], int] = {}
    sent: list[Event] = []
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
        if step[0] == "restart":
            if pending:
                run.batch(pending, now)
                pending = []
            run.restart()
            continue
        if step[0] == "again":
            if sent:
                pending.append(sent[-1 - step[1] % len(sent)])
            continue
        event = kinds_event(step, now, versions)
        pending.append(event)
        sent.append(event)
    if pending:
        run.batch(pending, now)
    for later in (now + HOUR, now + 50 * HOUR, now + 40 * 24 * HOUR, now + 100 * 24 * HOUR):
        run.tick(later)
        assert run.fields["indexed"] == run.fields["full"], later
    engine, planner = run.engine, run.full
    for v in planner.values(engine, now + 100 * 24 * HOUR):
        key2 = (v.rule.target.object, v.record, v.rule.target.field)
        assert run.fields["indexed"].get(key2) == v.value, key2
