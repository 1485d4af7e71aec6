"""Write-back rules as the planner holds them: each rule compiled against the catalog, the
record a group's value goes to, and the field write (and number) it becomes.

A rule names a metric, a window (``month``, ``quarter``, ``year``, ``rolling:Nd`` or
``current``), which one (the window holding *now*, or the previous complete one) and a group
(``{}`` for one company-wide value, or one group field such as ``owner_id``). The target record
is the rule's fixed ``record`` (company-wide) or the group's value (the account, the rep), mapped
through ``target.records`` when given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from ...config.models import WritebackRule
from ...connectors.protocols import FieldWrite
from ...errors import ConfigError, ConfigProblem
from ...metrics.calendar import Window
from ...metrics.catalog import Catalog, CompiledMetric
from ...metrics.engine import Engine
from ...metrics.measures import Group

__all__ = [
    "Rule",
    "RuleValue",
    "compile_rules",
    "field_value",
    "groups_of",
    "record_of",
    "rule_id",
    "write_of",
]


def field_value(value: Fraction | None) -> float | int | None:
    """The number written to a CRM field: an int when whole, else a float rounded to 6 places."""
    if value is None:
        return None
    if value.denominator == 1:
        return int(value.numerator)
    return round(float(value), 6)


@dataclass(frozen=True)
class RuleValue:
    """One rule's value for one group, and the record and window it is written for."""

    index: int
    rule: WritebackRule
    group: Group
    record: str
    window: Window
    value: float | int | None


@dataclass(frozen=True)
class Rule:
    """A write-back rule compiled: its place in the deployment's ``writeback``, its metric and
    its group fields."""

    index: int
    rule: WritebackRule
    metric: CompiledMetric
    fields: tuple[str, ...]


def compile_rules(rules: Sequence[WritebackRule], catalog: Catalog) -> list[Rule]:
    """Each rule against the catalog; every problem at once (:class:`ConfigError`)."""
    problems: list[ConfigProblem] = []
    out: list[Rule] = []
    for i, rule in enumerate(rules):
        metric = catalog.metrics.get(rule.metric)
        if metric is None:
            problems.append(
                ConfigProblem(f"writeback[{i}].metric", f"no metric named {rule.metric!r}")
            )
            continue
        if rule.target.match is not None:
            problems.append(
                ConfigProblem(
                    f"writeback[{i}].target.match",
                    "writing one value to every matching record is not supported by this "
                    "version; write to the group's own record (leave match out) or map "
                    "each group to a record with target.records",
                )
            )
            continue
        out.append(Rule(i, rule, metric, tuple(rule.group)))
    if problems:
        raise ConfigError(problems)
    return out


def record_of(r: Rule, group: Group) -> str | None:
    """The record a group's value goes to (None: this group is not written)."""
    target = r.rule.target
    if not r.fields:
        return target.record
    key = group[1]
    if key in (None, ""):
        return None  # no record to write to (a deal without an owner, say)
    if target.records is not None:
        return target.records.get(str(key))
    return str(key)


def write_of(r: Rule, group: Group, value: Fraction | None) -> FieldWrite | None:
    """The field write of a group's value (None: not written, see ``on_null``)."""
    record = record_of(r, group)
    if record is None:
        return None
    if value is None and r.rule.on_null == "keep":
        return None
    t = r.rule.target
    return FieldWrite(t.connector, t.object, record, t.field, field_value(value))


def groups_of(engine: Engine, r: Rule) -> list[Group]:
    """Every group of a rule that has data (one company-wide group for ``group: {}``)."""
    if not r.fields:
        return [()]
    groups: set[Group] = set()
    for m in r.metric.measures:
        groups.update(engine.groups_with_data(m, r.fields))
    return sorted((g for g in groups if g[1] not in (None, "")), key=lambda g: str(g[1]))


def rule_id(r: Rule) -> str:
    """A rule's identity across restarts: its whole definition (an edited rule is a new one)."""
    return r.rule.model_dump_json()
