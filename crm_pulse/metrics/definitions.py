"""The metric definition language: measures (what to count or sum, over which records and
when) and metrics (arithmetic over measures, with groups). The built-in catalog
(``catalog.yaml``) and a user's ``metrics:`` section in the deployment file use the same form::

    measures:
      deals_won:   {object: deal, where: {status: won}, at: closed_at}            # count
      won_amount:  {object: deal, where: {status: won}, at: closed_at, sum: amount}
    metrics:
      avg_deal_size:
        value: won_amount / deals_won
        groups: [{}, owner_id]
        category: business performance
        unit: money

A measure has one *placement* that decides which windows a record counts in:

``at: <time field>``
    the window holding that time (calendar or rolling);
no placement
    a snapshot over current records (window ``current``);
``active: {start, end, when: window_start | window_end}``
    the number of records whose interval (start, end] holds the window's start or end
    ("customers at the start of P");
``period: {kind, start, match: exact | within}``
    records that describe a period themselves (quotas, spend);
``stays: {field, entered}`` (with ``at: left_at``)
    one sub-record per stay of the record in a value of ``field`` (stage), from the record's
    versions in version order;
``duplicates: {field, normalize}``
    a snapshot count of records sharing a normalised value with another record.

and one *aggregate*: ``count`` (default), ``sum: <field>`` | ``sum: {duration: [from, to], unit}``
| ``sum: {weights: {field, values, default}}``, ``distinct: <field>`` (narrowed by
``at_least: n`` and ``among: <active measure>``, and widened by ``also:``, more objects' records
whose values it counts too), or the percentiles ``median`` and ``p90`` of a
field or duration. ``where`` filters with
equality, lists (any of), ``null`` and ``{gt, gte, lt, lte, ne, in, not_in, set}``; a value may be
a parameter (``$name``) or, in calendar windows, ``window.start`` / ``window.end``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .calendar import parse_window_label

__all__ = [
    "CATEGORIES",
    "PERCENTILES",
    "ActiveSpec",
    "Definitions",
    "DuplicatesSpec",
    "DurationSum",
    "GoalDef",
    "LegDef",
    "MeasureDef",
    "MetricDef",
    "PeriodSpec",
    "StaysSpec",
    "WeightsSum",
    "group_of",
]

PERCENTILES = {"median": 50, "p90": 90}
"""Percentile aggregates and their rank (linear interpolation between closest ranks)."""

CATEGORIES = ("business performance", "customer perception", "user adoption", "data quality")
Category = Literal["business performance", "customer perception", "user adoption", "data quality"]
Unit = Literal["count", "money", "rate", "score", "hours", "days", "number"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DurationSum(_Strict):
    """Sum of ``to - from`` over the records, in ``unit``."""

    duration: tuple[str, str]
    unit: Literal["ms", "seconds", "minutes", "hours", "days"] = "hours"


class Weights(_Strict):
    field: str
    values: dict[str, float | str]
    default: float | str = 0


class WeightsSum(_Strict):
    """Sum of a weight looked up by the value of ``weights.field``."""

    weights: Weights


class ActiveSpec(_Strict):
    start: str
    end: str | None = None
    when: Literal["window_start", "window_end"]


class PeriodSpec(_Strict):
    kind: str = "period"
    start: str = "period_start"
    match: Literal["exact", "within"]


class StaysSpec(_Strict):
    field: str = "stage"
    entered: str = "stage_entered_at"


class DuplicatesSpec(_Strict):
    field: str
    normalize: Literal["email", "domain", "lower", "none"] = "lower"


class LegDef(_Strict):
    """More records whose values a ``distinct`` measure counts (``also:``): the records of
    ``object`` (one or a list) that pass ``where``, placed by ``at``, each counting its value of
    ``distinct``. A value counts once however many records, of any object, give it."""

    object: str | tuple[str, ...]
    where: dict[str, Any] = Field(default_factory=dict)
    at: str = Field(min_length=1)
    distinct: str = Field(min_length=1)

    @property
    def objects(self) -> tuple[str, ...]:
        return (self.object,) if isinstance(self.object, str) else self.object


class MeasureDef(_Strict):
    """A named aggregate over one object's records, maintained incrementally per window and group."""

    object: str = Field(min_length=1)
    description: str = ""
    where: dict[str, Any] = Field(default_factory=dict)
    at: str | None = None
    active: ActiveSpec | None = None
    period: PeriodSpec | None = None
    stays: StaysSpec | None = None
    duplicates: DuplicatesSpec | None = None
    count: bool | None = None
    sum: str | DurationSum | WeightsSum | None = None
    distinct: str | None = None
    median: str | DurationSum | None = None
    p90: str | DurationSum | None = None
    at_least: int | None = Field(
        default=None,
        ge=1,
        description="with distinct: count only values with at least this many records "
        "(accounts with two or more won deals)",
    )
    among: str | None = Field(
        default=None,
        description="with distinct: count only values that are the id of a record the named "
        "'active' measure counts at the same time (upsell accounts that are customers)",
    )
    also: tuple[LegDef, ...] = Field(
        default=(),
        description="with distinct and at: more objects' records whose values count too "
        "(users active by an activity or by a record change)",
    )

    @model_validator(mode="after")
    def _one_shape(self) -> MeasureDef:
        placements = [
            n for n in ("active", "period", "stays", "duplicates") if getattr(self, n) is not None
        ]
        if len(placements) > 1:
            raise ValueError(f"a measure has one placement, got {' and '.join(placements)}")
        if placements and placements[0] in ("active", "period", "duplicates") and self.at:
            raise ValueError(f"'at' cannot be combined with '{placements[0]}'")
        if self.stays is not None and self.at != "left_at":
            raise ValueError(
                "a 'stays' measure is placed by the end of each stay: write 'at: left_at'"
            )
        aggregates = [n for n in ("sum", "distinct", *PERCENTILES) if getattr(self, n) is not None]
        if self.count:
            aggregates.append("count")
        if len(aggregates) > 1:
            raise ValueError(f"a measure has one aggregate, got {' and '.join(aggregates)}")
        if aggregates and self.duplicates is not None:
            raise ValueError("a 'duplicates' measure counts records; it takes no other aggregate")
        if self.at_least is not None and self.distinct is None:
            raise ValueError("'at_least' narrows a 'distinct' count: add 'distinct: <field>'")
        if self.among is not None and self.distinct is None:
            raise ValueError("'among' narrows a 'distinct' count: add 'distinct: <field>'")
        if self.also and (self.distinct is None or self.placement != "timed"):
            raise ValueError("'also' widens a 'distinct' count placed by 'at'")
        if aggregates and aggregates[0] in PERCENTILES and not self.at:
            raise ValueError(
                f"a '{aggregates[0]}' measure ranks values placed in time: add 'at: <time field>'"
            )
        if aggregates and aggregates[0] != "count" and self.active is not None:
            raise ValueError("an 'active' measure counts records; it takes no other aggregate")
        return self

    @property
    def placement(self) -> str:
        for name in ("active", "period", "stays", "duplicates"):
            if getattr(self, name) is not None:
                return name
        return "timed" if self.at else "snapshot"

    @property
    def aggregate(self) -> Literal["count", "sum", "distinct", "median", "p90"]:
        if self.sum is not None:
            return "sum"
        if self.distinct is not None:
            return "distinct"
        if self.median is not None:
            return "median"
        if self.p90 is not None:
            return "p90"
        return "count"

    @property
    def values(self) -> str | DurationSum | WeightsSum | None:
        """What a ``sum`` adds up or a percentile ranks: a field or a duration."""
        return self.sum if self.sum is not None else (self.median or self.p90)


