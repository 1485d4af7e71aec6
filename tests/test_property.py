"""Incremental engine == reference recompute, for any order, duplication and deletion."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_pulse.metrics import Engine, Event, WindowSpec, build_catalog, parse_time, reference_report

WINDOWS = (
    WindowSpec("month"),
    WindowSpec("quarter"),
    WindowSpec("year"),
    WindowSpec("rolling", 30),
)
T0 = parse_time("2026-01-20T00:00:00Z")
DAY = 86_400_000


def _time(rng: random.Random) -> str | None:
    if rng.random() < 0.1:
        return None
    from datetime import UTC, datetime

    ms = T0 + rng.randrange(0, 120) * DAY + rng.randrange(0, 24) * 3_600_000
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fields(obj: str, rng: random.Random) -> dict[str, object]:
    fields = _object_fields(obj, rng)
    if obj in ("deal", "account", "contact", "ticket", "activity"):
        # who changed the record last, and when (users "0" to "3" may exist): active users
        fields["modified_by"] = rng.choice(["0", "1", "2", "u9", None])
        fields["modified_at"] = _time(rng)
    return fields


def _object_fields(obj: str, rng: random.Random) -> dict[str, object]:
    c = rng.choice
    if obj == "deal":
        return {
            "account_id": c(["0", "1", "a2", None]),  # accounts "0" and "1" may exist
            "owner_id": c(["u1", "u2", None]),
            "stage": c(["s1", "s2", "s3"]),
            "stage_entered_at": _time(rng),
            "status": c(["open", "won", "lost"]),
            "type": c(["new", "upsell", "renewal", "other"]),
            "amount": c(["100.50", "0", "2500", 7]),
            "created_at": c([None, _time(rng)]),
            "closed_at": _time(rng),
        }
    if obj == "account":
        return {
            "customer_since": _time(rng),
            "churned_at": c([None, _time(rng)]),
            "domain": c(["x.com", "www.X.com", "y.com", None]),
        }
    if obj == "contact":
        return {
            "email": c(["a@x.com", " A@x.com", "b@y.com", None]),
            "lifecycle": c(["lead", "qualified", "customer", "other"]),
            "created_at": _time(rng),
            "converted_at": c([None, _time(rng)]),
        }
    if obj == "ticket":
        return {
            "owner_id": c(["u1", "u2"]),
            "account_id": "a1",
            "status": c(["open", "closed"]),
            "created_at": _time(rng),
            "closed_at": _time(rng),
            "first_response_at": c([None, _time(rng)]),
        }
    if obj == "user":
        return {"created_at": _time(rng), "deactivated_at": c([None, None, _time(rng)])}
    if obj == "activity":
        return {
            "owner_id": c(["u1", "0", "1"]),  # users "0" and "1" may exist
            "account_id": c(["a1", "a2"]),
            "type": c(["call", "email", "meeting", "note"]),
            "occurred_at": _time(rng),
        }
    if obj == "survey_response":
        survey = c(["nps", "csat"])
        return {
            "account_id": c(["a1", "a2"]),
            "survey": survey,
            "score": rng.randint(0, 10) if survey == "nps" else rng.randint(1, 5),
            "submitted_at": _time(rng),
        }
    if obj == "quota":
        return {
            "owner_id": c(["u1", "u2"]),
            "period": c(["month", "quarter"]),
            "period_start": c(["2026-01-01", "2026-02-01", "2026-04-01"]),
            "amount": "1000",
        }
    return {
        "category": c(["acquisition", "retention"]),
        "period": c(["month", "quarter"]),
        "period_start": c(["2026-01-01", "2026-04-01"]),
        "amount": "300",
    }


OBJECTS = [
    "deal",
    "account",
    "contact",
    "ticket",
    "activity",
    "survey_response",
    "quota",
    "spend",
    "user",
]


def history(seed: int, ties: bool = True) -> list[Event]:
    """Random versions per record (upserts, deletes, re-creations). With ``ties``, some versions
    have two or three different events (upserts with other contents, a delete): equal
    versions, as Salesforce and Pipedrive produce with their one-second resolution."""
    rng = random.Random(seed)
    events = []
    for obj in OBJECTS:
        for rid in range(rng.randint(0, 4)):
            for version in range(1, rng.randint(2, 6)):
                siblings = rng.choice([1, 1, 1, 2, 3]) if ties else 1
                for _ in range(siblings):
                    op = "delete" if rng.random() < 0.15 else "upsert"
                    raw = {
                        "source": "s",
                        "object": obj,
                        "id": str(rid),
                        "op": op,
                        "version": version,
                    }
                    if op == "upsert":
                        raw["fields"] = _fields(obj, rng)
                    events.append(Event.model_validate(raw))
    return events


def shuffled(events: list[Event], seed: int) -> list[Event]:
    rng = random.Random(seed)
    out = events + rng.sample(events, len(events) // 3) if events else []
    rng.shuffle(out)
    return out


def rows(engine_or_rows: object) -> list[dict[str, object]]:
    return [r.to_json() for r in engine_or_rows]  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), order=st.integers(0, 10**6), as_of_day=st.integers(10, 200))
def test_incremental_equals_reference_in_any_order(seed: int, order: int, as_of_day: int) -> None:
    catalog = build_catalog()
    events = history(seed)
    as_of = T0 + as_of_day * DAY
    engine = Engine(catalog, windows=WINDOWS)
    engine.apply_all(shuffled(events, order))
    expected = rows(reference_report(catalog, events, as_of, WINDOWS))
    assert rows(engine.report(as_of)) == expected
    for row in expected:  # rates stay rates: upsell accounts are customers at the end
        if row["metric"] in ("upsell_rate", "churn_rate", "retention_rate", "win_rate"):
            assert 0 <= row["value"] <= 1, row  # type: ignore[operator]
    other = Engine(catalog, windows=WINDOWS)
    other.apply_all(shuffled(events, order + 1))
    assert rows(other.report(as_of)) == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), order=st.integers(0, 10**6))
def test_time_zone_and_batched_changes(seed: int, order: int) -> None:
    from crm_pulse.metrics import builtin_definitions, definitions_from_mapping

    user = definitions_from_mapping(
        {
            "measures": {
                "renewal_amount": {
                    "object": "deal",
                    "where": {"status": "won", "type": "renewal", "amount": {"gt": 50}},
                    "at": "closed_at",
                    "sum": "amount",
                }
            },
            "metrics": {
                "avg_renewal_size": {
                    "value": "renewal_amount / renewals_won",
                    "groups": [{}, "owner_id"],
                    "category": "business performance",
                    "unit": "money",
                }
            },
        }
    )
    catalog = build_catalog(builtin_definitions().merged(user), timezone="America/New_York")
    assert "avg_renewal_size" in catalog.metrics
    events = shuffled(history(seed), order)
    as_of = T0 + 200 * DAY
    engine = Engine(catalog, windows=WINDOWS[:3])
    seen: dict[tuple[str, str, str], object] = {}
    rng = random.Random(order)
    i = 0
    while i < len(events):
        step = rng.randint(1, 7)
        engine.apply_all(events[i : i + step])
        i += step
        for change in engine.changes(as_of):
            j = change.to_json()
            seen[(j["metric"], j["window"], repr(j["group"]))] = j["value"]
    final = rows(engine.report(as_of))
    assert final == rows(reference_report(catalog, events, as_of, WINDOWS[:3]))
    for row in final:
        if row["metric"].endswith((".progress", ".pace")):
            continue
        key = (row["metric"], row["window"], repr(row["group"]))
        if key not in seen and row["value"] == 0:
            continue  # a window that never held data is reported as 0 but never "changed"
        assert seen.get(key) == row["value"], row


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), orders=st.lists(st.integers(0, 10**6), min_size=2, max_size=4))
def test_equal_versions_give_one_result_in_every_order(seed: int, orders: list[int]) -> None:
    """Ties (upserts with different fields, upsert vs delete at one version) and duplicates,
    shuffled several ways: every order gives the reference's rows, and so the same rows."""
    catalog = build_catalog()
    events = history(seed)
    as_of = T0 + 200 * DAY
    expected = rows(reference_report(catalog, events, as_of, WINDOWS))
    for order in orders:
        engine = Engine(catalog, windows=WINDOWS)
        engine.apply_all(shuffled(events, order))
        assert rows(engine.report(as_of)) == expected


