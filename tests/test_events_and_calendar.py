"""Canonical events, JSONL errors, the calendar and expressions."""

from __future__ import annotations

from fractions import Fraction

import pytest

from crm_pulse.errors import DataError
from crm_pulse.metrics import (
    Calendar,
    Event,
    LineError,
    Window,
    WindowSpec,
    parse_time,
    parse_window_spec,
    read_events,
)
from crm_pulse.metrics.expressions import parse_expression


def test_event_types_known_fields() -> None:
    e = Event.model_validate(
        {
            "source": "h",
            "object": "deal",
            "id": 9812,
            "op": "upsert",
            "version": 1,
            "fields": {"amount": "1200.50", "closed_at": "2026-01-20T17:30:00+01:00", "x": [1]},
        }
    )
    assert e.id == "9812"
    assert e.values["amount"] == 1_200_500_000
    assert e.values["closed_at"] == parse_time("2026-01-20T16:30:00Z")
    assert e.values["x"] == [1]  # unknown fields are kept


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"closed_at": "2026-01-20T16:30:00"}, "has no offset"),
        ({"amount": "12,5"}, "expected a decimal number"),
        ({"status": "closed_won"}, "expected one of lost, open, won"),
    ],
)
def test_event_rejects_bad_fields(fields: dict[str, str], reason: str) -> None:
    errors: list[LineError] = []
    line = (
        '{"source":"h","object":"deal","id":"1","op":"upsert","version":1,"fields":'
        + __import__("json").dumps(fields)
        + "}"
    )
    assert list(read_events([line], errors=errors)) == []
    assert errors[0].line == 1 and reason in errors[0].reason


def test_read_events_reports_and_continues() -> None:
    good = '{"source":"h","object":"deal","id":"1","op":"delete","version":3}'
    errors: list[LineError] = []
    lines = [good, "", "[1]", '{"source":"h","object":"deal","op":"upsert","version":1}', good]
    assert len(list(read_events(lines, errors=errors))) == 2
    assert [str(e) for e in errors] == [
        "line 3: expected a JSON object, got list",
        "line 4: id: missing",
    ]
    with pytest.raises(DataError, match="line 3"):
        list(read_events(lines, strict=True))


def test_calendar_time_zone_and_labels() -> None:
    berlin = Calendar("Europe/Berlin")
    t = parse_time("2026-03-31T23:30:00Z")  # 01:30 on April 1st in Berlin
    assert Window(WindowSpec("month"), berlin.index_of("month", t)).label == "2026-04"
    assert Window(WindowSpec("month"), Calendar().index_of("month", t)).label == "2026-03"
    q = Window(WindowSpec("quarter"), Calendar().index_of("quarter", t))
    assert q.label == "2026-Q1"
    start, end = Calendar().bounds(q)
    assert (start, end) == (parse_time("2026-01-01T00:00:00Z"), parse_time("2026-04-01T00:00:00Z"))
    assert parse_window_spec("rolling:30d") == WindowSpec("rolling", 30)
    with pytest.raises(ValueError, match="rolling:<N>d"):
        parse_window_spec("weekly")
    with pytest.raises(ValueError, match="unknown time zone"):
        Calendar("Mars/Olympus")


def test_expressions_are_exact_and_safe() -> None:
    e = parse_expression("100 * (p - d) / n")
    assert e.names == {"p", "d", "n"}
    assert e.evaluate({"p": Fraction(5), "d": Fraction(3), "n": Fraction(10)}) == 20
    assert e.evaluate({"p": Fraction(5), "d": Fraction(3), "n": Fraction(0)}) is None
    for bad in ("__import__('os')", "a ** 2", "a.b", "a if b else c"):
        with pytest.raises(ValueError):
            parse_expression(bad)


def test_fiscal_year_labels_and_bounds() -> None:
    """fiscal_year_start 4: FY2026 is April 2025 - March 2026 (named by the year it ends in)."""
    from crm_pulse.metrics import Calendar, parse_time

    cal = Calendar("UTC", fiscal_year_start=4)
    for when, quarter, year in (
        ("2025-04-01T00:00:00Z", "FY2026-Q1", "FY2026"),
        ("2025-06-30T23:59:59Z", "FY2026-Q1", "FY2026"),
        ("2025-12-15T00:00:00Z", "FY2026-Q3", "FY2026"),
        ("2026-03-31T12:00:00Z", "FY2026-Q4", "FY2026"),
        ("2026-04-01T00:00:00Z", "FY2027-Q1", "FY2027"),
    ):
        t = parse_time(when)
        assert cal.window("quarter", cal.index_of("quarter", t)).label == quarter
        assert cal.window("year", cal.index_of("year", t)).label == year
    q1 = cal.parse_label("FY2026-Q1")
    assert cal.bounds(q1) == (
        parse_time("2025-04-01T00:00:00Z"),
        parse_time("2025-07-01T00:00:00Z"),
    )
    assert cal.bounds(cal.parse_label("FY2026")) == (
        parse_time("2025-04-01T00:00:00Z"),
        parse_time("2026-04-01T00:00:00Z"),
    )
    assert cal.window("month", cal.index_of("month", parse_time("2025-04-02T00:00:00Z"))).label == (
        "2025-04"
    )
    plain = Calendar("UTC")
    assert (
        plain.window("quarter", plain.index_of("quarter", parse_time("2026-02-01T00:00:00Z"))).label
        == "2026-Q1"
    )
    # a start in January is the calendar year: no FY labels
    assert Calendar("UTC", 1).parse_label("2026-Q1").label == "2026-Q1"


def test_day_and_iso_week_labels_and_bounds() -> None:
    from crm_pulse.metrics import Calendar, parse_time, parse_window_spec
    from crm_pulse.metrics.calendar import parse_window_label

    cal = Calendar("Europe/Berlin")
    t = parse_time("2026-03-05T23:30:00Z")  # 6 March, 00:30 in Berlin
    assert cal.window("day", cal.index_of("day", t)).label == "2026-03-06"
    week = cal.window("week", cal.index_of("week", t))
    assert week.label == "2026-W10"  # Monday 2 March to Sunday 8 March
    assert cal.bounds(week) == (
        parse_time("2026-03-02T00:00:00+01:00"),
        parse_time("2026-03-09T00:00:00+01:00"),
    )
    # ISO years: 1 January 2027 is a Friday of 2026-W53
    assert cal.window("week", cal.index_of("week", parse_time("2027-01-01T12:00:00Z"))).label == (
        "2026-W53"
    )
    assert parse_window_label("2026-W53").index == cal.index_of(
        "week", parse_time("2027-01-01T12:00:00Z")
    )
    assert parse_window_label("2026-03-06").label == "2026-03-06"
    assert parse_window_spec("day").is_calendar and parse_window_spec("week").is_calendar
    # a day across the change to summer time is 23 hours long
    start, end = cal.bounds(parse_window_label("2026-03-29"))
    assert end - start == 23 * 3_600_000