def group_of(raw: Any) -> tuple[str, ...]:
    """``{}`` / ``[]`` / ``company`` -> (); ``owner_id`` -> ('owner_id',); a list -> a tuple."""
    if raw in ({}, [], None, "company", "{}"):
        return ()
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, dict):
        return tuple(sorted(str(k) for k in raw))
    if isinstance(raw, (list, tuple)) and all(isinstance(x, str) for x in raw):
        return tuple(raw)
    raise ValueError(f"expected a group like {{}}, owner_id or [owner_id, stage], got {raw!r}")


class MetricDef(_Strict):
    """A named output: an expression over measures and parameters, for a set of groups."""

    value: str = Field(min_length=1)
    category: Category
    unit: Unit = "number"
    description: str = ""
    groups: tuple[tuple[str, ...], ...] = ((),)
    windows: Literal["any", "calendar"] = "any"

    @field_validator("groups", mode="before")
    @classmethod
    def _groups(cls, raw: Any) -> Any:
        if not isinstance(raw, (list, tuple)):
            raw = [raw]
        return tuple(group_of(g) for g in raw)


class GoalDef(_Strict):
    """A SMART target: ``progress = actual / target``, ``pace = actual / (target x elapsed share)``."""

    name: str = Field(min_length=1)
    metric: str
    window: str = Field(description="a calendar window label: 2026-03, 2026-Q2 or 2026")
    group: dict[str, str] = Field(default_factory=dict)
    target: float
    deadline: str | None = Field(default=None, description="ISO time; default: the window's end")

    @field_validator("window")
    @classmethod
    def _label(cls, value: str) -> str:
        parse_window_label(value)
        return value

    @field_validator("target")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("a target of 0 makes progress undefined")
        return value


class Definitions(_Strict):
    """A catalog: parameters, measures, metrics and goals."""

    params: dict[str, float] = Field(default_factory=dict)
    measures: dict[str, MeasureDef] = Field(default_factory=dict)
    metrics: dict[str, MetricDef] = Field(default_factory=dict)
    goals: tuple[GoalDef, ...] = ()

    def merged(self, other: Definitions) -> Definitions:
        """This catalog with ``other``'s entries added (same names replace ours)."""
        return Definitions(
            params={**self.params, **other.params},
            measures={**self.measures, **other.measures},
            metrics={**self.metrics, **other.metrics},
            goals=(*self.goals, *other.goals),
        )
