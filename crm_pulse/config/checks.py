"""Checks across sections of the deployment file: connector names, metric names, user
definitions compiled with the built-ins, duplicate quotas and spend, goals, and every write-back
rule's connector, metric, window and group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import (
    ValidationError,
)

from ..errors import ConfigError, ConfigProblem
from ..metrics.catalog import Catalog, build_catalog, builtin_definitions, problems_from_validation
from ..metrics.definitions import Definitions, group_of
from ._paths import Path as KeyPath
from ._paths import format_path, parse_path
from .base import CONFIG_SOURCE, did_you_mean
from .metrics import QuotaEntry, SpendEntry

if TYPE_CHECKING:
    from .deployment import Deployment

__all__ = ["check_references"]


def check_references(deployment: Deployment) -> list[ConfigProblem]:
    """Problems that need more than one section; empty when the deployment is consistent.

    Connector names, metric names in enable/disable, user definitions (compiled with the
    built-ins), quota and spend duplicates, goals and every write-back rule's connector,
    metric, window and group. ``load_config`` runs this; code building a Deployment by hand
    should too.
    """
    problems: list[ConfigProblem] = []

    def add(path: KeyPath, message: str) -> None:
        problems.append(ConfigProblem(format_path(path), message, deployment.source_file))

    _check_connectors(deployment, add)
    _check_metric_names(deployment, add)
    _check_data(deployment, add)
    try:
        defs = deployment.definitions()
    except ValidationError as exc:
        problems += problems_from_validation(exc, "metrics", deployment.source_file)
        return problems
    catalog: Catalog | None
    try:
        catalog = build_catalog(
            defs,
            timezone=deployment.timezone,
            fiscal_year_start=deployment.fiscal_year_start,
            file=deployment.source_file,
        )
    except ConfigError as exc:
        catalog = None
        for p in exc.problems:
            path = parse_path(p.path)
            if path and path[0] != "timezone":
                path = ("metrics", *path)
            add(path, _explain(deployment, path, p.message))
        try:  # still check the write-back rules of the built-in metrics
            catalog = build_catalog(
                defs.model_copy(
                    update={
                        "metrics": {
                            n: d
                            for n, d in defs.metrics.items()
                            if n not in deployment.metrics.metrics
                        },
                        "measures": builtin_definitions().measures,
                        "goals": (),
                    }
                ),
                timezone=deployment.timezone,
                fiscal_year_start=deployment.fiscal_year_start,
            )
        except ConfigError:
            catalog = None
    _check_goals(deployment, add, defs)
    _check_writeback(deployment, add, defs, catalog)
    return problems


def _check_connectors(deployment: Deployment, add: Any) -> None:
    seen: dict[str, int] = {}
    for i, entry in enumerate(deployment.connectors):
        name = entry.name
        path: KeyPath = ("connectors", i, entry.kind, "name")
        if name == CONFIG_SOURCE:
            add(path, f"the name {CONFIG_SOURCE!r} is reserved for events made from this file")
        elif name in seen:
            add(
                path,
                f"connector name {name!r} is already used by connectors[{seen[name]}]; "
                "give each connector its own name",
            )
        else:
            seen[name] = i


def _check_metric_names(deployment: Deployment, add: Any) -> None:
    m = deployment.metrics
    builtin = builtin_definitions().metrics
    if m.enable != "all":
        for j, name in enumerate(m.enable):
            if name not in builtin and name not in m.metrics:
                hint = did_you_mean(name, [*builtin, *m.metrics])
                add(("metrics", "enable", j), f"unknown metric {name!r}{hint}")
    for j, name in enumerate(m.disable):
        if name not in builtin and name not in m.metrics:
            hint = did_you_mean(name, [*builtin, *m.metrics])
            add(("metrics", "disable", j), f"unknown metric {name!r}{hint}")
    for param in m.params:
        option = m.option_of_param(param)
        if option is not None:
            add(
                ("metrics", "params", param),
                f"also set by metrics.{option}; set it in one place",
            )


def _check_data(deployment: Deployment, add: Any) -> None:
    lists: list[tuple[str, Sequence[QuotaEntry | SpendEntry]]] = [
        ("quotas", deployment.metrics.quotas),
        ("spend", deployment.metrics.spend),
    ]
    for key, entries in lists:
        seen: dict[str, int] = {}
        for i, entry in enumerate(entries):
            rid = entry.record_id
            if rid in seen:
                add(
                    ("metrics", key, i),
                    f"the same {entry.period} as metrics.{key}[{seen[rid]}] "
                    f"({rid}); give each period once",
                )
            else:
                seen[rid] = i


def _explain(deployment: Deployment, path: KeyPath, message: str) -> str:
    if len(path) == 4 and path[:2] == ("metrics", "goals") and path[3] == "metric":
        name = deployment.metrics.goals[int(path[2])].metric
        if name in builtin_definitions().metrics or name in deployment.metrics.metrics:
            return f"metric {name!r} is disabled (metrics.enable / metrics.disable)"
    return message


def _check_goals(deployment: Deployment, add: Any, defs: Definitions) -> None:
    for i, goal in enumerate(deployment.metrics.goals):
        mdef = defs.metrics.get(goal.metric)
        if mdef is None:
            continue  # reported by build_catalog
        group = group_of(goal.group)
        if group not in mdef.groups:
            add(
                ("metrics", "goals", i, "group"),
                f"{goal.metric} is computed for groups "
                f"{', '.join(_group_text(g) for g in mdef.groups)}; not {_group_text(group)}",
            )


def _check_writeback(
    deployment: Deployment, add: Any, defs: Definitions, catalog: Catalog | None
) -> None:
    entries = {e.name: e for e in deployment.connectors}
    builtin = builtin_definitions().metrics
    targets: dict[tuple[Any, ...], int] = {}
    for i, rule in enumerate(deployment.writeback):
        here: KeyPath = ("writeback", i)
        t = rule.target
        entry = entries.get(t.connector)
        if entry is None:
            hint = did_you_mean(t.connector, list(entries))
            known = ", ".join(entries) or "none"
            add(
                (*here, "target", "connector"),
                f"no connector named {t.connector!r}{hint} (connectors: {known})",
            )
        elif not entry.can_write:
            add(
                (*here, "target", "connector"),
                f"{t.connector!r} is an {entry.kind} ingress: it receives, nothing is "
                "written to it",
            )
        key = (t.connector, t.object, t.field, t.record, repr(t.match))
        if key in targets:
            add(
                (*here, "target"),
                f"writes the same field as writeback[{targets[key]}]; each field holds one value",
            )
        else:
            targets[key] = i
        mdef = defs.metrics.get(rule.metric)
        if mdef is None:
            if rule.metric in builtin or rule.metric in deployment.metrics.metrics:
                message = f"metric {rule.metric!r} is disabled (metrics.enable / metrics.disable)"
            else:
                hint = did_you_mean(rule.metric, list(defs.metrics))
                message = f"unknown metric {rule.metric!r}{hint}"
            add((*here, "metric"), message)
            continue
        if rule.group not in mdef.groups:
            offered = ", ".join(_group_text(g) for g in mdef.groups)
            wanted = _group_text(rule.group)
            add(
                (*here, "group"),
                f"{rule.metric} is computed for groups {offered}; not {wanted}",
            )
        compiled = catalog.metrics.get(rule.metric) if catalog is not None else None
        if compiled is None:
            continue
        spec = rule.window_spec
        if compiled.is_current and spec.kind != "current":
            add(
                (*here, "window"),
                f"{rule.metric} is a snapshot of the present: use window: current",
            )
        elif not compiled.is_current and spec.kind == "current":
            add(
                (*here, "window"),
                f"{rule.metric} is computed per window: use month, quarter, year or rolling:<N>d",
            )
        elif not compiled.is_current and not compiled.supports(spec):
            add(
                (*here, "window"),
                f"{rule.metric} is computed for calendar windows only (month, quarter, year), "
                f"not {spec}",
            )


def _group_text(group: Sequence[str]) -> str:
    if not group:
        return "{}"
    return group[0] if len(group) == 1 else f"[{', '.join(group)}]"
