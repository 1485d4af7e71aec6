"""metrics-spec section 4: the worked examples must hold exactly."""

from __future__ import annotations

import io
import json
from typing import Any

from crm_pulse.cli import main
from crm_pulse.metrics import (
    Engine,
    Event,
    WindowSpec,
    build_catalog,
    builtin_definitions,
    definitions_from_mapping,
    parse_time,
    reference_report,
)
from crm_pulse.metrics.explain import explain

YEAR = (WindowSpec("month"), WindowSpec("quarter"), WindowSpec("year"))


def ev(obj: str, rid: str, **fields: Any) -> Event:
    return Event.model_validate(
        {"source": "t", "object": obj, "id": rid, "op": "upsert", "version": 1, "fields": fields}
    )


def value(
    engine: Engine, as_of: str, metric: str, window: str, group: dict[str, str] | None = None
) -> Any:
    for row in engine.report(parse_time(as_of)):
        j = row.to_json()
        if j["metric"] == metric and j["window"] == window and j["group"] == (group or {}):
            return j["value"]
    return None


def deal(rid: str, status: str, closed: str, **extra: Any) -> Event:
    return ev("deal", rid, status=status, closed_at=closed, **extra)


def test_win_rate() -> None:
    e = Engine(build_catalog())
    e.apply_all(
        deal(f"d{i}", "won" if i < 30 else "lost", "2026-02-10T00:00:00Z") for i in range(100)
    )
    assert value(e, "2026-03-01T00:00:00Z", "win_rate", "2026-02") == 0.3


def test_renewal_rate_two_years() -> None:
    e = Engine(build_catalog(), windows=YEAR)
    for year, won in ((2025, 900), (2026, 600)):
        e.apply_all(
            deal(
                f"r{year}-{i}",
                "won" if i < won else "lost",
                f"{year}-05-01T00:00:00Z",
                type="renewal",
            )
            for i in range(1000)
        )
    assert value(e, "2026-12-01T00:00:00Z", "renewal_rate", "2025") == 0.9
    assert value(e, "2026-12-01T00:00:00Z", "renewal_rate", "2026") == 0.6


def test_nps_example() -> None:
    e = Engine(build_catalog())
    for i, score in enumerate([10, 9, 9, 8, 7, 6, 3, 0, 10, 10]):
        e.apply(
            ev(
                "survey_response",
                str(i),
                survey="nps",
                score=score,
                submitted_at="2026-03-02T00:00:00Z",
            )
        )
    assert value(e, "2026-03-20T00:00:00Z", "nps", "2026-03") == 20


def _clv_engine(lifespan: int, purchases: int, customers: int, amount: str) -> Engine:
    defs = builtin_definitions().merged(
        definitions_from_mapping({"params": {"lifespan_years": lifespan}})
    )
    e = Engine(build_catalog(defs), windows=YEAR)
    e.apply_all(
        deal(f"c{i}", "won", "2026-06-01T00:00:00Z", amount=amount, account_id=f"a{i % customers}")
        for i in range(purchases)
    )
    return e


def test_clv_examples() -> None:
    # revenue 100,000 over 2,500 purchases by 500 customers, lifespan 4 -> 800
    assert value(_clv_engine(4, 2500, 500, "40"), "2026-12-01T00:00:00Z", "clv", "2026") == 800
    # avg purchase value 35, frequency 5, lifespan 6 -> 1,050
    assert value(_clv_engine(6, 2500, 500, "35"), "2026-12-01T00:00:00Z", "clv", "2026") == 1050


def test_churn_retention_new_customers() -> None:
    e = Engine(build_catalog())
    for i in range(200):
        churned = "2026-03-15T00:00:00Z" if i < 10 else None
        e.apply(ev("account", f"old{i}", customer_since="2025-06-01T00:00:00Z", churned_at=churned))
    for i in range(30):
        e.apply(ev("account", f"new{i}", customer_since="2026-03-10T00:00:00Z"))
    as_of = "2026-04-02T00:00:00Z"
    assert value(e, as_of, "churn_rate", "2026-03") == 0.05
    assert value(e, as_of, "retention_rate", "2026-03") == 0.95
    assert value(e, as_of, "new_customers", "2026-03") == 30


