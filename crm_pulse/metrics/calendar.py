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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CALENDAR_KINDS",
    "CURRENT",
    "DAY_MS",
    "Calendar",
    "Window",
    "WindowSpec",
    "parse_window_label",
    "parse_window_spec",
]

DAY_MS = 86_400_000
CALENDAR_KINDS = ("month", "quarter", "year")
_MONTHS_PER = {"month": 1, "quarter": 3, "year": 12}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST_YEAR, _LAST_YEAR = 1900, 2200


@dataclass(frozen=True, order=True)
class WindowSpec:
    """A kind of window: ``month``, ``quarter``, ``year``, ``rolling`` (with ``days``), ``current``."""

    kind: str
    days: int = 0

    @property
    def is_calendar(self) -> bool:
        return self.kind in _MONTHS_PER

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
        if kind == "quarter":
            year, quarter = divmod(self.index, 4)
            return f"{year:04d}-Q{quarter + 1}"
        if kind == "year":
            return f"{self.index:04d}"
        if kind == "rolling":
            return f"last_{self.spec.days}d"
        return "current"


_ROLLING = re.compile(r"^rolling:([1-9][0-9]{0,4})d$")


_LABEL = re.compile(r"^(\d{4})(?:-(?:(\d{2})|Q([1-4])))?$")


def parse_window_label(label: str) -> Window:
    """``2026-03`` / ``2026-Q2`` / ``2026`` -> the calendar :class:`Window` it names."""
    match = _LABEL.match(label.strip())
    if not match:
        raise ValueError(f"expected a window label like 2026-03, 2026-Q2 or 2026, got {label!r}")
    year, month, quarter = match.groups()
    if month is not None:
        if not 1 <= int(month) <= 12:
            raise ValueError(f"month {month} in {label!r} is not 01-12")
        return Window(WindowSpec("month"), int(year) * 12 + int(month) - 1)
    if quarter is not None:
        return Window(WindowSpec("quarter"), int(year) * 4 + int(quarter) - 1)
    return Window(WindowSpec("year"), int(year))


def parse_window_spec(text: str) -> WindowSpec:
    """``month`` | ``quarter`` | ``year`` | ``rolling:Nd`` -> :class:`WindowSpec`."""
    text = text.strip()
    if text in _MONTHS_PER:
        return WindowSpec(text)
    match = _ROLLING.match(text)
    if match:
        return WindowSpec("rolling", int(match.group(1)))
    raise ValueError(f"expected month, quarter, year or rolling:<N>d, got {text!r}")


class Calendar:
    """Places epoch-millisecond times in calendar windows of one time zone.

    Month starts between 1900 and 2200 are computed once and found by bisection, so placing a
    time costs one binary search; times outside that range fall back to a direct conversion.
    """

    def __init__(self, timezone: str = "UTC") -> None:
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {timezone!r} (use an IANA name like 'Europe/Berlin')"
            ) from None
        self.timezone = timezone
        self._base = _FIRST_YEAR * 12
        self._starts = [
            self._local_start(_FIRST_YEAR + i // 12, i % 12 + 1)
            for i in range((_LAST_YEAR - _FIRST_YEAR) * 12 + 1)
        ]

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
        return self.month_of(t_ms) // _MONTHS_PER[kind]

    def bounds(self, window: Window) -> tuple[int, int]:
        """[start, end) of a calendar window in epoch milliseconds."""
        per = _MONTHS_PER[window.spec.kind]
        first = window.index * per
        return self.month_start(first), self.month_start(first + per)

    def window_of_date(self, kind: str, day: date) -> int | None:
        """Index of the ``kind`` window that starts exactly on ``day``, or None if none does."""
        per = _MONTHS_PER[kind]
        month_index = day.year * 12 + day.month - 1
        if day.day != 1 or month_index % per:
            return None
        return month_index // per

    def period_span(self, kind: str, day: date) -> tuple[int, int]:
        """[start, end) in ms of the period of ``kind`` (month, quarter, year) starting on ``day``."""
        start = self._local_start(day.year, day.month, day.day)
        months = day.year * 12 + day.month - 1 + _MONTHS_PER[kind]
        year, month = divmod(months, 12)
        end_day = date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))
        return start, self._local_start(end_day.year, end_day.month, end_day.day)

    def local_date(self, t_ms: int) -> date:
        return (_EPOCH + timedelta(milliseconds=t_ms)).astimezone(self.zone).date()
