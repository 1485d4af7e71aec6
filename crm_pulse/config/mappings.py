"""How a connector maps CRM values to canonical ones: data, not code.

A connector's settings hold these (``deal_type``, ``lifecycle``, ``activity_type``,
``survey_type``, ``fields``); the connector applies them when it turns records into events.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
)

from ..metrics.events import BUILTIN_OBJECTS
from .base import ActivityType, ConfigModel, DealType, Lifecycle, SurveyType, did_you_mean

__all__ = [
    "ActivityTypeMapping",
    "DealTypeMapping",
    "FieldOverrides",
    "LifecycleMapping",
    "SurveyTypeMapping",
]


class DealTypeMapping(ConfigModel):
    """Where a deal's canonical ``type`` (new / upsell / renewal / other) comes from."""

    property: str = Field(
        min_length=1, description="The CRM property (field) holding the deal type."
    )
    values: dict[str, DealType] = Field(
        default_factory=dict, description="CRM value -> canonical type."
    )
    default: DealType | None = Field(
        default="other",
        description="Type of a deal whose value is not listed; null leaves the type empty.",
    )


class LifecycleMapping(ConfigModel):
    """Where a contact's canonical ``lifecycle`` (lead / customer / other) comes from."""

    property: str = Field(min_length=1, description="The CRM property holding the stage.")
    values: dict[str, Lifecycle] = Field(
        default_factory=dict, description="CRM value -> canonical lifecycle."
    )
    default: Lifecycle | None = Field(default="other", description="For values not listed.")


class ActivityTypeMapping(ConfigModel):
    """Where an activity's canonical ``type`` (call / email / meeting / task / note) comes from."""

    property: str = Field(min_length=1, description="The CRM property holding the type.")
    values: dict[str, ActivityType] = Field(
        default_factory=dict, description="CRM value -> canonical activity type."
    )
    default: ActivityType | None = Field(default="task", description="For values not listed.")


class SurveyTypeMapping(ConfigModel):
    """Where a survey response's canonical ``survey`` (nps / csat) comes from."""

    property: str = Field(min_length=1, description="The CRM property holding the survey kind.")
    values: dict[str, SurveyType] = Field(
        default_factory=dict, description="CRM value -> canonical survey kind."
    )
    default: SurveyType | None = Field(
        default=None, description="For values not listed; null skips the response."
    )


def _canonical_fields(obj: str) -> AfterValidator:
    schema = BUILTIN_OBJECTS[obj]

    def check(value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name not in schema:
                raise ValueError(
                    f"{obj} has no canonical field {name!r}{did_you_mean(name, list(schema))} "
                    f"(fields: {', '.join(schema)})"
                )
        return value

    return AfterValidator(check)


class FieldOverrides(ConfigModel):
    """Per canonical object: canonical field -> the CRM property to read it from.

    Each connector has defaults for every field (metrics-spec section 1); list here only the
    fields your CRM keeps elsewhere, for example ``account: {churned_at: churn_date__c}``.
    """

    account: Annotated[dict[str, str], _canonical_fields("account")] = Field(
        default_factory=dict, description="Account (company, organization) fields."
    )
    contact: Annotated[dict[str, str], _canonical_fields("contact")] = Field(
        default_factory=dict, description="Contact (person) fields."
    )
    deal: Annotated[dict[str, str], _canonical_fields("deal")] = Field(
        default_factory=dict, description="Deal (opportunity) fields."
    )
    ticket: Annotated[dict[str, str], _canonical_fields("ticket")] = Field(
        default_factory=dict, description="Ticket (case) fields."
    )
    activity: Annotated[dict[str, str], _canonical_fields("activity")] = Field(
        default_factory=dict, description="Activity (engagement, task, event) fields."
    )
    survey_response: Annotated[dict[str, str], _canonical_fields("survey_response")] = Field(
        default_factory=dict, description="Survey response fields."
    )