def test_quota_counts_only_its_own_period() -> None:
    e = Engine(build_catalog())
    e.apply(
        ev("quota", "q", owner_id="u1", period="quarter", period_start="2026-01-01", amount="1000")
    )
    e.apply(deal("d", "won", "2026-02-01T00:00:00Z", owner_id="u1", amount="250"))
    assert (
        value(e, "2026-03-01T00:00:00Z", "quota_attainment", "2026-Q1", {"owner_id": "u1"}) == 0.25
    )
    assert (
        value(e, "2026-03-01T00:00:00Z", "quota_attainment", "2026-02", {"owner_id": "u1"}) is None
    )


def test_duplicates_normalised() -> None:
    e = Engine(build_catalog())
    e.apply(ev("contact", "1", email="A@x.com "))
    e.apply(ev("contact", "2", email="a@x.com"))
    e.apply(ev("contact", "3", email="b@x.com"))
    e.apply(ev("account", "1", domain="www.x.com"))
    e.apply(ev("account", "2", domain="x.com"))
    assert value(e, "2026-03-01T00:00:00Z", "duplicate_contacts", "current") == 2
    assert value(e, "2026-03-01T00:00:00Z", "duplicate_accounts", "current") == 2


def test_replay_cli_jsonl_and_bad_lines(tmp_path: Any) -> None:
    path = tmp_path / "events.jsonl"
    good = {
        "source": "h",
        "object": "deal",
        "id": "1",
        "op": "upsert",
        "version": 1,
        "fields": {"status": "won", "amount": "10", "closed_at": "2026-01-05T00:00:00Z"},
    }
    path.write_text(
        json.dumps(good)
        + "\n{bad json\n"
        + json.dumps({**good, "op": "merge"})
        + "\n"
        + json.dumps({**good, "fields": {"closed_at": "2026-13-01"}})
        + "\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert main(["replay", str(path), "--as-of", "2026-02-01"], out, err) == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {"metric": "won_revenue", "window": "2026-01", "group": {}, "value": 10} in rows
    text = err.getvalue()
    assert "line 2: not valid JSON" in text
    assert "line 3: op: expected 'upsert' or 'delete', got 'merge'" in text
    assert "line 4: fields.closed_at" in text
    assert "Traceback" not in text
    assert main(["replay", str(path), "--strict"], io.StringIO(), io.StringIO()) == 1


def test_median_and_p90_interpolate_between_closest_ranks() -> None:
    """Median deal size of 10 and 20 is 15 (a spreadsheet's MEDIAN); p90 of resolution times
    1..10 hours is 9.1 (PERCENTILE.INC). Kept exactly through updates and deletes, and merged
    from months into the quarter."""
    e = Engine(build_catalog(), windows=YEAR)
    e.apply(deal("a", "won", "2026-01-10T00:00:00Z", amount="10"))
    e.apply(deal("b", "won", "2026-02-10T00:00:00Z", amount="20"))
    as_of = "2026-03-20T00:00:00Z"
    assert value(e, as_of, "median_deal_size", "2026-01") == 10
    assert value(e, as_of, "median_deal_size", "2026-Q1") == 15
    e.apply(deal("c", "won", "2026-03-01T00:00:00Z", amount="1000"))
    assert value(e, as_of, "median_deal_size", "2026-Q1") == 20
    assert value(e, as_of, "avg_deal_size", "2026-Q1") == 343.3333333333333
    # an update moves a value, a delete removes it, a lost deal never counted
    e.apply(
        Event.model_validate(
            {**deal("b", "won", "2026-02-10T00:00:00Z", amount="30").model_dump(), "version": 2}
        )
    )
    assert value(e, as_of, "median_deal_size", "2026-Q1") == 30
    e.apply(
        Event.model_validate(
            {"source": "t", "object": "deal", "id": "c", "op": "delete", "version": 2}
        )
    )
    e.apply(deal("d", "lost", "2026-03-02T00:00:00Z", amount="5"))
    assert value(e, as_of, "median_deal_size", "2026-Q1") == 20
    assert value(e, as_of, "median_deal_size", "2026-03") is None  # no values: no row
    for i in range(1, 11):
        e.apply(
            ev(
                "ticket",
                f"t{i}",
                status="closed",
                created_at="2026-02-01T00:00:00Z",
                closed_at=f"2026-02-01T{i:02d}:00:00Z",
            )
        )
    assert value(e, as_of, "p90_resolution_time_hours", "2026-02") == 9.1
    assert value(e, as_of, "median_resolution_time_hours", "2026-Q1") == 5.5
    assert value(e, as_of, "avg_resolution_time_hours", "2026") == 5.5


def test_percentiles_in_user_definitions_are_checked() -> None:
    import pytest

    from crm_pulse.errors import ConfigError

    bad = definitions_from_mapping(
        {
            "measures": {"m": {"object": "deal", "at": "closed_at", "median": "stage"}},
            "metrics": {"x": {"value": "m", "category": "business performance"}},
        }
    )
    with pytest.raises(ConfigError, match="not a number or amount field"):
        build_catalog(builtin_definitions().merged(bad))
    with pytest.raises(ConfigError, match="placed in time"):
        definitions_from_mapping(
            {"measures": {"m": {"object": "deal", "median": "amount"}}, "metrics": {}}
        )


def test_rolling_windows_of_churn_retention_upsell_clv_and_cac() -> None:
    """The spec's churn example over the last 30 days (as of 2 April: 3 March to 2 April), and
    the other metrics the contract defines for every window kind."""
    windows = (WindowSpec("month"), WindowSpec("rolling", 30), WindowSpec("rolling", 40))
    e = Engine(build_catalog(), windows=windows)
    for i in range(200):
        churned = "2026-03-15T00:00:00Z" if i < 10 else None
        e.apply(ev("account", f"old{i}", customer_since="2025-06-01T00:00:00Z", churned_at=churned))
    for i in range(30):
        e.apply(ev("account", f"new{i}", customer_since="2026-03-10T00:00:00Z"))
    e.apply(
        ev(
            "account",
            "gone",
            customer_since="2026-03-05T00:00:00Z",
            churned_at="2026-03-20T00:00:00Z",
        )
    )
    e.apply(
        ev(
            "spend",
            "s1",
            category="acquisition",
            period="month",
            period_start="2026-03-01",
            amount="3100",
        )
    )
    e.apply(
        ev(
            "spend",
            "s2",
            category="acquisition",
            period="month",
            period_start="2026-04-01",
            amount="999",
        )
    )
    for i, account in enumerate(["old20", "old21", "old21", "old0", "stranger"]):
        e.apply(
            deal(
                f"u{i}",
                "won",
                "2026-03-20T00:00:00Z",
                type="upsell",
                account_id=account,
                amount="100",
            )
        )
    as_of = "2026-04-02T00:00:00Z"
    # at 3 March: 200 customers ("gone" joined on the 5th, so it is not one of them)
    assert value(e, as_of, "churn_rate", "last_30d") == 0.05
    assert value(e, as_of, "retention_rate", "last_30d") == 0.95
    assert value(e, as_of, "new_customers", "last_30d") == 31
    # March's spend lies inside the last 40 days (not the last 30), April's in neither
    assert value(e, as_of, "cac", "last_40d") == 100
    assert value(e, as_of, "cac", "last_30d") == 0
    # 4 accounts with an upsell, 2 of them customers at the end (old0 churned on the 15th,
    # "stranger" is no customer at all)
    customers_at_end = 200 - 10 + 30
    assert value(e, as_of, "upsell_rate", "last_30d") == 2 / customers_at_end
    assert value(e, as_of, "upsell_rate", "2026-03") == 2 / customers_at_end
    # 5 purchases of 100 by 4 accounts, lifespan 3 -> 100 x 1.25 x 3
    assert value(e, as_of, "clv", "last_30d") == 375
    assert value(e, as_of, "quota_attainment", "last_30d") is None  # calendar only


def test_new_kpis_worked_examples() -> None:
    """metrics-spec-style examples for the KPIs the source articles name (issue 18, point 6)."""
    e = Engine(build_catalog(), windows=YEAR)
    # customer retention cost: 200 customers at the start of March, 10 churn in March,
    # retention spend 9,500 for March -> 9,500 / 190 = 50
    for i in range(200):
        churned = "2026-03-15T00:00:00Z" if i < 10 else None
        e.apply(ev("account", str(i), customer_since="2025-06-01T00:00:00Z", churned_at=churned))
    e.apply(
        ev(
            "spend",
            "r",
            category="retention",
            period="month",
            period_start="2026-03-01",
            amount="9500",
        )
    )
    # sales cycle: 10 and 20 days from created to won -> 15
    e.apply(
        deal(
            "c1",
            "won",
            "2026-03-11T00:00:00Z",
            created_at="2026-03-01T00:00:00Z",
            account_id="7",
            amount="4000",
        )
    )
    e.apply(
        deal(
            "c2",
            "won",
            "2026-03-25T00:00:00Z",
            created_at="2026-03-05T00:00:00Z",
            account_id="7",
            amount="5000",
        )
    )
    e.apply(deal("c3", "won", "2026-03-26T00:00:00Z", account_id="8", amount="600"))
    e.apply(deal("c4", "won", "2026-03-27T00:00:00Z", account_id="8", amount="400"))
    e.apply(deal("c5", "won", "2026-03-28T00:00:00Z", account_id="9"))  # no amount, one deal
    e.apply(deal("c6", "lost", "2026-03-28T00:00:00Z", account_id="9"))
    # first response: 2 and 4 hours -> 3
    for i, hour in enumerate(("11", "13")):
        e.apply(
            ev(
                "ticket",
                f"t{i}",
                status="open",
                created_at="2026-03-02T09:00:00Z",
                first_response_at=f"2026-03-02T{hour}:00:00Z",
            )
        )
    # qualified leads: 3 qualified and 1 customer of 6 leads created in March
    for i, stage in enumerate(["qualified"] * 3 + ["customer", "lead", "lead"]):
        e.apply(ev("contact", f"p{i}", lifecycle=stage, created_at="2026-03-03T00:00:00Z"))
    # adoption: users 0, 1, 2 (user 3 left in February); activities by 0, 1 and a stranger
    for i, left in enumerate([None, None, None, "2026-02-10T00:00:00Z"]):
        e.apply(ev("user", str(i), created_at="2025-01-01T00:00:00Z", deactivated_at=left))
    for i, owner in enumerate(["0", "0", "1", "stranger"]):
        e.apply(
            ev("activity", f"a{i}", owner_id=owner, type="call", occurred_at="2026-03-04T00:00:00Z")
        )
    as_of = "2026-04-02T00:00:00Z"
    assert value(e, as_of, "retention_cost", "2026-03") == 50
    assert value(e, as_of, "sales_cycle_days", "2026-03") == 15
    assert value(e, as_of, "repeat_customers", "2026-03") == 2  # accounts 7 and 8
    assert value(e, as_of, "repeat_purchase_rate", "2026-03") == 2 / 3
    # 10,000 won / 190 customers at the end of March
    assert value(e, as_of, "revenue_per_customer", "2026-03") == 10_000 / 190
    assert value(e, as_of, "first_response_time_hours", "2026-03") == 3
    assert value(e, as_of, "qualified_leads", "2026-03") == 4
    assert value(e, as_of, "active_users", "2026-03") == 2
    assert value(e, as_of, "active_user_rate", "2026-03") == 2 / 3
    # 2 deals (the others have no created_at) + 6 contacts + 2 tickets + 4 activities
    # created in March, by 3 users
    assert value(e, as_of, "records_created_per_user", "2026-03") == 14 / 3
    assert value(e, as_of, "repeat_customers", "2026-Q1") == 2


def test_active_users_count_activities_and_record_changes() -> None:
    """CRM adoption (issue 18, point 6): a user is active in P with an activity in P or a
    record whose last change (``modified_at``, by ``modified_by``) lies in P. Only final states
    are kept, so a change someone else made later replaces the earlier one."""

    def changed(obj: str, rid: str, by: str, at: str, version: int = 1, **extra: Any) -> Event:
        return Event.model_validate(
            {
                "source": "t",
                "object": obj,
                "id": rid,
                "op": "upsert",
                "version": version,
                "fields": {"modified_by": by, "modified_at": at, **extra},
            }
        )

    events = [
        # users 0..3 now; user 4 left in February
        *(
            ev("user", str(i), created_at="2025-01-01T00:00:00Z", deactivated_at=left)
            for i, left in enumerate([None, None, None, None, "2026-02-10T00:00:00Z"])
        ),
        # user 0 logs a call on 4 March; user 1 edits that activity last, on 25 March
        changed(
            "activity",
            "a1",
            "1",
            "2026-03-25T00:00:00Z",
            owner_id="0",
            type="call",
            occurred_at="2026-03-04T00:00:00Z",
        ),
        changed("deal", "d1", "1", "2026-03-10T00:00:00Z"),  # user 1 again: counted once
        # crm-pulse writes a metric into d1 in April: the connector says no one changed it
        Event.model_validate(
            {
                "source": "t",
                "object": "deal",
                "id": "d1",
                "op": "upsert",
                "version": 5,
                "fields": {},
            }
        ),
        # user 2 edits d2 in March, user 0 edits it again in April: only April's change is kept
        changed("deal", "d2", "2", "2026-03-12T00:00:00Z", version=1),
        changed("deal", "d2", "0", "2026-04-02T00:00:00Z", version=2),
        # user 3's contact was deleted afterwards: no record, no change
        changed("contact", "c1", "3", "2026-03-20T00:00:00Z"),
        Event.model_validate(
            {"source": "t", "object": "contact", "id": "c1", "op": "delete", "version": 2}
        ),
        changed("account", "x1", "4", "2026-03-05T00:00:00Z"),  # no longer a user at the end
        changed("ticket", "t1", "stranger", "2026-03-06T00:00:00Z"),  # not a user at all
    ]
    windows = (*YEAR, WindowSpec("rolling", 30))
    catalog = build_catalog()
    e = Engine(catalog, windows=windows)
    for event in reversed(events):  # order does not matter
        e.apply(event)
    as_of = "2026-04-15T00:00:00Z"
    assert value(e, as_of, "active_users", "2026-03") == 2  # users 0 (call) and 1 (changes)
    assert value(e, as_of, "active_user_rate", "2026-03") == 2 / 4
    assert value(e, as_of, "active_users", "2026-04") == 1  # user 0, by d2's last change
    assert value(e, as_of, "active_users", "2026-Q1") == 2
    assert value(e, as_of, "active_users", "last_30d") == 2  # a1 (25 March) and d2 (2 April)
    assert value(e, as_of, "activities", "2026-03") == 1
    oracle = reference_report(catalog, events, parse_time(as_of), windows)
    assert [r.to_json() for r in e.report(parse_time(as_of))] == [r.to_json() for r in oracle]
    why = explain(catalog, events, "active_users", "2026-03", (), parse_time(as_of))
    counted = sorted(
        (c.record, c.contribution) for c in why.contributions if c.measure == "active_users"
    )
    assert counted == [("t/activity/a1", "0"), ("t/activity/a1", "1"), ("t/deal/d1", "1")]


def test_cases_opened_and_closed_per_day_and_week() -> None:
    """Day and ISO-week windows (Monday to Sunday) in the deployment's zone."""
    days = (WindowSpec("day"), WindowSpec("week"))
    e = Engine(build_catalog(timezone="America/New_York"), windows=days)
    opened = ["2026-03-02T14:00:00Z", "2026-03-02T20:00:00Z", "2026-03-03T03:00:00Z"]
    for i, at in enumerate(opened):  # 03:00Z on the 3rd is 22:00 on the 2nd in New York
        e.apply(ev("ticket", f"t{i}", status="open", created_at=at))
    e.apply(
        ev(
            "ticket",
            "t9",
            status="closed",
            created_at="2026-03-02T15:00:00Z",
            closed_at="2026-03-08T15:00:00Z",
        )
    )
    as_of = "2026-03-09T12:00:00Z"
    assert value(e, as_of, "tickets_opened", "2026-03-02") == 4
    assert value(e, as_of, "tickets_opened", "2026-03-03") == 0
    assert value(e, as_of, "tickets_closed", "2026-03-08") == 1  # a Sunday: still week 10
    assert value(e, as_of, "tickets_opened", "2026-W10") == 4
    assert value(e, as_of, "tickets_closed", "2026-W10") == 1
    assert value(e, as_of, "tickets_closed", "2026-W11") == 0
    assert value(e, as_of, "avg_resolution_time_hours", "2026-W10") == 144
