"""``crm-pulse explain``: which records make a number.

For one metric, window and group at an as-of time: per measure of the metric, each record with
its contribution, and the value they make. The records are final states (from an events file,
or a running deployment's state, see :mod:`crm_pulse.streams.explain`); the contributions come
from the reference evaluator, which the property tests hold equal to the engine, so the value
printed is the value replay prints.

A contribution is in the measure's unit: an amount, hours or days for sums, 1 for counts,
``active`` and duplicate records, the record's value for ``distinct`` and percentile measures
(which do not add up: the median is the middle one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TextIO

from .calendar import CURRENT, Window, WindowSpec
from .catalog import Catalog, CompiledMetric
from .events import Event
from .measures import Group
from .reference import RecordState, Reference
from .report import evaluate, group_dict, json_number

__all__ = [
    "Contribution",
    "Explanation",
    "explain",
    "parse_group",
    "question",
    "write_explanation",
]

_ROLLING = re.compile(r"^(?:rolling:|last_)([1-9][0-9]{0,4})d$")


@dataclass(frozen=True)
class Contribution:
    measure: str
    record: str
    contribution: Any

    def to_json(self) -> dict[str, Any]:
        value = self.contribution
        if isinstance(value, Fraction):
            value = json_number(value)
        return {"measure": self.measure, "record": self.record, "contribution": value}


@dataclass
class Explanation:
    metric: str
    window: Window
    group: Group
    value: Fraction | None
    measures: dict[str, Fraction | None] = field(default_factory=dict)
    contributions: list[Contribution] = field(default_factory=list)

    def value_row(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "window": self.window.label,
            "group": group_dict(self.group),
            "value": json_number(self.value),
        }


def parse_group(items: Iterable[str]) -> Group:
    """``["owner_id=u1"]`` -> ``("owner_id", "u1")`` (fields sorted, as groups are keyed)."""
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--group: expected FIELD=VALUE, got {_short(item)}")
        pairs[name.strip()] = value.strip()
    return tuple(x for k in sorted(pairs) for x in (k, pairs[k]))


def _window(catalog: Catalog, text: str) -> Window:
    text = text.strip()
    if text == "current":
        return Window(CURRENT)
    match = _ROLLING.match(text)
    if match:
        return Window(WindowSpec("rolling", int(match.group(1))))
    try:
        return catalog.calendar.parse_label(text)
    except ValueError:
        raise ValueError(
            f"--window: expected a label like 2026-03, 2026-Q1, 2026, FY2026-Q1, current or "
            f"last_30d, got {_short(text)}"
        ) from None


def question(
    catalog: Catalog, metric: str, window: str, group: Group
) -> tuple[CompiledMetric, Window]:
    """The metric and window asked about, after checking the question (``ValueError`` saying
    what is wrong): before any record is read."""
    compiled = catalog.metrics.get(metric)
    if compiled is None:
        known = ", ".join(sorted(catalog.metrics))
        raise ValueError(f"--metric: unknown metric {_short(metric)} (metrics: {known})")
    win = _window(catalog, window)
    if not compiled.supports(win.spec) and not (compiled.is_current and win.spec == CURRENT):
        raise ValueError(f"--window: {metric} has no {win.label} window")
    fields = tuple(group[0::2])
    if fields not in compiled.groups:
        shown = ", ".join("{}" if not g else "+".join(g) for g in compiled.groups)
        asked = "+".join(str(f) for f in fields) or "{}"
        asked = asked if len(asked) <= 80 else asked[:77] + "..."
        raise ValueError(f"--group: {metric} is grouped by {shown}, not {asked}")
    return compiled, win


def _short(text: str, limit: int = 80) -> str:
    """``repr`` of a user's text, cut to ``limit`` characters (an error echoes what was asked,
    not a megabyte of it)."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def explain(
    catalog: Catalog,
    records: Iterable[Event] | Iterable[RecordState],
    metric: str,
    window: str,
    group: Group,
    as_of: int,
    *,
    states: bool = False,
) -> Explanation:
    """Explain one value. ``records``: canonical events (reduced to final states here), or with
    ``states=True`` record states already final (all of them, or at least every record whose
    group fields hold ``group``'s values: :meth:`.GroupIndex.candidates`). Raises
    ``ValueError`` with what is wrong."""
    compiled, win = question(catalog, metric, window, group)
    if states:
        ref = Reference.of_states(catalog, records, as_of)  # type: ignore[arg-type]
    else:
        ref = Reference(catalog, records, as_of=as_of)  # type: ignore[arg-type]
    out = Explanation(metric, win, group, evaluate(catalog, ref, compiled, group, win, as_of))
    for m in compiled.measures:
        raw = ref.raw(m, group, win, as_of)
        out.measures[m.name] = None if raw is None else Fraction(raw, m.scale)
        scaled = m.definition.aggregate not in ("distinct",)
        for key, c in sorted(ref.contributions(m, group, win, as_of), key=lambda x: x[0]):
            value = Fraction(c, m.scale) if scaled and isinstance(c, int) else c
            out.contributions.append(Contribution(m.name, "/".join(key), value))
    return out


def write_explanation(explanation: Explanation, fmt: str, out: TextIO) -> None:
    """``jsonl``: one ``{"measure", "record", "contribution"}`` row per contribution, then the
    ``{"metric", "window", "group", "value"}`` row. ``table``: the same for people."""
    if fmt == "jsonl":
        for c in explanation.contributions:
            out.write(json.dumps(c.to_json(), separators=(",", ":")) + "\n")
        out.write(json.dumps(explanation.value_row(), separators=(",", ":")) + "\n")
        return
    row = explanation.value_row()
    group = ", ".join(f"{k}={v}" for k, v in row["group"].items()) or "company-wide"
    out.write(f"{explanation.metric}  {row['window']}  {group}  = {_show(row['value'])}\n")
    by_measure: Mapping[str, list[Contribution]] = {
        name: [c for c in explanation.contributions if c.measure == name]
        for name in explanation.measures
    }
    for name, items in by_measure.items():
        total = json_number(explanation.measures[name])
        out.write(f"\n  {name} = {_show(total)}  ({len(items)} record(s))\n")
        width = max((len(c.record) for c in items), default=0)
        for c in items:
            out.write(f"    {c.record:<{width}}  {_show(c.to_json()['contribution'])}\n")


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
