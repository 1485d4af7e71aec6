"""Which records make a group: ``(object, field, value)`` -> the keys of the records holding it.

``crm-pulse explain`` and the status page's drill-down answer "which records make this value"
for one metric, window and group. Without an index that means turning every record of the
state into a record state and letting the reference evaluator look at each; with this one it
reads only the records whose group fields hold the group's values (:meth:`GroupIndex.candidates`),
so an explanation costs the group's records, not the records held.

The index is a superset by design: what it returns is still filtered by the reference
evaluator (``Reference``), which is what makes the answer identical to a scan. So it may leave a
field out (then every record of the object is a candidate for that field): the stage field of
an object with stage stays is left out, because a stay's stage comes from the record's history,
not its current value (and an early stage's group is most records anyway); the company-wide
group has no field, so its candidates are every live record of the object.

A store keeps the index up to date by calling :meth:`GroupIndex.move` with a record's state
before and after each change (``("r", source, object, id)`` entries, see :mod:`.engine`). Each
change is also remembered as rows added and removed (:meth:`GroupIndex.take_changes`) so a store
that persists the index writes only what moved. Terms persist as 63-bit hashes
(:func:`term_hash`): a collision only adds candidates, which the evaluator filters out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

from .catalog import Catalog, CompiledMetric
from .measures import CompiledMeasure, Group
from .state import Key

__all__ = ["GroupIndex", "Term", "metric_objects", "term_hash"]

Term = tuple[str, str, Any]
"""(object, field, value)."""

INDEX_VERSION = 1
"""Bump when the terms a record gives, or their hashes, change (a persisted index is rebuilt)."""


def term_hash(term: Term) -> int:
    """A stable signed 64-bit hash of a term (for an INTEGER column)."""
    text = repr(term).encode("utf-8", "backslashreplace")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)


def metric_objects(metric: CompiledMetric) -> list[str]:
    """The objects whose records an explanation of ``metric`` reads (its measures, their
    ``also:`` legs and the measures their ``among`` names), in a stable order."""
    seen: dict[str, None] = {}

    def visit(m: CompiledMeasure) -> None:
        for part in m.parts:
            seen.setdefault(part.object, None)
        if m.among is not None and m.among is not m:
            visit(m.among)

    for m in metric.measures:
        visit(m)
    return list(seen)


class GroupIndex:
    """In memory: each term's record keys, and every live record of each object."""

    def __init__(self, catalog: Catalog) -> None:
        group_fields = {f for metric in catalog.metrics.values() for g in metric.groups for f in g}
        for m in catalog.measures:
            for part in m.parts:
                for g in part.groups:
                    group_fields.update(g)
        self.reads = dict(catalog.reads)
        self.fields: dict[str, tuple[tuple[str, int | None], ...]] = {}
        """Per object, the indexed fields and their position in the record's fields (None:
        the key's source, as :func:`crm_pulse.streams.explain.record_states` reads it)."""
        for obj, reads in catalog.reads.items():
            stays = catalog.stays.get(obj)
            skip = stays.field if stays is not None else None
            where = {name: i for i, name in enumerate(reads)}
            fields: list[tuple[str, int | None]] = []
            for name in sorted(group_fields):
                if name == skip:
                    continue
                if name in where:
                    fields.append((name, where[name]))
                elif name == "source":
                    fields.append((name, None))
            self.fields[obj] = tuple(fields)
        self._names = {obj: tuple(n for n, _at in f) for obj, f in self.fields.items()}
        self._at = {obj: tuple(at for _n, at in f) for obj, f in self.fields.items()}
        self.signature = repr(
            (INDEX_VERSION, sorted((obj, self.reads[obj], f) for obj, f in self.fields.items()))
        )
        """What the terms depend on: a persisted index built under another one is rebuilt."""
        self.by_term: dict[Term, set[Key]] = {}
        self.by_object: dict[str, set[Key]] = {}
        self._ops: dict[tuple[Term, Key], bool] = {}
        """Rows added (True) or removed (False) since :meth:`take_changes`: the last change of
        a row is its state now, however often it moved in between."""
        self._hashes: dict[Term, int] = {}
        """:func:`term_hash` of the terms in :attr:`by_term` (many records share each)."""

    # ------------------------------------------------------------------ terms of a record

    def _values(self, key: Key, state: Any) -> tuple[Any, ...] | None:
        """The indexed fields' values of a live record state (None: not one; see
        :meth:`terms`)."""
        if state is None:
            return None
        values = state[1]
        obj = key[2]
        if values is None or len(values) != len(self.reads[obj]):
            return None
        return tuple([key[1] if at is None else values[at] for at in self._at[obj]])

    def _terms(self, obj: str, values: tuple[Any, ...] | None) -> list[Term]:
        if values is None:
            return []
        return [(obj, n, v) for n, v in zip(self._names[obj], values, strict=True) if v is not None]

    def terms(self, key: Key, state: Any) -> tuple[Term, ...] | None:
        """The terms of a record state; None when it is not a live record of an object the
        catalog reads with its current fields (deleted, other definitions, not a record)."""
        if key[0] != "r" or key[2] not in self.fields:
            return None
        values = self._values(key, state)
        return None if values is None else tuple(self._terms(key[2], values))

    # ------------------------------------------------------------------ upkeep

    def clear(self) -> None:
        self.by_term.clear()
        self.by_object.clear()
        self._ops.clear()
        self._hashes.clear()

    def build(self, items: Iterable[tuple[Key, Any]]) -> None:
        """Index every record of ``items`` (a loaded state), from empty; not remembered as
        changes (a persisted index is checked or rewritten as a whole, see the store)."""
        self.clear()
        by_term, by_object = self.by_term, self.by_object
        for key, state in items:
            if key[0] != "r":
                continue
            terms = self.terms(key, state)
            if terms is None:
                continue
            by_object.setdefault(key[2], set()).add(key)
            for term in terms:
                by_term.setdefault(term, set()).add(key)

    def move(self, key: Key, old: Any, new: Any) -> None:
        """A record's state went from ``old`` to ``new`` (None: absent); on the store's path
        for every record change, so the common case (no indexed value moved) is a tuple
        comparison."""
        obj = key[2]
        if obj not in self.fields:
            return
        before = self._values(key, old)
        after = self._values(key, new)
        if before == after:
            return
        if before is None:
            self.by_object.setdefault(obj, set()).add(key)
        elif after is None:
            live = self.by_object.get(obj)
            if live is not None:
                live.discard(key)
        gone = self._terms(obj, before)
        came = self._terms(obj, after)
        by_term, ops = self.by_term, self._ops
        for term in gone:
            if term in came:
                continue
            ops[term, key] = False
            keys = by_term.get(term)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del by_term[term]
                    self._hashes.pop(term, None)
        for term in came:
            if term not in gone:
                ops[term, key] = True
                keys = by_term.get(term)
                if keys is None:
                    by_term[term] = {key}
                else:
                    keys.add(key)

    def term_hash(self, term: Term) -> int:
        """:func:`term_hash`, remembered while the term has records."""
        found = self._hashes.get(term)
        if found is None:
            found = term_hash(term)
            if term in self.by_term:
                self._hashes[term] = found
        return found

    def take_changes(self) -> tuple[list[tuple[Term, Key]], list[tuple[Term, Key]]]:
        """(rows added, rows removed) since the last call, and forget them."""
        ops, self._ops = self._ops, {}
        added = [row for row, present in ops.items() if present]
        removed = [row for row, present in ops.items() if not present]
        return added, removed

    def forget_changes(self) -> None:
        """Drop the changes not taken (the whole index is being written)."""
        self._ops.clear()

    def rows(self) -> Iterator[tuple[Term, Key]]:
        """Every (term, record key) row (to write a persisted index from scratch)."""
        for term, keys in self.by_term.items():
            for key in keys:
                yield term, key

    # ------------------------------------------------------------------ reads

    def query(self, obj: str, group: Group) -> list[Term] | None:
        """The terms that select ``group``'s records of ``obj`` (None: the group's fields
        hold no indexed field, so every live record of the object is a candidate)."""
        indexed = {name for name, _at in self.fields.get(obj, ())}
        terms = [
            (obj, name, value)
            for name, value in zip(group[0::2], group[1::2], strict=True)
            if name in indexed
        ]
        return terms or None

    def candidates(self, metric: CompiledMetric, group: Group) -> list[Key]:
        """Keys of the records that can count for ``metric`` in ``group`` (a superset the
        evaluator filters), sorted; costs the group's records, not the state's."""
        out: list[Key] = []
        for obj in metric_objects(metric):
            terms = self.query(obj, group)
            if terms is None:
                found: set[Key] = set(self.by_object.get(obj, ()))
            else:
                sets = sorted((self.by_term.get(t, set()) for t in terms), key=len)
                found = set(sets[0]).intersection(*sets[1:])
            out.extend(found)
        out.sort(key=_sortable)
        return out


def _sortable(key: Key) -> tuple[str, ...]:
    return tuple(str(x) for x in key)
