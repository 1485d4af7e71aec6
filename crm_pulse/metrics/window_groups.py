"""Which groups have data in a span of calendar windows: what a calendar rollover evaluates.

When a rule's calendar window rolls over (a new month, quarter, day), its value moves for the
groups that have data in the window it leaves or the one it enters; for every other group both
values are those of a window without data (0, or none for a ratio or a median), so the field
already holds it. :class:`WindowGroups` keeps, per measure, group fields and window key, the
groups with a bucket there (``"b"`` entries), and per month the groups with an ``active``
interval's start or end in it (``"at"`` entries: a count of intervals holding a point changes
only when the point passes one). :func:`window_keys` names the keys a rollover reads, so a
rollover costs the groups with data in those windows, never every group or record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .calendar import FINE_KINDS, Calendar, Window
from .measures import CompiledMeasure, Group
from .state import Key

__all__ = ["WindowGroups", "window_keys"]

_MONTHS_PER = {"month": 1, "quarter": 3, "year": 12}


class WindowGroups:
    """(measure, group fields, window key) -> the groups with an entry there."""

    def __init__(self) -> None:
        self._by: dict[tuple[int, tuple[Any, ...], Any], set[Group]] = {}

    @staticmethod
    def slot(key: Key) -> tuple[int, tuple[Any, ...], Any] | None:
        """Where a state key is indexed (None: not a key this index keeps)."""
        tag = key[0]
        if tag == "b":
            wkey = key[3]
            if wkey[0] == "current":
                return None
        elif tag == "at":
            wkey = ("active", key[3])
        else:
            return None
        return key[1], tuple(key[2][0::2]), wkey

    def add(self, key: Key) -> None:
        where = self.slot(key)
        if where is not None:
            self._by.setdefault(where, set()).add(key[2])

    def discard(self, key: Key) -> None:
        where = self.slot(key)
        if where is None:
            return
        groups = self._by.get(where)
        if groups is not None:
            groups.discard(key[2])
            if not groups:
                del self._by[where]

    def groups(self, index: int, fields: tuple[str, ...], wkeys: Iterable[Any]) -> set[Group]:
        out: set[Group] = set()
        for wkey in wkeys:
            found = self._by.get((index, fields, wkey))
            if found:
                out |= found
        return out


def window_keys(
    calendar: Calendar, m: CompiledMeasure, by_month: bool, old: Window, new: Window, as_of: int
) -> list[Any]:
    """The window keys of ``m``'s entries that can make a group's value differ between the
    calendar windows ``old`` and ``new`` (seen at ``as_of``), those between included, and up to
    the window holding ``as_of`` (a rule writing the previous window has not written the groups
    whose data all lies in the current one). ``by_month``: ``m`` keeps month buckets only
    (counts, sums, percentiles)."""
    kind = new.spec.kind
    a, b = sorted((old.index, new.index))
    b = max(b, calendar.index_of(kind, as_of))
    if m.placement == "active":  # read at a point in [start of the first, end of the last]
        start = calendar.bounds(Window(new.spec, a))[0]
        end = calendar.bounds(Window(new.spec, b))[1]
        last = calendar.month_of(max(end - 1, as_of))
        return [("active", mo) for mo in range(calendar.month_of(start), last + 1)]
    if kind in FINE_KINDS or not by_month:
        return [(kind, i) for i in range(a, b + 1)]
    first = calendar.first_month(kind, a)
    last = calendar.first_month(kind, b) + _MONTHS_PER[kind] - 1
    return [("month", mo) for mo in range(first, last + 1)]
