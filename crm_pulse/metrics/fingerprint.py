"""What an engine state was built with: a fingerprint of the definitions as the engine uses them.

An engine's state (:mod:`.engine`) is only meaningful under the catalog it was built with: a
record keeps the tuple of fields its object's measures read, buckets are keyed by measure index,
windows and groups, and the last reported values by metric. A state built under other
definitions (a metric added or edited in the deployment file, a crm-pulse upgrade whose
built-in catalog reads more fields or whose engine stores entries differently) cannot be
updated incrementally: retracting a record's old contribution under new measures is wrong, and
a record whose stored fields are shorter than the new ones crashes the engine.

:func:`fingerprint` is the JSON-able description of everything the state depends on; a runtime
stores it with the state and compares it at start (:func:`changes`). Descriptions, categories
and units are left out: they change no stored entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .calendar import CALENDAR_KINDS, WindowSpec, parse_window_label
from .catalog import Catalog
from .measures import CompiledMeasure

__all__ = ["STATE_FORMAT", "DefinitionChanges", "changes", "digest", "fingerprint"]

STATE_FORMAT = 2
"""The engine's state layout. Bump it whenever :mod:`.engine` (or :mod:`.pending`,
:mod:`.modifier`, :mod:`.plans`) stores an entry differently or gives an entry another
meaning: every runtime then rebuilds (or refuses) a state written by the older layout.
1: before fingerprints; 2: records keep the change register (modified_by / modified_at)."""


def _params_in(value: Any) -> set[str]:
    """``$name`` parameters a filter refers to."""
    if isinstance(value, str):
        return {value[1:]} if value.startswith("$") else set()
    if isinstance(value, Mapping):
        return set().union(*(_params_in(v) for v in value.values()))
    if isinstance(value, (list, tuple)):
        return set().union(*(_params_in(v) for v in value))
    return set()


def _measure(m: CompiledMeasure, params: Mapping[str, float]) -> dict[str, Any]:
    definition = m.definition.model_dump(mode="json", exclude={"description"})
    used = sorted(_params_in(definition))
    return {
        "index": m.index,
        "definition": definition,
        "groups": [list(g) for g in m.groups],
        "params": {p: params.get(p) for p in used},
    }


def _schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in sorted((schema or {}).items()):
        out[name] = sorted(kind) if isinstance(kind, frozenset) else str(kind)
    return out


def fingerprint(catalog: Catalog, windows: Sequence[WindowSpec]) -> dict[str, Any]:
    """Everything an engine state built with ``catalog`` and ``windows`` depends on."""
    defs = catalog.definitions
    cal = catalog.calendar
    specs = {str(cal.spec(s)) for s in windows}
    goal_kinds = {parse_window_label(g.window).spec.kind for g in defs.goals}
    kinds = [k for k in CALENDAR_KINDS if k in goal_kinds or k in specs]
    metrics: dict[str, Any] = {}
    for name, metric in sorted(catalog.metrics.items()):
        used = sorted(n for n in metric.expression.names if n in catalog.params)
        metrics[name] = {
            "value": metric.definition.value,
            "groups": [list(g) for g in metric.groups],
            "windows": metric.definition.windows,
            "params": {p: defs.params.get(p) for p in used},
        }
    return {
        "format": STATE_FORMAT,
        "calendar": {"timezone": cal.timezone, "fiscal_year_start": cal.fiscal_year_start},
        "windows": sorted(specs | set(kinds)),
        "objects": {
            obj: {
                "reads": list(catalog.reads.get(obj, ())),
                "stays": None if obj not in catalog.stays else catalog.stays[obj].model_dump(),
                "schema": _schema(catalog.schemas.get(obj)),
            }
            for obj in sorted(catalog.by_object)
        },
        "measures": {m.name: _measure(m, defs.params) for m in catalog.measures},
        "metrics": metrics,
    }


def digest(fp: Mapping[str, Any]) -> str:
    """A short, stable digest of a fingerprint (for logs and markers)."""
    text = json.dumps(fp, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class DefinitionChanges:
    """What differs between the definitions a state was built with and the current ones."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unknown: bool = False
    """The state has no fingerprint (written before fingerprints were kept)."""

    def __bool__(self) -> bool:
        return self.unknown or bool(self.added or self.removed or self.changed)

    def __str__(self) -> str:
        if self.unknown:
            return "the state does not say which definitions it was built with (an older crm-pulse)"
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
            )
            if names
        ]
        return "; ".join(parts)


def _named(
    out: DefinitionChanges, kind: str, old: Mapping[str, Any], new: Mapping[str, Any]
) -> None:
    out.added += [f"{kind} {n}" for n in sorted(set(new) - set(old))]
    out.removed += [f"{kind} {n}" for n in sorted(set(old) - set(new))]
    out.changed += [f"{kind} {n}" for n in sorted(set(old) & set(new)) if old[n] != new[n]]


def _diff_list(old: Iterable[Any], new: Iterable[Any]) -> str:
    before, after = list(old), list(new)
    plus = [f"+{x}" for x in after if x not in before]
    minus = [f"-{x}" for x in before if x not in after]
    return " ".join(plus + minus)


def _unplaced(measures: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: {k: v for k, v in m.items() if k != "index"} if isinstance(m, Mapping) else m
        for name, m in measures.items()
    }


def changes(stored: Mapping[str, Any] | None, current: Mapping[str, Any]) -> DefinitionChanges:
    """What changed from ``stored`` (None: not recorded) to ``current``; falsy when nothing."""
    out = DefinitionChanges()
    if stored is None:
        out.unknown = True
        return out
    if stored.get("format") != current["format"]:
        out.changed.append(
            f"engine state format ({stored.get('format')} -> {current['format']}: "
            "a crm-pulse upgrade)"
        )
    old_cal, new_cal = stored.get("calendar") or {}, current["calendar"]
    for key, label in (("timezone", "time zone"), ("fiscal_year_start", "fiscal year start")):
        if old_cal.get(key) != new_cal[key]:
            out.changed.append(f"{label} ({old_cal.get(key)} -> {new_cal[key]})")
    if stored.get("windows") != current["windows"]:
        out.changed.append(
            f"windows ({_diff_list(stored.get('windows') or [], current['windows'])})"
        )
    old_objects = stored.get("objects") or {}
    for obj, now in current["objects"].items():
        was = old_objects.get(obj)
        if was is None or was == now:
            continue
        if was.get("reads") != now["reads"]:
            out.changed.append(
                f"fields read of {obj} ({_diff_list(was.get('reads', []), now['reads'])})"
            )
        if was.get("stays") != now["stays"] or was.get("schema") != now["schema"]:
            out.changed.append(f"schema of {obj}")
    # a measure that only moved (another one became used before it) is not named: the
    # catch-all below still says the definitions changed if nothing else is named
    _named(out, "measure", _unplaced(stored.get("measures") or {}), _unplaced(current["measures"]))
    _named(out, "metric", stored.get("metrics") or {}, current["metrics"])
    if not out and stored.get("measures") != current["measures"]:
        out.changed.append("the order of the measures kept")
    if not out and stored != current:  # anything else: say so rather than miss it
        out.changed.append("the engine's definitions")
    return out
