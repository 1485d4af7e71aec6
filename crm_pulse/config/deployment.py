"""The whole deployment file, and what is derived from it.

One YAML file describes a deployment::

    timezone: Europe/Berlin          # IANA name; calendar windows are cut in this zone
    fiscal_year_start: 4             # optional: fiscal quarters and years (FY2026-Q1)
    connectors: [...]                # where events come from and where values are written
    metrics: {...}                   # which metrics, user definitions, quotas, spend, goals
    writeback: [...]                 # metric + window + group -> CRM object, record and field
    runtime: {...}                   # embedded (SQLite) or Faust; addresses, batching

Every model forbids unknown keys, so a misspelled key is an error naming it. Credentials are
:data:`~crm_pulse.config.secrets.Secret` fields, written as ``${ENV}`` references. Durations are
written ``30s``, ``5m``, ``250ms`` and held in seconds. ``crm_pulse.config.loader`` reads the
file and turns every validation error into a problem with its path, file and line;
:meth:`Deployment.check_references` adds the checks that need more than one section
(:mod:`.checks`). :class:`Deployment` also derives the definitions, the catalog, the events made
from quotas and spend, the windows to keep and a summary for ``crm-pulse check``.
"""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
)

from ..errors import ConfigProblem
from ..metrics.calendar import WindowSpec
from ..metrics.catalog import Catalog, build_catalog, builtin_definitions
from ..metrics.definitions import Definitions
from ..metrics.engine import DEFAULT_WINDOWS
from ..metrics.events import Event
from .base import CONFIG_SOURCE, ConfigModel
from .checks import check_references
from .connectors import ConnectorEntry, VendorSettings
from .durations import format_duration
from .metrics import MetricsSection
from .runtime import RuntimeSection
from .writeback import WritebackRule

__all__ = ["CONFIG_SOURCE", "Deployment"]


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name like 'Europe/Berlin')"
        ) from None
    return value