def _deal(version: int, op: str = "upsert", amount: str = "10") -> Event:
    raw: dict[str, object] = {"source": "sf", "object": "deal", "id": "d1", "op": op}
    raw["version"] = version
    if op == "upsert":
        raw["fields"] = {"status": "won", "amount": amount, "closed_at": "2026-01-05T00:00:00Z"}
    return Event.model_validate(raw)


def test_the_tie_rule_in_the_issue_s_examples() -> None:
    """Two upserts with version 200 give won_revenue 999 in either order (the fields of
    amount 999 serialise greater); an upsert and a delete at version 300 drop the deal."""
    catalog = build_catalog()
    as_of = parse_time("2026-01-31T00:00:00Z")

    def won(events: list[Event]) -> object:
        engine = Engine(catalog)
        engine.apply_all(events)
        values = [
            r.value
            for r in engine.report(as_of)
            if r.metric == "won_revenue" and r.window.label == "2026-01" and r.group == ()
        ]
        return values[0] if values else None

    a, b = _deal(200, amount="10"), _deal(200, amount="999")
    assert a.canonical < b.canonical
    assert won([a, b]) == won([b, a]) == 999
    up, gone = _deal(300), _deal(300, "delete")
    assert won([a, up, gone]) is None and won([gone, a, up]) is None  # no deal, no row
    assert won([up, gone, up]) is None


