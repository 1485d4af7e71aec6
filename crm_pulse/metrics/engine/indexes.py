"""Which groups have data: the index a report builds with one scan (:class:`_StateIndex`),
and the one kept up to date for reads outside reports (:class:`_LiveGroups`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from ..calendar import (
    DAY_MS,
)
from ..measures import Group
from ..state import Key, StateStore
from .core import _BY_MONTH

if TYPE_CHECKING:
    from .reads import Reads


_DATA_TAGS = frozenset(("b", "am", "d", "dc"))
"""Entries whose presence makes a group one "with data" (see :meth:`_StateIndex.counts`)."""


class _LiveGroups:
    """Per measure and group fields, each group's data entries (keys of ``_DATA_TAGS``),
    built with one scan and then kept up to date from the buckets the engine marks as
    touched (every bucket change marks its key)."""

    def __init__(self) -> None:
        self._by: dict[tuple[int, tuple[Any, ...]], dict[Group, set[Key]]] = {}

    @classmethod
    def build(cls, store: StateStore) -> _LiveGroups:
        live = cls()
        for key, _value in store.items():
            if key[0] in _DATA_TAGS:
                live._add(key)
        return live

    def groups(self, index: int, fields: tuple[str, ...]) -> dict[Group, set[Key]]:
        return self._by.get((index, fields), {})

    def _add(self, key: Key) -> None:
        group = key[2]
        self._by.setdefault((key[1], tuple(group[0::2])), {}).setdefault(group, set()).add(key)

    def _discard(self, key: Key) -> None:
        group = key[2]
        groups = self._by.get((key[1], tuple(group[0::2])))
        keys = None if groups is None else groups.get(group)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del groups[group]  # type: ignore[union-attr]

    def update(self, store: StateStore, touched: Iterable[tuple[str, int, Group, Any]]) -> None:
        for tag, index, group, wkey in touched:
            if tag == "b":
                keys: tuple[Key, ...] = (("b", index, group, wkey),)
            elif tag == "d":
                keys = (("d", index, group, wkey[1]), ("dc", index, group, wkey[1]))
            elif tag == "a":
                keys = (("am", index, group),)
            else:
                continue
            for key in keys:
                if store.get(key) is None:
                    self._discard(key)
                else:
                    self._add(key)


class _StateIndex:
    """Which groups have data and the earliest window per kind: built once per report."""

    def __init__(self) -> None:
        self.groups: dict[int, set[Group]] = {}
        self.first: dict[tuple[int, Group, str], int] = {}

    def _first(self, key: tuple[int, Group, str], idx: int) -> None:
        current = self.first.get(key)
        if current is None or idx < current:
            self.first[key] = idx

    @staticmethod
    def counts(engine: Reads, key: Key, value: Any, as_of: int | None) -> bool:
        """Whether a data entry (a tag of ``_DATA_TAGS``) makes its group one with data at
        ``as_of`` (None: every contribution counts): not when all it holds is dated later."""
        tag = key[0]
        if value is None:
            return False
        if tag == "b":
            kind = key[3][0]
            return (
                as_of is None
                or kind == "current"
                or not engine.all_pending(key[1], key[2], key[3], value[1], as_of)
            )
        if tag == "am":
            return True
        day = key[3]
        if as_of is None or day < as_of // DAY_MS:
            return True
        if tag == "d":
            times = [t for ts in engine._day_times(key[1], key[2], day) for t in ts]
        else:
            anchored = bool(engine.measures[key[1]].window_conds)
            times = [slot[0] if anchored else slot for slot, _dv in value]
        return any(t <= as_of for t in times)

    @classmethod
    def build(
        cls, engine: Reads, as_of: int | None, measures: Collection[int] | None = None
    ) -> _StateIndex:
        """``as_of``: data dated after it is no data yet (None: every contribution counts).
        ``measures``: index only these (None: all)."""
        index = cls()
        cal = engine.calendar
        for key, value in engine.store.items():
            tag = key[0]
            if measures is not None and tag != "r" and tag != "o" and key[1] not in measures:
                continue
            if tag not in _DATA_TAGS or not cls.counts(engine, key, value, as_of):
                continue
            mi, group = key[1], key[2]
            index.groups.setdefault(mi, set()).add(group)
            if tag == "b":
                kind, idx = key[3]
                if kind == "current":
                    continue
                if engine._place[mi] in _BY_MONTH and kind == "month":
                    for k, _per in engine._kind_months:
                        index._first((mi, group, k), cal.window_index(k, idx))
                else:
                    index._first((mi, group, kind), idx)
            elif tag == "am":
                starts = [mo for mo, (s, _e) in value.items() if s]
                if starts:
                    first_month = min(starts)
                    for kind in engine.kinds:
                        index._first(
                            (mi, group, kind), cal.index_of(kind, cal.month_start(first_month))
                        )
        return index
