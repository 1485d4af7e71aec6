"""Ticks and calendar rollovers cost the groups whose value can have moved, for every kind of
measure (issue 17, items 5 and 8).

For each rule of ``KINDS`` (every measure and window kind a rule can read: counts, sums,
percentiles, distinct counts, stays, window conditions, ``active`` counts, ``among``, period
records; rolling windows, days, weeks, months, quarters, current and previous), a tick with
nothing due evaluates no group; a rollover evaluates the groups with data in the window it leaves
or enters, not the others; what is written equals the evaluation of every group every time.
"""

from __future__ import annotations

from typing import Any

from crm_pulse.metrics.events import Event

from .test_tick_index import HOUR, KINDS, T0, _iso, _record, _Run

DAY = 24 * HOUR


def _history() -> list[Event]:
    """Owners u1..u4, accounts, spend per category, quotas; no time within a minute of T0."""
    events: list[Event] = []

    def deal(i: int, owner: str, status: str, kind: str, account: str, hours: float) -> None:
        at = T0 + int(hours * HOUR)
        for version, stage, entered in ((1, "s1", at - 5 * HOUR), (2, "s2", at - 2 * HOUR)):
            events.append(  # two versions: a stay in s1 that ended 2 h before the close
                _record("deal", i, version, {
                    "owner_id": owner, "status": status, "type": kind, "account_id": account,
                    "stage": stage, "amount": str(100 + i), "closed_at": _iso(at),
                    "created_at": _iso(at - 30 * HOUR), "stage_entered_at": _iso(entered)})
            )  # fmt: skip

    for i in range(20):  # u1 and u2 close deals in the last days; u3 only 9-10 days ago
        deal(i, ("u1", "u2")[i % 2], ("won", "lost")[i % 3 == 0], "upsell", f"a{i % 3}", -1 - 3 * i)
    for i in range(20, 24):
        deal(i, "u3", "won", "new", "a9", -9 * 24 - i)
    deal(24, "u3", "won", "new", "a7", -50 * 24)  # January 6th
    accounts = [  # (owner, customer since, churned at), hours from T0
        ("u1", -300, None),
        ("u2", -200, -30),
        ("u1", -100, 3),
        ("u4", -2, 1),
    ]
    for i, (owner, since, churned) in enumerate(accounts):
        times = {"customer_since": since, "churned_at": churned}
        fields = {f: _iso(T0 + h * HOUR) for f, h in times.items() if h is not None}
        events.append(_record("account", i, 1, {"owner_id": owner} | fields))
    for i, (cat, start) in enumerate([("acquisition", "2026-01-01"), ("retention", "2026-02-01")]):
        events.append(_record("spend", i, 1, {
            "category": cat, "period": "month", "period_start": start, "amount": "50"}))  # fmt: skip
    events.append(_record("quota", 0, 1, {
        "owner_id": "u1", "period": "month", "period_start": "2026-02-01", "amount": "900"}))  # fmt: skip
    return events


def _rule_names(run: _Run) -> dict[int, str]:
    return {i: f"{r.metric} {r.window} {r.which}" for i, r in enumerate(run.deployment.writeback)}


def _evaluated(run: _Run, before: dict[int, int]) -> dict[str, int]:
    names = _rule_names(run)
    after = run.indexed.evaluated
    return {names[i]: n - before.get(i, 0) for i, n in after.items() if n != before.get(i, 0)}


def _tick(run: _Run, at: int) -> dict[str, int]:
    before = dict(run.indexed.evaluated)
    run.tick(at)
    assert run.fields["indexed"] == run.fields["full"], at
    return _evaluated(run, before)


def test_a_tick_with_nothing_due_evaluates_no_group_of_any_kind() -> None:
    run = _Run(KINDS)
    run.batch(_history(), T0)
    first = _tick(run, T0)  # every rule's every group once (the index is built)
    assert set(first) == set(_rule_names(run).values()), "every rule evaluated once"
    full_first = run.full.evaluations
    for later in (T0 + 1_000, T0 + 30_000, T0 + 60_000):
        assert _tick(run, later) == {}, later
    # the former way evaluated the rolling rules of every kind at every tick
    assert run.full.evaluations - full_first >= 3 * 20


