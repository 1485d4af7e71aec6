"""``where:`` clauses of measures, compiled into predicates over typed record values.

Forms (``field: condition``)::

    status: won                     # equal
    status: [won, lost]             # any of
    converted_at: {set: true}       # is not null (``{set: false}``: is null)
    score: {gte: $nps_promoter_min} # comparison; $name reads a parameter
    customer_since: {lt: window.start}   # compared with the window (calendar windows only)

Constants are typed like the field they are compared with (times, amounts, dates), so
``amount: {gt: 1000}`` compares exact micro-units. A missing field is null; a comparison with
null is false.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .events import FieldType, ObjectSchema, parse_amount, parse_date, parse_time

__all__ = ["WINDOW_REFS", "Predicate", "WindowCondition", "compile_where", "type_constant"]

Predicate = Callable[[Mapping[str, Any]], bool]
WINDOW_REFS = ("window.start", "window.end")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_OPS = {"eq", "ne", "in", "not_in", "set", *_COMPARE}


@dataclass(frozen=True)
class WindowCondition:
    """``field <op> window.start|window.end``, checked per calendar window."""

    field: str
    op: str
    ref: str  # "start" | "end"

    def holds(self, value: Any, start: int, end: int) -> bool:
        if value is None:
            return False
        return _COMPARE[self.op](value, start if self.ref == "start" else end)


def type_constant(
    raw: Any, kind: FieldType | frozenset[str] | None, params: Mapping[str, float]
) -> Any:
    """Type a constant from a definition like the field it is compared with."""
    if isinstance(raw, str) and raw.startswith("$"):
        name = raw[1:]
        if name not in params:
            known = ", ".join(sorted(params)) or "none"
            raise ValueError(f"unknown parameter {raw!r} (known: {known})")
        raw = params[name]
    if raw is None:
        return None
    if kind is FieldType.TIME:
        return parse_time(raw)
    if kind in (FieldType.AMOUNT, FieldType.NUMBER):
        return parse_amount(raw)
    if kind is FieldType.DATE:
        return parse_date(raw)
    if isinstance(kind, frozenset) and raw not in kind:
        raise ValueError(f"{raw!r} can never match: expected one of {', '.join(sorted(kind))}")
    if kind is None and isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return parse_amount(raw)
    return str(raw) if not isinstance(raw, bool) else raw


def _eq(field: str, want: Any) -> Predicate:
    if want is None:
        return lambda v: v.get(field) is None
    return lambda v: v.get(field) == want


def _ne(field: str, want: Any) -> Predicate:
    return lambda v: v.get(field) != want


def _member(field: str, values: frozenset[Any], inside: bool) -> Predicate:
    if inside:
        return lambda v: v.get(field) in values
    return lambda v: v.get(field) not in values


def _compile_one(
    field: str,
    cond: Any,
    kind: FieldType | frozenset[str] | None,
    params: Mapping[str, float],
    window_conds: list[WindowCondition],
) -> list[Predicate]:
    if isinstance(cond, list):
        allowed = frozenset(type_constant(x, kind, params) for x in cond)
        return [lambda v: v.get(field) in allowed]
    if not isinstance(cond, dict):
        return [_eq(field, type_constant(cond, kind, params))]
    preds: list[Predicate] = []
    for op, raw in cond.items():
        if op not in _OPS:
            raise ValueError(f"unknown operator {op!r} (use {', '.join(sorted(_OPS))})")
        if isinstance(raw, str) and raw in WINDOW_REFS:
            if op not in _COMPARE:
                raise ValueError(f"{raw} can only be compared with gt, gte, lt or lte")
            window_conds.append(WindowCondition(field, op, raw.split(".")[1]))
            continue
        if op == "set":
            if not isinstance(raw, bool):
                raise ValueError(f"set takes true or false, got {raw!r}")
            preds.append(
                (lambda v: v.get(field) is not None) if raw else (lambda v: v.get(field) is None)
            )
        elif op == "eq":
            preds.append(_eq(field, type_constant(raw, kind, params)))
        elif op == "ne":
            preds.append(_ne(field, type_constant(raw, kind, params)))
        elif op in ("in", "not_in"):
            if not isinstance(raw, list):
                raise ValueError(f"{op} takes a list, got {raw!r}")
            values = frozenset(type_constant(x, kind, params) for x in raw)
            preds.append(_member(field, values, op == "in"))
        else:
            bound = type_constant(raw, kind, params)
            cmp = _COMPARE[op]

            def compare(
                v: Mapping[str, Any], cmp: Callable[[Any, Any], bool] = cmp, b: Any = bound
            ) -> bool:
                x = v.get(field)
                return x is not None and cmp(x, b)

            preds.append(compare)
    return preds


def compile_where(
    where: Mapping[str, Any], schema: ObjectSchema | None, params: Mapping[str, float]
) -> tuple[Predicate, tuple[WindowCondition, ...]]:
    """Compile a ``where`` clause into one predicate plus the window conditions it holds.

    Raises ``ValueError`` with ``field: reason`` on the first bad condition.
    """
    preds: list[Predicate] = []
    window_conds: list[WindowCondition] = []
    for field, cond in where.items():
        kind = schema.get(field) if schema is not None else None
        try:
            preds.extend(_compile_one(field, cond, kind, params, window_conds))
        except ValueError as exc:
            raise ValueError(f"{field}: {exc}") from None
    if not preds:
        return (lambda v: True), tuple(window_conds)
    if len(preds) == 1:
        return preds[0], tuple(window_conds)
    if len(preds) == 2:  # the common case, without the cost of all() over a generator
        first, second = preds
        return (lambda v: first(v) and second(v)), tuple(window_conds)
    frozen = tuple(preds)
    return (lambda v: all(p(v) for p in frozen)), tuple(window_conds)