ADDITIVE = (
    "won_revenue",
    "deals_won",
    "new_business_revenue",
    "upsells_won",
    "new_customers",
    "tickets_opened",
    "tickets_closed",
    "sales_calls",
    "activities",
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), as_of_day=st.integers(-5, 130), hour=st.integers(0, 23))
def test_a_quarter_is_the_sum_of_its_reported_months(seed: int, as_of_day: int, hour: int) -> None:
    """Records dated after the as-of time are in no window yet (the open window ends at the
    as-of time), so every quarter equals the sum of its reported months, open one included."""
    catalog = build_catalog()
    as_of = T0 + as_of_day * DAY + hour * 3_600_000
    engine = Engine(catalog, windows=WINDOWS[:2])
    engine.advance(as_of)  # as replay does
    engine.apply_all(shuffled(history(seed), seed))
    got = rows(engine.report(as_of))
    assert got == rows(reference_report(catalog, history(seed), as_of, WINDOWS[:2]))
    months: dict[tuple[str, str, str], float] = {}
    quarters: dict[tuple[str, str, str], float] = {}
    for row in got:
        if row["metric"] not in ADDITIVE:
            continue
        label = str(row["window"])
        if "-Q" in label:
            quarters[(str(row["metric"]), repr(row["group"]), label)] = float(row["value"])  # type: ignore[arg-type]
        else:
            year, month = label.split("-")
            q = f"{year}-Q{(int(month) - 1) // 3 + 1}"
            key = (str(row["metric"]), repr(row["group"]), q)
            months[key] = months.get(key, 0.0) + float(row["value"])  # type: ignore[arg-type]
    assert quarters.keys() == months.keys()
    for key, value in quarters.items():
        assert abs(months[key] - value) < 1e-6, key


def test_a_deal_won_after_the_as_of_time_is_in_no_window_yet() -> None:
    """The issue's example: as of 2026-02-15, a deal won on 2026-03-05 is not in 2026-Q1."""
    catalog = build_catalog()
    as_of = parse_time("2026-02-15T00:00:00Z")

    def deal(i: str, closed: str, amount: str) -> Event:
        fields = {"status": "won", "amount": amount, "closed_at": closed, "owner_id": "u1"}
        return Event.model_validate(
            {
                "source": "s",
                "object": "deal",
                "id": i,
                "op": "upsert",
                "version": 1,
                "fields": fields,
            }
        )

    events = [deal("1", "2026-01-10T00:00:00Z", "100"), deal("2", "2026-03-05T00:00:00Z", "6000")]
    for advanced in (True, False):  # replay sets the horizon; an engine never told still agrees
        engine = Engine(catalog)
        if advanced:
            engine.advance(as_of)
        engine.apply_all(events)
        won = {
            r.window.label: r.value
            for r in engine.report(as_of)
            if r.metric == "won_revenue" and r.group == ()
        }
        assert won == {"2026-01": 100, "2026-02": 0, "2026-Q1": 100}