def test_each_rolling_kind_is_evaluated_when_its_time_comes() -> None:
    run = _Run(KINDS)
    run.batch(_history(), T0)
    _tick(run, T0)
    # T0 + 1 h: account 3 (u4) churned: its active counts (at the window's end) and the churn
    # of 'customer_since < window.start' (false: it became a customer 2 h before)
    moved = _tick(run, T0 + HOUR + 1)
    assert moved.get("owner_customers rolling:1d current") == 1  # u4 only
    assert run.fields["indexed"][("O", "u4", "f7")] == 0
    # T0 + 22 h + 1 ms: the window's start passes u4's customer_since: the condition flips and
    # the churn counts (window conditions); it leaves with the churn at T0 + 25 h
    assert run.fields["indexed"][("O", "u4", "f8")] == 0
    _tick(run, T0 + 22 * HOUR - 1)
    assert run.fields["indexed"][("O", "u4", "f8")] == 0
    moved = _tick(run, T0 + 22 * HOUR + 2)
    assert moved.get("owner_churned rolling:1d current") == 1
    assert run.fields["indexed"][("O", "u4", "f8")] == 1
    moved = _tick(run, T0 + 25 * HOUR + 1)
    assert run.fields["indexed"][("O", "u4", "f8")] == 0
    # March 1st: February's retention spend lies whole in the rolling 31 days (period records)
    moved = _tick(run, 1_772_323_200_000 + 1)  # 2026-03-01T00:00:00Z
    assert moved.get("spend_by_category rolling:31d current") == 1
    assert run.fields["indexed"][("O", "retention", "f12")] == 50


def test_a_rollover_evaluates_the_groups_with_data_in_the_windows_it_leaves_or_enters() -> None:
    run = _Run(KINDS)
    run.batch(_history(), T0)
    _tick(run, T0)
    _tick(run, T0 + 60_000)
    # the next day: u3's deals are 9-10 days old, u4 has no deal: their daily values are 0
    # before and after; of u1 and u2 (deals yesterday), only u2 won one that day; both closed
    # deals the day before (the previous day's win rate)
    moved = _tick(run, T0 + DAY)
    assert moved["deals_won day current"] == 1
    assert moved["win_rate day previous"] == 2
    # 'active' counts are indexed by the months of their intervals' starts and ends: owners
    # with one in February (u1, u2, u4; not u3, who has no account)
    assert moved["owner_churn day current"] == 3
    assert "won_revenue month current" not in moved  # no month rolled over
    before = dict(run.indexed.evaluated)
    full_before = _evaluated_full(run)["won_revenue month current"]
    run.tick(1_772_323_200_000 + 1)  # March: month rules roll over
    assert run.fields["indexed"] == run.fields["full"]
    moved = _evaluated(run, before)
    # won revenue per account: a1, a2 and a9 won deals in February (a0's were all lost), a7
    # only in January: its February and March values are both 0, it is not evaluated
    assert moved["won_revenue month current"] == 3
    assert _evaluated_full(run)["won_revenue month current"] - full_before == 4
    assert moved["quota_attainment month current"] == 3  # u1, u2, u3: February data
    # a month later nobody has data in March or April (only u1's quota is in February)
    before = dict(run.indexed.evaluated)
    run.tick(1_775_001_600_000 + 1)  # April 1st
    assert run.fields["indexed"] == run.fields["full"]
    moved = _evaluated(run, before)
    assert "won_revenue month current" not in moved
    assert "quota_attainment month current" not in moved
    assert _evaluated_full(run)["won_revenue month current"] - full_before == 8


def _evaluated_full(run: _Run) -> dict[str, Any]:
    names = _rule_names(run)
    return {names[i]: n for i, n in run.full.evaluated.items()}