class Deployment(ConfigModel):
    """A whole deployment file. Load it with :func:`crm_pulse.config.load_config`."""

    version: Literal[1] = Field(default=1, description="Version of this file's format.")
    timezone: Annotated[str, AfterValidator(_timezone)] = Field(
        default="UTC", description="IANA time zone in which calendar windows are cut."
    )
    fiscal_year_start: int = Field(
        default=1,
        ge=1,
        le=12,
        description="Month (1-12) in which the fiscal year starts; moves quarter and year "
        "windows (labels FY2026-Q1: a fiscal year is named by the calendar year it ends in).",
    )
    connectors: list[ConnectorEntry] = Field(
        default_factory=list,
        description="Connectors, each keyed by its kind: hubspot, salesforce, pipedrive, events "
        "or a plugin's kind.",
    )
    metrics: MetricsSection = Field(
        default_factory=MetricsSection, description="Metrics, definitions, quotas, spend, goals."
    )
    writeback: list[WritebackRule] = Field(
        default_factory=list, description="Which values are written where."
    )
    runtime: RuntimeSection = Field(default_factory=RuntimeSection, description="How to run.")

    _source_file: str = PrivateAttr(default="")

    @property
    def source_file(self) -> str:
        """The file this deployment was read from ('' when built in code)."""
        return self._source_file

    # ---------------------------------------------------------------- derived views

    def connector(self, name: str) -> ConnectorEntry:
        """The connector named ``name`` (KeyError if none)."""
        for entry in self.connectors:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def definitions(self) -> Definitions:
        """Built-in definitions (metrics filtered by enable/disable) merged with the user's."""
        builtin = builtin_definitions()
        m = self.metrics
        disabled = set(m.disable)
        metrics = {
            name: mdef
            for name, mdef in builtin.metrics.items()
            if (m.enable == "all" or name in m.enable) and name not in disabled
        }
        metrics.update((n, d) for n, d in m.metrics.items() if n not in disabled)
        return Definitions(
            params={**builtin.params, **m.derived_params(), **m.params},
            measures={**builtin.measures, **m.measures},
            metrics=metrics,
            goals=tuple(m.goals),
        )

    def catalog(self) -> Catalog:
        """The compiled catalog of this deployment (time zone, parameters, definitions)."""
        return build_catalog(
            self.definitions(),
            timezone=self.timezone,
            fiscal_year_start=self.fiscal_year_start,
            file=self.source_file,
        )

    def config_events(self, version: int = 1) -> list[Event]:
        """Quotas and spend of the file as canonical events (source ``config``).

        Ids are deterministic (``<owner>:<period>:<start>`` for quotas,
        ``<category>:<period>:<start>`` for spend), so applying the file twice changes nothing.
        A runtime that re-applies an edited file passes a ``version`` greater than the last one
        it applied, so that changed amounts replace the old ones.
        """
        events: list[Event] = []
        for q in self.metrics.quotas:
            events.append(
                Event(
                    source=CONFIG_SOURCE,
                    object="quota",
                    id=q.record_id,
                    op="upsert",
                    version=version,
                    fields={
                        "owner_id": q.owner_id,
                        "period": q.period,
                        "period_start": q.period_start.isoformat(),
                        "amount": format(q.amount, "f"),
                    },
                )
            )
        for s in self.metrics.spend:
            events.append(
                Event(
                    source=CONFIG_SOURCE,
                    object="spend",
                    id=s.record_id,
                    op="upsert",
                    version=version,
                    fields={
                        "category": s.category,
                        "period": s.period,
                        "period_start": s.period_start.isoformat(),
                        "amount": format(s.amount, "f"),
                    },
                )
            )
        return events

    def window_specs(self) -> tuple[WindowSpec, ...]:
        """Windows the runtime maintains: month and quarter, and any a rule or goal needs."""
        specs = list(DEFAULT_WINDOWS)
        extra = [r.window_spec for r in self.writeback if r.window != "current"]
        extra += [WindowSpec(_goal_kind(g.window)) for g in self.metrics.goals]
        for spec in extra:
            if spec not in specs:
                specs.append(spec)
        return tuple(specs)

    def check_references(self) -> list[ConfigProblem]:
        """Problems that need more than one section; empty when the deployment is consistent
        (see :func:`crm_pulse.config.checks.check_references`). ``load_config`` runs this; code
        building a Deployment by hand should too."""
        return check_references(self)

    def summary(self) -> list[str]:
        """A few lines saying what this deployment does (no secrets): for ``crm-pulse check``."""
        lines: list[str] = []
        if self.connectors:
            described = []
            for entry in self.connectors:
                settings = entry.settings
                extra = ""
                if isinstance(settings, VendorSettings):
                    extra = f", poll every {format_duration(settings.poll_interval)}"
                described.append(f"{entry.name} ({entry.kind}{extra})")
            lines.append(f"connectors: {', '.join(described)}")
        else:
            lines.append("connectors: none")
        defs = self.definitions()
        builtin = builtin_definitions().metrics
        user = [n for n in defs.metrics if n in self.metrics.metrics]
        built = [n for n in defs.metrics if n not in self.metrics.metrics and n in builtin]
        m = self.metrics
        lines.append(
            f"metrics: {len(defs.metrics)} enabled ({len(built)} built-in, {len(user)} yours"
            + (f": {', '.join(user)}" if user else "")
            + f"); {len(m.goals)} goals, {len(m.quotas)} quotas, {len(m.spend)} spend entries; "
            f"time zone {self.timezone}"
        )
        if self.writeback:
            per: dict[str, int] = {}
            for rule in self.writeback:
                per[rule.target.connector] = per.get(rule.target.connector, 0) + 1
            counts = ", ".join(f"{name} {n}" for name, n in per.items())
            lines.append(f"write-back: {len(self.writeback)} rules ({counts})")
        else:
            lines.append("write-back: no rules")
        r = self.runtime
        where = f"state {r.state_path}" if r.kind == "embedded" else f"broker {r.faust.broker}"
        lines.append(f"runtime: {r.kind}, {where}, listening on {r.listen}")
        return lines


def _goal_kind(label: str) -> str:
    if "Q" in label:
        return "quarter"
    return "month" if "-" in label else "year"
