"""Windows and the calendar that places times in them (metrics-spec section 2).

Calendar windows (``month``, ``quarter``, ``year``) are half-open intervals [start, end) in the
deployment's time zone, numbered by a month index ``year * 12 + month - 1`` (quarters and years
divide it by 3 and 12). Rolling windows ``rolling:Nd`` are the N x 24 hours ending at the as-of
time. Snapshot metrics use the single window ``current``.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CALENDAR_KINDS",
    "CURRENT",
    "DAY_MS",
    "FINE_KINDS",
    "Calendar",
    "Window",
    "WindowSpec",
    "parse_window_label",
    "parse_window_spec",
]

DAY_MS = 86_400_000
CALENDAR_KINDS = ("day", "week", "month", "quarter", "year")
_MONTHS_PER = {"month": 1, "quarter": 3, "year": 12}
FINE_KINDS = ("day", "week")
"""Calendar windows shorter than a month: days, and ISO weeks starting on Monday. Indexes are
the local date's ordinal (``date.toordinal()``) and ``(ordinal - 1) // 7`` (day 1 of year 1 was
a Monday); labels ``2026-03-05`` and ``2026-W10`` (ISO year and week)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_YEAR, _LAST_YEAR = 1900, 2200


@dataclass(frozen=True, order=True)
class WindowSpec:
    """A kind of window: ``month``, ``quarter``, ``year``, ``rolling`` (with ``days``), ``current``.

    ``fiscal``: quarters and years of a fiscal calendar (labels ``FY2026-Q1``, ``FY2026``); it
    changes labels only, so it takes no part in comparisons (one deployment has one calendar).
    """

    kind: str
    days: int = 0
    fiscal: bool = field(default=False, compare=False)

    @property
    def is_calendar(self) -> bool:
        return self.kind in _MONTHS_PER or self.kind in FINE_KINDS

    def __str__(self) -> str:
        return f"rolling:{self.days}d" if self.kind == "rolling" else self.kind


CURRENT = WindowSpec("current")


@dataclass(frozen=True, order=True)
class Window:
    """One window: a calendar window by index, a rolling window, or ``current``."""

    spec: WindowSpec
    index: int = 0

    @property
    def label(self) -> str:
        kind = self.spec.kind
        if kind == "month":
            year, month = divmod(self.index, 12)
            return f"{year:04d}-{month + 1:02d}"
        if kind == "day":
            return date.fromordinal(self.index).isoformat()
        if kind == "week":
            year, week, _ = date.fromordinal(self.index * 7 + 1).isocalendar()
            return f"{year:04d}-W{week:02d}"
        fy = "FY" if self.spec.fiscal else ""
        if kind == "quarter":
            year, quarter = divmod(self.index, 4)
            return f"{fy}{year:04d}-Q{quarter + 1}"
        if kind == "year":
            return f"{fy}{self.index:04d}"
        if kind == "rolling":
            return f"last_{self.spec.days}d"
        return "current"


_ROLLING = re.compile(r"^rolling:([1-9][0-9]{0,4})d$")
_FINE_LABEL = re.compile(r"^(\d{4})-(?:(\d{2})-(\d{2})|W(\d{2}))$")


_LABEL = re.compile(r"^(FY)?(\d{4})(?:-(?:(\d{2})|Q([1-4])))?$")


