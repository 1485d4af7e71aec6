"""The ``writeback`` section: which metric value goes into which CRM field."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from ..metrics.calendar import CURRENT, WindowSpec, parse_window_spec
from ..metrics.definitions import group_of
from .base import ConfigModel, Id

__all__ = ["RecordMatch", "WritebackRule", "WritebackTarget"]


class RecordMatch(ConfigModel):
    """Write a per-group value to every record of the target object whose ``field`` equals the
    group's value (for example the rep's open deals: ``{field: hubspot_owner_id,
    where: {dealstage: open}}``)."""

    field: str = Field(min_length=1, description="The target object's field holding the group id.")
    where: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Extra equality filters on the target records."
    )


class WritebackTarget(ConfigModel):
    """Where values are written: a connector's object, record(s) and custom field."""

    connector: str = Field(min_length=1, description="Name of a configured connector.")
    object: str = Field(
        min_length=1, description="CRM object: companies, deals, Account, User, organization, ..."
    )
    field: str = Field(min_length=1, description="API name of the custom field to write.")
    record: Id | None = Field(
        default=None,
        description="Record id to write a company-wide value to (required when group is {}).",
    )
    match: RecordMatch | None = Field(
        default=None,
        description="For per-group values: which records to write. Default: the record whose "
        "id is the group's value (the account, the user). Not supported by the runtimes yet: "
        "use records.",
    )
    records: dict[Id, Id] | None = Field(
        default=None,
        description="For per-group values: group value -> record id, for objects that cannot "
        "hold the value themselves (HubSpot owners, Pipedrive users): e.g. each rep's own "
        "custom-object record. Groups not listed are not written.",
    )
    label: str | None = Field(
        default=None, description="Field label when provisioning; default from the metric name."
    )


class WritebackRule(ConfigModel):
    """Write a metric's value for one window and group into a CRM field whenever it changes."""

    metric: str = Field(min_length=1, description="Metric name (built-in or yours).")
    window: str = Field(
        default="month",
        description="day, week, month, quarter, year, rolling:<N>d, or current (snapshot metrics).",
    )
    which: Literal["current", "previous"] = Field(
        default="current",
        description="current: the window holding now (values change as it fills); previous: the "
        "last complete one (calendar windows only).",
    )
    group: tuple[str, ...] = Field(
        default=(),
        description="{} for one company-wide value, or a group field like owner_id or "
        "account_id: one value per group, each written to its own record.",
    )
    target: WritebackTarget = Field(description="Where to write.")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if value.strip() != "current":
            parse_window_spec(value)
        return value.strip()

    @field_validator("group", mode="before")
    @classmethod
    def _group(cls, value: Any) -> Any:
        return group_of(value)

    @model_validator(mode="after")
    def _shape(self) -> WritebackRule:
        if self.which == "previous" and not self.window_spec.is_calendar:
            raise ValueError(
                "which: previous needs a calendar window (day, week, month, quarter or year)"
            )
        if len(self.group) > 1:
            raise ValueError(
                "a write-back rule writes one value per record: use group {} or one group field"
            )
        if not self.group:
            if self.target.record is None:
                raise ValueError(
                    "a company-wide value (group {}) goes to one record: set target.record"
                )
            if self.target.match is not None:
                raise ValueError("target.match is for per-group values; group is {}")
        elif self.target.record is not None:
            raise ValueError(
                f"values per {self.group[0]} go to one record each: remove target.record "
                "(or use target.records to map each group to its record)"
            )
        if self.target.records is not None and not self.group:
            raise ValueError("target.records maps group values to records; group is {}")
        if self.target.records is not None and self.target.match is not None:
            raise ValueError("use target.records or target.match, not both")
        return self

    @property
    def window_spec(self) -> WindowSpec:
        return CURRENT if self.window == "current" else parse_window_spec(self.window)
