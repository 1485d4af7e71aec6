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
)

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