def parse_window_label(label: str) -> Window:
    """``2026-03`` / ``2026-Q2`` / ``2026`` / ``FY2026-Q2`` / ``FY2026`` -> the :class:`Window`.

    Quarter and year indexes are the same in both spellings: ``FY2026-Q1`` is index
    ``2026 * 4`` like ``2026-Q1``; the deployment's calendar decides which months it holds.
    """
    text = label.strip()
    fine = _FINE_LABEL.match(text)
    if fine:
        year, month, day, week = fine.groups()
        try:
            if week is not None:
                monday = date.fromisocalendar(int(year), int(week), 1)
                return Window(WindowSpec("week"), (monday.toordinal() - 1) // 7)
            return Window(WindowSpec("day"), date(int(year), int(month), int(day)).toordinal())
        except ValueError as exc:
            raise ValueError(f"{label!r}: {exc}") from None
    match = _LABEL.match(text)
    if not match:
        raise ValueError(
            f"expected a window label like 2026-03-05, 2026-W10, 2026-03, 2026-Q2, 2026, "
            f"FY2026-Q2 or FY2026, "
            f"got {label!r}"
        )
    fy, year, month, quarter = match.groups()
    if month is not None:
        if fy:
            raise ValueError(f"{label!r}: months have no fiscal label (write {year}-{month})")
        if not 1 <= int(month) <= 12:
            raise ValueError(f"month {month} in {label!r} is not 01-12")
        return Window(WindowSpec("month"), int(year) * 12 + int(month) - 1)
    if quarter is not None:
        return Window(WindowSpec("quarter", fiscal=bool(fy)), int(year) * 4 + int(quarter) - 1)
    return Window(WindowSpec("year", fiscal=bool(fy)), int(year))


def parse_window_spec(text: str) -> WindowSpec:
    """``month`` | ``quarter`` | ``year`` | ``rolling:Nd`` -> :class:`WindowSpec`."""
    text = text.strip()
    if text in _MONTHS_PER or text in FINE_KINDS:
        return WindowSpec(text)
    match = _ROLLING.match(text)
    if match:
        return WindowSpec("rolling", int(match.group(1)))
    raise ValueError(f"expected day, week, month, quarter, year or rolling:<N>d, got {text!r}")


class Calendar:
    """Places epoch-millisecond times in calendar windows of one time zone.

    Month starts between 1900 and 2200 are computed once and found by bisection, so placing a
    time costs one binary search; times outside that range fall back to a direct conversion.

    ``fiscal_year_start`` (1-12) moves quarters and years: with 4, FY2026 is April 2025 to
    March 2026 (a fiscal year is named by the calendar year in which it ends) and FY2026-Q1 is
    April to June 2025. Months are never moved. Window indexes: month ``year * 12 + month - 1``;
    quarter ``(month index + offset) // 3``; year ``(month index + offset) // 12``, where offset
    is 0 for calendar years and ``13 - fiscal_year_start`` otherwise.
    """

    def __init__(self, timezone: str = "UTC", fiscal_year_start: int = 1) -> None:
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {timezone!r} (use an IANA name like 'Europe/Berlin')"
            ) from None
        if not 1 <= fiscal_year_start <= 12:
            raise ValueError(f"fiscal_year_start is a month 1-12, got {fiscal_year_start!r}")
        self.timezone = timezone
        self.fiscal_year_start = fiscal_year_start
        self.fiscal = fiscal_year_start != 1
        self.offset = 0 if fiscal_year_start == 1 else 13 - fiscal_year_start
        self._base = _FIRST_YEAR * 12
        self._starts = [
            self._local_start(_FIRST_YEAR + i // 12, i % 12 + 1)
            for i in range((_LAST_YEAR - _FIRST_YEAR) * 12 + 1)
        ]
        self._day_starts: dict[int, int] = {}  # local midnights by date ordinal, as needed

    def _local_start(self, year: int, month: int, day: int = 1) -> int:
        return (datetime(year, month, day, tzinfo=self.zone) - _EPOCH) // timedelta(milliseconds=1)

    def month_of(self, t_ms: int) -> int:
        """Month index (``year * 12 + month - 1``) of the month holding ``t_ms``."""
        starts = self._starts
        pos = bisect_right(starts, t_ms)
        if 0 < pos < len(starts):
            return self._base + pos - 1
        local = (_EPOCH + timedelta(milliseconds=t_ms)).astimezone(self.zone)
        return local.year * 12 + local.month - 1

    def month_start(self, month_index: int) -> int:
        offset = month_index - self._base
        if 0 <= offset < len(self._starts):
            return self._starts[offset]
        year, month = divmod(month_index, 12)
        return self._local_start(year, month + 1)

    def index_of(self, kind: str, t_ms: int) -> int:
        """Index of the calendar window of ``kind`` holding ``t_ms``."""
        if kind == "day":
            return self.day_span(t_ms)[0]
        if kind == "week":
            return (self.day_span(t_ms)[0] - 1) // 7
        return self.window_index(kind, self.month_of(t_ms))

    def day_span(self, t_ms: int) -> tuple[int, int, int]:
        """(ordinal, start, end) of the day whose [start, end) holds ``t_ms``.

        Usually the local date of ``t_ms``; not when a clock set back crosses midnight
        (America/St_Johns fell back at 00:01 until 2010): the old day's last hour, shown
        again, lies after the new day began, and days, like months, are intervals.
        """
        day = self.local_date(t_ms).toordinal()
        start, end = self._day_start(day), self._day_start(day + 1)
        while t_ms < start:
            day, end = day - 1, start
            start = self._day_start(day)
        while t_ms >= end:
            day, start = day + 1, end
            end = self._day_start(day + 1)
        return day, start, end

    def _day_start(self, ordinal: int) -> int:
        start = self._day_starts.get(ordinal)
        if start is None:
            if len(self._day_starts) > 100_000:
                self._day_starts.clear()
            d = date.fromordinal(ordinal)
            start = self._day_starts[ordinal] = self._local_start(d.year, d.month, d.day)
        return start

    def window_index(self, kind: str, month_index: int) -> int:
        """Index of the ``kind`` window holding the month ``month_index``."""
        if kind == "month":
            return month_index
        return (month_index + self.offset) // _MONTHS_PER[kind]

    def first_month(self, kind: str, index: int) -> int:
        """Month index of the first month of the ``kind`` window ``index``."""
        if kind == "month":
            return index
        return index * _MONTHS_PER[kind] - self.offset

    def spec(self, spec: WindowSpec) -> WindowSpec:
        """``spec`` labelled for this calendar (fiscal quarters and years)."""
        if self.fiscal and spec.kind in ("quarter", "year") and not spec.fiscal:
            return WindowSpec(spec.kind, spec.days, fiscal=True)
        return spec

    def window(self, kind: str, index: int) -> Window:
        """The calendar window ``index`` of ``kind``, labelled for this calendar."""
        return Window(self.spec(WindowSpec(kind)), index)

    def parse_label(self, label: str) -> Window:
        """:func:`parse_window_label`, labelled for this calendar."""
        window = parse_window_label(label)
        return Window(self.spec(window.spec), window.index)

    def bounds(self, window: Window) -> tuple[int, int]:
        """[start, end) of a calendar window in epoch milliseconds."""
        kind = window.spec.kind
        if kind in FINE_KINDS:
            first = window.index if kind == "day" else window.index * 7 + 1
            days = 1 if kind == "day" else 7
            a, b = date.fromordinal(first), date.fromordinal(first + days)
            return self._local_start(a.year, a.month, a.day), self._local_start(
                b.year, b.month, b.day
            )
        first = self.first_month(kind, window.index)
        return self.month_start(first), self.month_start(first + _MONTHS_PER[kind])

    def window_of_date(self, kind: str, day: date) -> int | None:
        """Index of the ``kind`` window that starts exactly on ``day``, or None if none does."""
        if kind in FINE_KINDS:
            return None  # periods (quotas, spend) are months, quarters and years
        month_index = day.year * 12 + day.month - 1
        index = self.window_index(kind, month_index)
        if day.day != 1 or self.first_month(kind, index) != month_index:
            return None
        return index

    def period_span(self, kind: str, day: date) -> tuple[int, int]:
        """[start, end) in ms of the period of ``kind`` (month, quarter, year) starting on ``day``."""
        start = self._local_start(day.year, day.month, day.day)
        months = day.year * 12 + day.month - 1 + _MONTHS_PER[kind]
        year, month = divmod(months, 12)
        end_day = date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))
        return start, self._local_start(end_day.year, end_day.month, end_day.day)

    def local_date(self, t_ms: int) -> date:
        return (_EPOCH + timedelta(milliseconds=t_ms)).astimezone(self.zone).date()
