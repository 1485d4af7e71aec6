"""Which sObject becomes which canonical object, and which field holds each canonical field: the
declarative table :data:`OBJECTS` (``mapping.fields`` in the deployment file overrides any
entry), and the survey object's default fields."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ObjectSpec:
    """One sObject: its canonical object, field table, constants and extra fields to read."""

    sobject: str
    canonical: str
    fields: Mapping[str, str] = field(default_factory=dict)
    constant: Mapping[str, Any] = field(default_factory=dict)
    extra: Sequence[str] = ()
    """Fields read for derived values (not canonical fields themselves)."""


OBJECTS: dict[str, ObjectSpec] = {
    "Account": ObjectSpec(
        "Account",
        "account",
        fields={
            "modified_by": "LastModifiedById",
            "modified_at": "LastModifiedDate",
            "owner_id": "OwnerId",
            "domain": "Website",
            "created_at": "CreatedDate",
        },
    ),
    "Contact": ObjectSpec(
        "Contact",
        "contact",
        fields={
            "modified_by": "LastModifiedById",
            "modified_at": "LastModifiedDate",
            "account_id": "AccountId",
            "owner_id": "OwnerId",
            "email": "Email",
            "created_at": "CreatedDate",
        },
        constant={"lifecycle": "other"},
    ),
    "Lead": ObjectSpec(
        "Lead",
        "contact",
        fields={
            "modified_by": "LastModifiedById",
            "modified_at": "LastModifiedDate",
            "account_id": "ConvertedAccountId",
            "owner_id": "OwnerId",
            "email": "Email",
            "created_at": "CreatedDate",
            "converted_at": "ConvertedDate",
        },
        constant={"lifecycle": "lead"},
        extra=("IsConverted",),
    ),
    "Opportunity": ObjectSpec(
        "Opportunity",
        "deal",
        fields={
            "modified_by": "LastModifiedById",
            "modified_at": "LastModifiedDate",
            "account_id": "AccountId",
            "owner_id": "OwnerId",
            "stage": "StageName",
            "amount": "Amount",
            "created_at": "CreatedDate",
            "closed_at": "CloseDate",
        },
        extra=("IsClosed", "IsWon", "LastStageChangeDate"),
    ),
    "User": ObjectSpec(
        "User",
        "user",
        fields={"email": "Email", "created_at": "CreatedDate"},
        extra=("IsActive",),
    ),
    "Case": ObjectSpec(
        "Case",
        "ticket",
        fields={
            "modified_by": "LastModifiedById",
            "modified_at": "LastModifiedDate",
            "account_id": "AccountId",
            "owner_id": "OwnerId",
            "created_at": "CreatedDate",
            "closed_at": "ClosedDate",
        },
        extra=("IsClosed",),
    ),
    "Task": ObjectSpec(
        "Task",
        "activity",
        fields={
            "modified_by": "LastModifiedById",
            "modified_at": "LastModifiedDate",
            "owner_id": "OwnerId",
            "account_id": "AccountId",
            "occurred_at": "ActivityDate",
        },
        extra=("CreatedDate",),
    ),
    "Event": ObjectSpec(
        "Event",
        "activity",
        fields={
            "modified_by": "LastModifiedById",
            "modified_at": "LastModifiedDate",
            "owner_id": "OwnerId",
            "account_id": "AccountId",
            "occurred_at": "ActivityDateTime",
        },
        constant={"type": "meeting"},
        extra=("ActivityDate",),
    ),
    "ForecastingQuota": ObjectSpec(
        "ForecastingQuota",
        "quota",
        fields={"owner_id": "QuotaOwnerId", "amount": "QuotaAmount", "period_start": "StartDate"},
        extra=("PeriodId",),
    ),
}

SURVEY_DEFAULTS = {
    "account_id": "Account__c",
    "contact_id": "Contact__c",
    "score": "Score__c",
    "submitted_at": "CreatedDate",
}