def _timed_metrics(catalog: object) -> set[str]:
    from crm_pulse.metrics import Catalog

    assert isinstance(catalog, Catalog)
    return {
        name
        for name, metric in catalog.metrics.items()
        if all(m.placement in ("timed", "stays") for m in metric.measures)
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), order=st.integers(0, 10**6))
def test_live_with_a_moving_clock_ends_where_replay_does(seed: int, order: int) -> None:
    """The live engine applies events while its clock moves (advance before each batch, ticks
    in between); future-dated records are added when their time comes, so the values it
    reported along the way end equal to replay at the final time."""
    catalog = build_catalog()
    events = shuffled(history(seed), order)
    rng = random.Random(order)
    timed = _timed_metrics(catalog)
    engine = Engine(catalog, windows=WINDOWS[:3])
    seen: dict[tuple[str, str, str], object] = {}
    now = T0 - 5 * DAY
    i = 0
    while i < len(events) or now < T0 + 130 * DAY:
        now += rng.randrange(0, 20) * DAY + rng.randrange(0, 24) * 3_600_000
        engine.advance(now)
        step = rng.randint(0, 6)
        engine.apply_all(events[i : i + step])
        i += step
        for change in engine.changes(now):
            j = change.to_json()
            seen[(str(j["metric"]), str(j["window"]), repr(j["group"]))] = j["value"]
    final = rows(engine.report(now))
    assert final == rows(reference_report(catalog, events, now, WINDOWS[:3]))
    for row in final:
        if row["metric"] not in timed:
            continue
        key = (str(row["metric"]), str(row["window"]), repr(row["group"]))
        if key not in seen and row["value"] == 0:
            continue
        assert seen.get(key) == row["value"], row


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    start=st.integers(1, 12),
    as_of_day=st.integers(-5, 200),
    zone=st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo"]),
)
def test_fiscal_years_move_quarters_and_years_alike(
    seed: int, start: int, as_of_day: int, zone: str
) -> None:
    """Any fiscal_year_start: the engine equals the reference (which computes fiscal windows
    its own way), and a fiscal quarter is the sum of its reported months."""
    from crm_pulse.metrics import builtin_definitions

    catalog = build_catalog(builtin_definitions(), timezone=zone, fiscal_year_start=start)
    as_of = T0 + as_of_day * DAY
    windows = WINDOWS[:3]
    engine = Engine(catalog, windows=windows)
    engine.advance(as_of)
    events = history(seed)
    engine.apply_all(shuffled(events, seed))
    got = rows(engine.report(as_of))
    assert got == rows(reference_report(catalog, events, as_of, windows))
    fy = "FY" if start != 1 else ""
    labels = {str(r["window"]) for r in got}
    assert all(label.startswith(fy) for label in labels if "Q" in label)
    # months of each quarter, by the calendar's own bounds
    cal = catalog.calendar
    for row in got:
        if row["metric"] != "won_revenue" or "Q" not in str(row["window"]) or row["group"]:
            continue
        q = cal.parse_label(str(row["window"]))
        start_ms, end_ms = cal.bounds(q)
        total = sum(
            float(r["value"])  # type: ignore[arg-type]
            for r in got
            if r["metric"] == "won_revenue"
            and not r["group"]
            and "Q" not in str(r["window"])
            and len(str(r["window"])) == 7
            and start_ms <= cal.bounds(cal.parse_label(str(r["window"])))[0] < end_ms
        )
        assert abs(total - float(row["value"])) < 1e-6  # type: ignore[arg-type]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), as_of_day=st.integers(10, 150), pick=st.integers(0, 10**6))
