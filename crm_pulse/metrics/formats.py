"""Printing metric rows: ``jsonl`` (the replay contract), ``csv`` and an aligned ``table``.

Tables list metrics by category (business performance, customer perception, user adoption,
data quality), then metric, group and window, and show values in their unit (30.0 %, 1,200.50).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import TextIO

from .catalog import Catalog
from .definitions import CATEGORIES
from .report import MetricValue, group_text, json_number

__all__ = ["FORMATS", "format_value", "write_rows"]

FORMATS = ("jsonl", "table", "csv")


def _group_text(row: MetricValue) -> str:
    return group_text(row.group)


def format_value(value: Fraction | None, unit: str) -> str:
    """A value for people: rates as percentages, money with two decimals."""
    if value is None:
        return "-"
    number = float(value)
    if unit == "rate":
        return f"{number * 100:.1f} %"
    if unit == "money":
        return f"{number:,.2f}"
    if unit == "count" and value.denominator == 1:
        return f"{int(value):,}"
    return f"{number:,.2f}"


GOALS = "goals"


def _category(catalog: Catalog, name: str) -> str:
    metric = catalog.metrics.get(name)
    return metric.category if metric is not None else GOALS


def _unit(catalog: Catalog, name: str) -> str:
    metric = catalog.metrics.get(name)
    return metric.definition.unit if metric is not None else "rate"


def _ordered(catalog: Catalog, rows: Sequence[MetricValue]) -> list[MetricValue]:
    order = {name: i for i, name in enumerate(catalog.metrics)}
    cat_rank = {c: i for i, c in enumerate((*CATEGORIES, GOALS))}

    def key(row: MetricValue) -> tuple[int, int, str, str, tuple[str, int, int]]:
        w = row.window
        return (
            cat_rank[_category(catalog, row.metric)],
            order.get(row.metric, len(order)),
            row.metric,
            _group_text(row),
            (w.spec.kind, w.spec.days, w.index),
        )

    return sorted(rows, key=key)


def write_rows(
    catalog: Catalog,
    rows: Iterable[MetricValue],
    fmt: str,
    out: TextIO,
    *,
    presorted: bool = False,
) -> int:
    """Write ``rows`` to ``out`` in ``fmt`` (one of :data:`FORMATS`); returns how many.

    ``jsonl`` writes rows as they come. ``csv`` and ``table`` list them for people (by
    category, metric, group, window): ``presorted`` rows are already in that order
    (``iter_report(..., for_people=True)``), so ``csv`` writes them as they come too; a table
    needs every row for its column widths."""
    if fmt == "jsonl":
        n = 0
        write = out.write
        for row in rows:
            write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
            n += 1
        return n
    ordered: Iterable[MetricValue] = rows if presorted else _ordered(catalog, list(rows))
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["category", "metric", "window", "group", "value"])
        n = 0
        for row in ordered:
            value = json_number(row.value)
            writer.writerow(
                [
                    _category(catalog, row.metric),
                    row.metric,
                    row.window.label,
                    _group_text(row),
                    "" if value is None else value,
                ]
            )
            n += 1
        return n
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")
    rows_list = list(ordered)
    _table(catalog, rows_list, out)
    return len(rows_list)


def _table(catalog: Catalog, rows: Sequence[MetricValue], out: TextIO) -> None:
    table: list[tuple[str, str, str, str]] = []
    category = None
    lines: list[str | tuple[str, str, str, str]] = []
    for row in rows:
        if _category(catalog, row.metric) != category:
            category = _category(catalog, row.metric)
            lines.append(category.upper())
        cells = (
            row.metric,
            row.window.label,
            _group_text(row),
            format_value(row.value, _unit(catalog, row.metric)),
        )
        table.append(cells)
        lines.append(cells)
    if not table:
        out.write("no metric has data\n")
        return
    widths = [max(len(c[i]) for c in table) for i in range(4)]
    header = ("metric", "window", "group", "value")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]

    def fmt_line(cells: tuple[str, str, str, str]) -> str:
        left = "  ".join(c.ljust(w) for c, w in zip(cells[:3], widths[:3], strict=True))
        return f"  {left}  {cells[3].rjust(widths[3])}"

    out.write(fmt_line(header) + "\n")
    for line in lines:
        if isinstance(line, str):
            out.write(f"\n{line}\n")
        else:
            out.write(fmt_line(line) + "\n")
