"""The engine's shared part: its configuration, state access and bucket placement codes.

State entries (all in one :class:`~..state.StateStore`)::

    ("r", source, object, id)        -> [version, fields tuple | None, max delete version,
                                         stage history, canonical JSON of the applied upsert,
                                         last change register (see :mod:`..modifier`)]
    ("b", measure, group, window)    -> [value, contributions]        window = (kind, index)
                                        counts and sums: months only, quarters and years are
                                        read as sums of months; distinct values, window
                                        conditions and periods: every stored kind
    ("c", measure, group, window, v) -> contributions of distinct value v
    ("d", measure, group, day)       -> [value, contributions]        per UTC day, rolling windows
    ("dh", measure, group, hour)     -> {time: value}                 exact times within the hour
    ("dm", measure, group, day)      -> {time: value}                 the same per day: written by
                                        earlier versions, read and retracted from, never added to
    ("am", measure, group)           -> {month: [starts, ends]}       ``active`` intervals
    ("at", measure, group, month)    -> {time: [starts, ends]}        exact times within the month
    ("o", metric, group, window)     -> last value reported by :meth:`Engine.changes`

Two phases (see :mod:`..deltas`): :meth:`Engine.deltas` touches only ``"r"`` entries and returns
the record's contribution deltas; :meth:`Engine.apply_deltas` touches only bucket entries (and
:meth:`Engine.changes` the ``"o"`` entries). :meth:`Engine.apply` does both. A distributed
runtime keys phase 1 by record and phase 2 by :attr:`..deltas.Delta.group`.

Calendar kinds are stored for the report windows and for the windows goals are set in.
Storing an entry differently, or giving one another meaning: bump
:data:`..fingerprint.STATE_FORMAT`, so runtimes rebuild (or refuse) states of the older layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..calendar import (
    CALENDAR_KINDS,
    DAY_MS,
    FINE_KINDS,
    WindowSpec,
    parse_window_label,
)
from ..catalog import Catalog
from ..measures import CompiledMeasure, ContributionKey, Group
from ..modifier import positions
from ..pending import PendingLedger
from ..plans import ObjectPlan
from ..state import Key, MemoryStore, StateStore

if TYPE_CHECKING:
    from .indexes import _LiveGroups, _StateIndex


DEFAULT_WINDOWS = (WindowSpec("month"), WindowSpec("quarter"))
_CURRENT_KEY = ("current", 0)
Change = tuple[ContributionKey, int, int]
"""(contribution, weight delta, count delta +1/0/-1): what phase 1 hands to phase 2."""
# how a measure's contributions are placed in buckets (see Engine._apply_delta)
_MONTHLY, _TIMED, _ANCHORED, _SNAPSHOT, _PERIOD, _ACTIVE, _MULTISET = range(7)
_BY_MONTH = (_MONTHLY, _MULTISET)  # kept in month buckets; quarters and years read months
_MONTHS_PER = {"month": 1, "quarter": 3, "year": 12}
HOUR_MS = DAY_MS // 24
"""Exact times of rolling windows are kept per hour (``"dh"`` entries)."""


class EngineCore:
    """What every part of the engine shares: the catalog, the calendar, the store and how
    each measure is placed in buckets (see :mod:`crm_pulse.metrics.engine` for the parts)."""

    def __init__(
        self,
        catalog: Catalog,
        store: StateStore | None = None,
        windows: Sequence[WindowSpec] = DEFAULT_WINDOWS,
        *,
        track_groups: bool = False,
    ) -> None:
        """``track_groups``: keep the groups with data up to date for reads outside reports
        (:meth:`groups_with_data`), for an engine that is the only writer of its store and is
        rebuilt when the store is rolled back (the embedded runtime's consumer); otherwise each
        such read scans the state."""
        self.catalog = catalog
        self._track_groups = track_groups
        self.calendar = catalog.calendar
        self.store: StateStore = store if store is not None else MemoryStore()
        self.specs = tuple(catalog.calendar.spec(s) for s in windows)  # fiscal labels
        self.kinds = tuple(k for k in CALENDAR_KINDS if any(s.kind == k for s in self.specs))
        self.rolling = tuple(s for s in self.specs if s.kind == "rolling")
        # calendar kinds kept in buckets: the reported ones and those goals are set in
        goal_kinds = {parse_window_label(g.window).spec.kind for g in catalog.definitions.goals}
        stored = tuple(k for k in CALENDAR_KINDS if k in self.kinds or k in goal_kinds)
        # month, quarter, year: made of months; day and week: buckets of their own
        self._kind_months = tuple((k, _MONTHS_PER[k]) for k in stored if k in _MONTHS_PER)
        self._fine = tuple(k for k in stored if k in FINE_KINDS)
        self._fine_cache: dict[int, tuple[tuple[str, int], ...]] = {}
        self.measures = {m.index: m for m in catalog.measures}
        # (tag, measure, group, window key) of every bucket touched since the last changes()
        self._dirty: set[tuple[str, int, Group, Any]] = set()
        self._plans = {
            obj: ObjectPlan(
                ms, catalog.reads[obj], catalog.stays.get(obj), catalog.schemas.get(obj)
            )
            for obj, ms in catalog.by_object.items()
        }
        # where each object's plan holds modified_by / modified_at (kept by a register)
        self._changed = {obj: positions(plan.reads) for obj, plan in self._plans.items()}
        self._place = {m.index: _placement_code(m, bool(stored)) for m in catalog.measures}
        self._daily = {
            m.index: bool(self.rolling) and not m.calendar_only for m in catalog.measures
        }
        self._month_of = self.calendar.month_of
        self._month_wkeys: dict[int, tuple[tuple[str, int], ...]] = {}
        self._month_key: dict[int, tuple[str, int]] = {}
        # a MemoryStore hands out live objects: read and write its dict directly, skip put-backs
        self._live = type(self.store) is MemoryStore
        if isinstance(self.store, MemoryStore) and self._live:
            data = self.store.data
            self._get: Callable[[Key], Any] = data.get
            self._put: Callable[[Key, Any], None] = data.__setitem__
        else:
            self._get = self.store.get
            self._put = self.store.put
        self.pending = PendingLedger(self.store)
        self.applied = 0
        self.stale = 0

    _report_index: _StateIndex | None = None
    _live_groups: _LiveGroups | None = None

    def _fine_keys(self, t: int) -> tuple[tuple[str, int], ...]:
        """The (day, index) and (week, index) windows holding ``t``, when they are kept.

        Cached per 15-minute slot of UTC, only for a slot that lies within one day: today's
        offsets are multiples of 15 minutes, but older ones are not (Europe/Amsterdam
        +0:19:32 until 1937, Africa/Monrovia -0:44:30 until 1972, local mean times), so a
        midnight may fall inside a slot; such a slot's times are placed one by one."""
        slot = t // 900_000
        keys = self._fine_cache.get(slot)
        if keys is None:
            day, start, end = self.calendar.day_span(t)
            keys = tuple((k, day if k == "day" else (day - 1) // 7) for k in self._fine)
            if start <= slot * 900_000 and (slot + 1) * 900_000 <= end:
                if len(self._fine_cache) > 100_000:
                    self._fine_cache.clear()
                self._fine_cache[slot] = keys
        return keys

    def _wkeys_of(self, month: int) -> tuple[tuple[str, int], ...]:
        """The (kind, index) calendar windows holding ``month``; cached per month."""
        index = self.calendar.window_index
        wkeys = tuple((kind, index(kind, month)) for kind, _per in self._kind_months)
        self._month_wkeys[month] = wkeys
        return wkeys


def _placement_code(m: CompiledMeasure, calendar: bool) -> int:
    if m.placement in ("timed", "stays"):
        if m.percentile is not None:
            return _MULTISET
        if m.window_conds:
            return _ANCHORED
        # a count or sum in a quarter or year is the sum of its months: keep months only
        return _MONTHLY if calendar and m.distinct_key is None else _TIMED
    if m.placement in ("snapshot", "duplicates"):
        return _SNAPSHOT
    return _PERIOD if m.placement == "period" else _ACTIVE


def _sort_group(group: Group) -> tuple[str, ...]:
    return tuple(str(x) for x in group)