def test_explain_gives_replay_s_value_and_its_parts(seed: int, as_of_day: int, pick: int) -> None:
    """``explain`` of any row gives the row's value; for counts and sums its contributions add
    up to it."""
    from fractions import Fraction

    from crm_pulse.metrics.explain import explain

    catalog = build_catalog()
    as_of = T0 + as_of_day * DAY
    events = history(seed)
    engine = Engine(catalog, windows=WINDOWS)
    engine.advance(as_of)
    engine.apply_all(events)
    report = [r for r in engine.report(as_of) if "." not in r.metric]
    rng = random.Random(pick)
    for row in rng.sample(report, min(12, len(report))):
        got = explain(catalog, events, row.metric, row.window.label, row.group, as_of)
        assert got.value == row.value, row
        if row.metric in ADDITIVE:
            parts = sum((Fraction(c.contribution) for c in got.contributions), Fraction(0))
            assert parts == row.value, row


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    as_of_day=st.integers(0, 130),
    zone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]),
)
def test_day_and_week_windows(seed: int, as_of_day: int, zone: str) -> None:
    """Days and ISO weeks (Monday to Sunday, in the deployment's zone): engine == reference,
    and a week is the sum of its days for counts and sums."""
    from crm_pulse.metrics import builtin_definitions

    catalog = build_catalog(builtin_definitions(), timezone=zone)
    windows = (WindowSpec("day"), WindowSpec("week"), WindowSpec("month"))
    as_of = T0 + as_of_day * DAY + 7 * 3_600_000
    events = history(seed)
    engine = Engine(catalog, windows=windows)
    engine.advance(as_of)
    engine.apply_all(shuffled(events, seed))
    got = rows(engine.report(as_of))
    assert got == rows(reference_report(catalog, events, as_of, windows))
    cal = catalog.calendar
    days: dict[tuple[str, str, str], float] = {}
    weeks: dict[tuple[str, str, str], float] = {}
    for row in got:
        label = str(row["window"])
        if row["metric"] not in ADDITIVE or len(label) not in (8, 10):
            continue
        key = (str(row["metric"]), repr(row["group"]))
        window = cal.parse_label(label)
        if window.spec.kind == "week":
            weeks[(*key, label)] = float(row["value"])  # type: ignore[arg-type]
        else:
            start = cal.bounds(window)[0]
            week = cal.window("week", cal.index_of("week", start)).label
            days[(*key, week)] = days.get((*key, week), 0.0) + float(row["value"])  # type: ignore[arg-type]
    for key, value in weeks.items():
        assert abs(days.get(key, 0.0) - value) < 1e-6, key


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    order=st.integers(0, 10**6),
    as_of_day=st.integers(0, 130),
)
def test_the_last_change_a_user_made_is_kept_in_any_order(
    seed: int, order: int, as_of_day: int
) -> None:
    """modified_by / modified_at: an upsert without them (a connector's own write-back) keeps
    the last change known; deletes end it; ties and duplicates in any order (active_users)."""
    rng = random.Random(seed)
    catalog = build_catalog()
    events = [
        Event.model_validate(
            {
                "source": "s",
                "object": "user",
                "id": str(i),
                "op": "upsert",
                "version": 1,
                "fields": {"created_at": "2025-01-01T00:00:00Z"},
            }
        )
        for i in range(3)
    ]
    for obj in ("deal", "activity", "ticket"):
        for rid in range(rng.randint(1, 3)):
            for _ in range(rng.randint(1, 7)):
                version = rng.randint(1, 5)  # few versions: many ties
                if rng.random() < 0.2:
                    raw: dict[str, object] = {"op": "delete"}
                else:
                    by = rng.choice(["0", "1", "2", None, None])
                    raw = {
                        "op": "upsert",
                        "fields": {
                            "modified_by": by,
                            "modified_at": None if by is None else _time(rng),
                            "account_id": rng.choice(["a", "b"]),  # other changes
                        },
                    }
                raw.update(source="s", object=obj, id=str(rid), version=version)
                events.append(Event.model_validate(raw))
    windows = (WindowSpec("month"), WindowSpec("rolling", 30))
    as_of = T0 + as_of_day * DAY
    expected = rows(reference_report(catalog, events, as_of, windows))
    for k in range(2):
        engine = Engine(catalog, windows=windows)
        engine.apply_all(shuffled(events, order + k))
        assert rows(engine.report(as_of)) == expected
