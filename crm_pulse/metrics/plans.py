"""Phase 1 of the engine, compiled: what one record contributes, and its stage history.

An :class:`ObjectPlan` holds an object's measures as closures (see
:func:`.measures.contributor`), which record fields each depends on (so an update runs only the
measures whose fields changed) and a *gate* that skips measures a record cannot satisfy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .definitions import StaysSpec
from .events import Event, FieldType, ObjectSchema
from .filters import type_constant
from .measures import CompiledMeasure, Contributions, StageVersion, contributor, stays_of

__all__ = ["Contributor", "ObjectPlan", "PlanItem", "history_after"]

Contributor = Callable[[Mapping[str, Any], Contributions], None]

PlanItem = tuple[int, Contributor, StaysSpec | None]
"""(position in the object's measures, contribute closure, stays spec of stage-stay measures)."""


class ObjectPlan:
    """The measures of one object, compiled for the per-event path.

    For each measure: which of the record's fields it depends on (an update that changes none of
    them cannot change its contributions). A *gate*: the field that most measures require to
    equal a constant (``status: won``); a record's value of it selects the measures that can
    accept it at all, so an open deal never runs the filters of the won-deal measures.
    """

    def __init__(
        self,
        measures: list[CompiledMeasure],
        reads: tuple[str, ...],
        stays: StaysSpec | None,
        schema: ObjectSchema | None,
    ) -> None:
        self.reads = reads
        self.stays = stays
        self.measures: list[PlanItem] = [
            (pos, contributor(m), m.definition.stays) for pos, m in enumerate(measures)
        ]
        position = {f: i for i, f in enumerate(reads)}
        self.items: list[tuple[PlanItem, frozenset[int], bool]] = []
        # an event's own field mapping can stand for dict(zip(reads, fields)) only if no
        # measure reads a field outside ``reads`` (stage-stay fields are set per stay)
        self.direct = True
        for m, item in zip(measures, self.measures, strict=True):
            names = set(m.reads).union(*m.groups)
            deps = frozenset(position[f] for f in names if f in position)
            self.items.append((item, deps, m.definition.stays is not None))
            if m.definition.stays is not None:
                names -= {"entered_at", "left_at", m.definition.stays.field}
            if not names <= position.keys():
                self.direct = False
        self.gate_index = -1
        self.gate: dict[Any, frozenset[int]] = {}
        self.gate_default: frozenset[int] = frozenset()
        self._build_gate(measures, position, schema)
        # the same, as lists of the measures to run when all of them are asked for
        self.gate_lists = {
            v: [x for x in self.measures if x[0] in ok] for v, ok in self.gate.items()
        }
        self.gate_default_list = [x for x in self.measures if x[0] in self.gate_default]

    def _build_gate(
        self, measures: list[CompiledMeasure], position: dict[str, int], schema: ObjectSchema | None
    ) -> None:
        admits: dict[str, dict[int, frozenset[Any]]] = {}
        for pos, m in enumerate(measures):
            if m.definition.stays is not None:
                continue  # its stage comes from the history, not the record
            for field, cond in m.definition.where.items():
                allowed = _gate_values(cond, schema.get(field) if schema else None)
                if allowed is not None and field in position:
                    admits.setdefault(field, {})[pos] = allowed
        if not admits:
            return
        field = max(sorted(admits), key=lambda f: len(admits[f]))
        by_measure = admits[field]
        if len(by_measure) < 2:
            return
        self.gate_index = position[field]
        self.gate_default = frozenset(p for p in range(len(measures)) if p not in by_measure)
        for value in set().union(*by_measure.values()):
            self.gate[value] = self.gate_default | {
                p for p, allowed in by_measure.items() if value in allowed
            }

    def contributions(
        self,
        measures: list[PlanItem],
        fields: tuple[Any, ...] | None,
        history: list[StageVersion] | None,
        values: Mapping[str, Any] | None = None,
    ) -> Contributions:
        """What a record with ``fields`` (and stage ``history``) contributes to ``measures``.

        ``values``: the event's fields when ``fields`` were just read from them; measures read
        only fields in ``reads``, so the mapping serves as is, without building another.
        """
        out: Contributions = {}
        if fields is None:
            return out
        if self.gate_index >= 0:
            try:
                if measures is self.measures:
                    measures = self.gate_lists.get(fields[self.gate_index], self.gate_default_list)
                else:
                    allowed = self.gate.get(fields[self.gate_index], self.gate_default)
                    measures = [x for x in measures if x[0] in allowed]
            except TypeError:  # an unhashable value of an untyped field: no gate
                pass
        if not measures:
            return out
        if values is None or not self.direct:
            values = dict(zip(self.reads, fields, strict=True))
        for _pos, contribute, stays in measures:
            if stays is None:
                contribute(values, out)
                continue
            for stage, entered, left in stays_of(history or ()):
                sub = dict(values)
                sub[stays.field] = stage
                sub["entered_at"] = entered
                sub["left_at"] = left
                contribute(sub, out)
        return out


def _gate_values(cond: Any, kind: FieldType | frozenset[str] | None) -> frozenset[Any] | None:
    """The values a ``where`` condition admits when it is a plain equality or list (as
    :mod:`.filters` types them), else None."""
    raw = cond if isinstance(cond, list) else [cond]
    if not raw or not all(isinstance(x, str) and not x.startswith("$") for x in raw):
        return None
    return frozenset(type_constant(x, kind, {}) for x in raw)


def history_after(
    history: list[StageVersion] | None,
    max_delete: int | None,
    event: Event,
    field: str,
    entered: str,
) -> list[StageVersion] | None:
    """The stage history once ``event`` is known: upserts newer than the newest delete, one per
    version (at equal versions the one with the greater canonical JSON, as for the record)."""
    version = event.version
    if event.op == "delete":
        if max_delete is not None and version <= max_delete:
            return history
        if not history:
            return history
        kept = [h for h in history if h[0] > version]
        return kept if len(kept) != len(history) else history
    if max_delete is not None and version <= max_delete:
        return history
    items = history or []
    values = event.values
    tie = event.canonical
    entry = (version, values.get(field), values.get(entered), tie)
    for i, h in enumerate(items):
        if h[0] == version:  # equal versions: the greater canonical JSON wins
            if len(h) > 3 and h[3] >= tie:
                return history
            return [*items[:i], entry, *items[i + 1 :]]
    new = [*items, entry]
    if items and items[-1][0] > version:
        new.sort(key=lambda h: h[0])
    return new
