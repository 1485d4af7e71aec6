"""The catalog: definitions (built-in ``catalog.yaml`` plus the user's) compiled and checked.

``build_catalog`` reports every problem at once, each with its path in the definitions
(``metrics.win_rate.value: unknown name 'deals_wonn'``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError, ConfigProblem
from .calendar import Calendar, WindowSpec
from .definitions import Definitions, MeasureDef, MetricDef, StaysSpec
from .events import BUILTIN_OBJECTS, ID_FIELD, SOURCE_FIELD, ObjectSchema
from .expressions import Expression, parse_expression
from .measures import CompiledMeasure, compile_measure

__all__ = [
    "Catalog",
    "CompiledMetric",
    "build_catalog",
    "builtin_definitions",
    "definitions_from_mapping",
    "problems_from_validation",
]

STAY_FIELDS = frozenset({"entered_at", "left_at"})


@dataclass
class CompiledMetric:
    name: str
    definition: MetricDef
    expression: Expression
    measures: tuple[CompiledMeasure, ...]
    groups: tuple[tuple[str, ...], ...]

    @property
    def is_current(self) -> bool:
        return any(m.is_snapshot for m in self.measures)

    @property
    def category(self) -> str:
        return self.definition.category

    def supports(self, spec: WindowSpec) -> bool:
        if spec.kind == "rolling" and self.definition.windows == "calendar":
            return False
        return all(m.supports(spec) for m in self.measures)


@dataclass
class Catalog:
    """Compiled definitions for one deployment (time zone, parameters, schemas)."""

    definitions: Definitions
    calendar: Calendar
    params: dict[str, Fraction]
    measures: list[CompiledMeasure]
    metrics: dict[str, CompiledMetric]
    schemas: dict[str, ObjectSchema]
    by_object: dict[str, list[CompiledMeasure]] = field(default_factory=dict)
    reads: dict[str, tuple[str, ...]] = field(default_factory=dict)
    stays: dict[str, StaysSpec] = field(default_factory=dict)
    metrics_by_measure: dict[int, list[CompiledMetric]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for m in (part for head in self.measures for part in head.parts):
            self.by_object.setdefault(m.object, []).append(m)
            if m.definition.stays is not None:
                self.stays[m.object] = m.definition.stays
        for obj, ms in self.by_object.items():
            names: set[str] = set()
            for m in ms:
                names |= m.reads
                for g in m.groups:
                    names |= set(g)
            self.reads[obj] = tuple(sorted(names - STAY_FIELDS))
        for metric in self.metrics.values():
            for m in metric.measures:
                self.metrics_by_measure.setdefault(m.index, []).append(metric)
                if m.among is not None and m.among.index != m.index:  # its members move it too
                    users = self.metrics_by_measure.setdefault(m.among.index, [])
                    if metric not in users:
                        users.append(metric)


@cache
def _builtin_mapping() -> dict[str, Any]:
    text = resources.files("crm_pulse.metrics").joinpath("catalog.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def problems_from_validation(
    exc: ValidationError, prefix: str = "", file: str = ""
) -> list[ConfigProblem]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in (prefix, *err["loc"]) if x != "")
        out.append(ConfigProblem(path=loc, message=err["msg"], file=file))
    return out


def definitions_from_mapping(
    data: Mapping[str, Any], prefix: str = "", file: str = ""
) -> Definitions:
    """Validate a mapping of ``params`` / ``measures`` / ``metrics`` / ``goals``."""
    try:
        return Definitions.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, prefix, file)) from None


def builtin_definitions() -> Definitions:
    """The built-in catalog, as written in ``catalog.yaml``."""
    return definitions_from_mapping(_builtin_mapping(), file="crm_pulse/metrics/catalog.yaml")


def build_catalog(
    definitions: Definitions | None = None,
    *,
    timezone: str = "UTC",
    fiscal_year_start: int = 1,
    schemas: Mapping[str, ObjectSchema] | None = None,
    file: str = "",
) -> Catalog:
    """Compile ``definitions`` (default: the built-in catalog); raise ConfigError listing every problem."""
    defs = definitions if definitions is not None else builtin_definitions()
    all_schemas: dict[str, ObjectSchema] = {**BUILTIN_OBJECTS, **(schemas or {})}
    problems: list[ConfigProblem] = []

    def problem(path: str, message: str) -> None:
        problems.append(ConfigProblem(path=path, message=message, file=file))

    try:
        calendar = Calendar(timezone)
    except ValueError as exc:
        problem("timezone", str(exc))
        calendar = Calendar("UTC")
    if fiscal_year_start != 1:
        try:
            calendar = Calendar(calendar.timezone, fiscal_year_start)
        except ValueError as exc:
            problem("fiscal_year_start", str(exc))

    params = {k: Fraction(str(v)) for k, v in defs.params.items()}
    # which measures each metric reads, and the groups each measure needs
    needed: dict[str, list[tuple[str, ...]]] = {}
    expressions: dict[str, Expression] = {}
    for name, metric in defs.metrics.items():
        try:
            expr = parse_expression(metric.value)
        except ValueError as exc:
            problem(f"metrics.{name}.value", str(exc))
            continue
        unknown = sorted(n for n in expr.names if n not in defs.measures and n not in params)
        if unknown:
            problem(
                f"metrics.{name}.value",
                f"unknown name {', '.join(repr(u) for u in unknown)}: not a measure or a parameter",
            )
            continue
        expressions[name] = expr
        for n in expr.names:
            if n in defs.measures:
                groups = needed.setdefault(n, [])
                groups.extend(g for g in metric.groups if g not in groups)

    # 'among' targets: active measures whose members a distinct measure is narrowed to
    among_targets: set[str] = set()
    for name, mdef in defs.measures.items():
        target = mdef.among
        if target is None or name not in needed:
            continue
        tdef = defs.measures.get(target)
        if tdef is None or tdef.active is None:
            problem(f"measures.{name}.among", f"{target!r} is not an 'active' measure")
            continue
        among_targets.add(target)
        groups = needed.setdefault(target, [])
        groups.extend(g for g in needed[name] if g not in groups)

    compiled: dict[str, CompiledMeasure] = {}
    for name, mdef in defs.measures.items():
        if name not in needed:
            continue
        schema = all_schemas.get(mdef.object)
        try:
            cm = compile_measure(name, len(compiled), mdef, schema, defs.params)
        except ValueError as exc:
            problem(f"measures.{name}", str(exc))
            continue
        cm.groups = needed[name]
        if mdef.active is not None and name in among_targets:
            cm.distinct_key = lambda v: v.get(ID_FIELD)  # each member's id, for 'among'
            cm.reads = cm.reads | {ID_FIELD}
        for i, leg in enumerate(mdef.also):
            for obj in leg.objects:
                ldef = MeasureDef(
                    object=obj,
                    where=leg.where,
                    at=leg.at,
                    distinct=leg.distinct,
                    at_least=mdef.at_least,
                    among=mdef.among,
                )
                try:
                    part = compile_measure(name, cm.index, ldef, all_schemas.get(obj), defs.params)
                except ValueError as exc:
                    problem(f"measures.{name}.also[{i}]", str(exc))
                    continue
                part.groups = cm.groups
                cm.legs.append(part)
                _check_fields(part, f"measures.{name}.also[{i}]", all_schemas.get(obj), problem)
        if mdef.also and any(p.window_conds for p in cm.parts):
            problem(
                f"measures.{name}", "a measure with 'also' cannot compare fields with the window"
            )
        _check_fields(cm, f"measures.{name}", schema, problem)
        compiled[name] = cm

    for cm in compiled.values():
        if cm.definition.among is not None and cm.definition.among in compiled:
            for part in cm.parts:
                part.among = compiled[cm.definition.among]

    metrics: dict[str, CompiledMetric] = {}
    for name, expr in expressions.items():
        mdef_ = defs.metrics[name]
        ms = tuple(compiled[n] for n in sorted(expr.names) if n in compiled)
        if len(ms) != len([n for n in expr.names if n in defs.measures]):
            continue  # a measure failed to compile; already reported
        if not ms:
            problem(f"metrics.{name}.value", "reads no measure")
            continue
        kinds = {m.is_snapshot for m in ms}
        if len(kinds) > 1:
            problem(
                f"metrics.{name}.value",
                "mixes snapshot measures (no 'at') with windowed ones; a metric is one or the other",
            )
            continue
        metrics[name] = CompiledMetric(name, mdef_, expr, ms, mdef_.groups)

    for i, goal in enumerate(defs.goals):
        if goal.metric not in defs.metrics:
            problem(f"goals[{i}].metric", f"unknown metric {goal.metric!r}")

    if problems:
        raise ConfigError(problems)
    return Catalog(
        definitions=defs,
        calendar=calendar,
        params=params,
        measures=list(compiled.values()),
        metrics=metrics,
        schemas=all_schemas,
    )


def _check_fields(
    cm: CompiledMeasure,
    path: str,
    schema: ObjectSchema | None,
    problem: Callable[[str, str], None],
) -> None:
    """Every field a compiled measure (or ``also:`` leg) reads exists on its object."""
    if schema is None:
        return
    mdef = cm.definition
    allowed = set(schema) | {SOURCE_FIELD, ID_FIELD} | (STAY_FIELDS if mdef.stays else set())
    for f in sorted(cm.reads | {f for g in cm.groups for f in g}):
        if f not in allowed:
            problem(
                path,
                f"object {mdef.object!r} has no field {f!r} (fields: {', '.join(sorted(allowed))})",
            )
