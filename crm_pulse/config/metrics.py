"""The ``metrics`` section: which metrics, your definitions, quotas, spend and goals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from ..metrics.definitions import GoalDef, MeasureDef, MetricDef
from .base import ActivityType, ConfigModel, Id, PeriodKind

__all__ = ["DEFAULT_ENGAGEMENT_WEIGHTS", "MetricsSection", "QuotaEntry", "SpendEntry"]


def _check_period_start(kind: str, start: date) -> str | None:
    months = {"month": range(1, 13), "quarter": (1, 4, 7, 10), "year": (1,)}[kind]
    if start.day == 1 and start.month in months:
        return None
    first = {
        "month": "the first day of a month",
        "quarter": "the first day of a quarter (Jan, Apr, Jul or Oct 1)",
        "year": "January 1",
    }[kind]
    return f"a {kind} starts on {first}, got {start.isoformat()}"


class QuotaEntry(ConfigModel):
    """A rep's quota for one calendar period (the same as a ``quota`` event)."""

    owner_id: Id = Field(description="The rep (CRM user / owner id).")
    period: PeriodKind = Field(description="month, quarter or year.")
    period_start: date = Field(description="First day of the period, like 2026-04-01.")
    amount: Decimal = Field(ge=0, description="Quota in the reporting currency.")

    @model_validator(mode="after")
    def _aligned(self) -> QuotaEntry:
        problem = _check_period_start(self.period, self.period_start)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def record_id(self) -> str:
        return f"{self.owner_id}:{self.period}:{self.period_start.isoformat()}"


class SpendEntry(ConfigModel):
    """Money spent on acquiring or retaining customers in one period (a ``spend`` event)."""

    category: Literal["acquisition", "retention"] = Field(description="acquisition or retention.")
    period: PeriodKind = Field(description="month, quarter or year.")
    period_start: date = Field(description="First day of the period, like 2026-01-01.")
    amount: Decimal = Field(ge=0, description="Amount in the reporting currency.")

    @property
    def record_id(self) -> str:
        return f"{self.category}:{self.period}:{self.period_start.isoformat()}"


DEFAULT_ENGAGEMENT_WEIGHTS: dict[ActivityType, float] = {
    "call": 3,
    "meeting": 5,
    "email": 1,
    "task": 0,
    "note": 0,
}


def _metric_name(value: str) -> str:
    if not value.isidentifier() or not value.isascii():
        raise ValueError(f"a metric name is letters, digits and '_', got {value!r}")
    return value


class MetricsSection(ConfigModel):
    """Which metrics to compute, your own definitions, and the data metrics need (quotas, spend).

    ``params``, ``measures``, ``metrics`` and ``goals`` use the definition language of the
    built-in catalog (``crm_pulse/metrics/catalog.yaml``, documented in
    ``crm_pulse/metrics/definitions.py``); a definition with a built-in name replaces it.
    """

    enable: Literal["all"] | list[str] = Field(
        default="all", description="Built-in metrics to compute: 'all' or a list of names."
    )
    disable: list[str] = Field(
        default_factory=list, description="Metrics (built-in or yours) not to compute."
    )
    params: dict[str, float] = Field(
        default_factory=dict, description="Parameters ($name in definitions); override built-ins."
    )
    measures: dict[str, MeasureDef] = Field(
        default_factory=dict, description="Your measures (what to count or sum, and when)."
    )
    metrics: dict[Annotated[str, AfterValidator(_metric_name)], MetricDef] = Field(
        default_factory=dict, description="Your metrics (expressions over measures)."
    )
    goals: list[GoalDef] = Field(
        default_factory=list, description="Targets: metric, window label, group, target."
    )
    quotas: list[QuotaEntry] = Field(
        default_factory=list, description="Rep quotas (as if they came as quota events)."
    )
    spend: list[SpendEntry] = Field(
        default_factory=list, description="Acquisition and retention spend (as spend events)."
    )
    nps_scale: Literal[10, 5] = Field(
        default=10,
        description="NPS answer scale: 10 (0-10: promoters 9-10, detractors 0-6) or 5 "
        "(1-5: promoters 4-5, detractors 1-2).",
    )
    clv_lifespan_years: float = Field(
        default=3.0, gt=0, description="Customer lifespan in years used by clv."
    )
    engagement_weights: dict[ActivityType, float] = Field(
        default_factory=lambda: dict(DEFAULT_ENGAGEMENT_WEIGHTS),
        description="Weight of each activity type in engagement_score; types not listed keep "
        "their default (call 3, meeting 5, email 1, task 0, note 0).",
    )

    @field_validator("enable", mode="before")
    @classmethod
    def _enable(cls, value: Any) -> Any:
        if value == "all" or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return value
        raise ValueError(f"expected 'all' or a list of metric names, got {value!r}")

    @field_validator("goals", mode="before")
    @classmethod
    def _goal_labels(cls, value: Any) -> Any:
        # YAML reads ``window: 2026`` as a number; a window label is text.
        if isinstance(value, list):
            return [
                {**g, "window": str(g["window"])}
                if isinstance(g, dict) and isinstance(g.get("window"), int)
                else g
                for g in value
            ]
        return value

    def derived_params(self) -> dict[str, float]:
        """Built-in parameters set by the options above."""
        promoter, detractor = (9, 6) if self.nps_scale == 10 else (4, 2)
        weights = {**DEFAULT_ENGAGEMENT_WEIGHTS, **self.engagement_weights}
        return {
            "lifespan_years": self.clv_lifespan_years,
            "nps_promoter_min": promoter,
            "nps_detractor_max": detractor,
            **{f"engagement_{kind}": weight for kind, weight in weights.items()},
        }

    def option_of_param(self, param: str) -> str | None:
        """The option above that sets ``param``, if the file sets that option."""
        options = {
            "lifespan_years": "clv_lifespan_years",
            "nps_promoter_min": "nps_scale",
            "nps_detractor_max": "nps_scale",
            **{f"engagement_{k}": "engagement_weights" for k in DEFAULT_ENGAGEMENT_WEIGHTS},
        }
        option = options.get(param)
        if option is None or option not in self.model_fields_set:
            return None
        if option == "engagement_weights" and param[len("engagement_") :] not in (
            self.engagement_weights
        ):
            return None
        return option
