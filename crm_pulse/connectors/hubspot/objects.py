"""Which HubSpot object becomes which canonical object, and which property holds each canonical
field: the declarative table :data:`OBJECTS` (``mapping.fields`` in the deployment file
overrides any entry), and the names HubSpot gives object types (``deal``, ``DEAL``, ``0-3``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ObjectSpec:
    object_type: str
    canonical: str
    modified: str = "hs_lastmodifieddate"
    fields: Mapping[str, str] = field(default_factory=dict)
    constant: Mapping[str, str] = field(default_factory=dict)


def _activity(kind: str, object_type: str) -> ObjectSpec:
    return ObjectSpec(
        object_type,
        "activity",
        fields={"owner_id": "hubspot_owner_id", "occurred_at": "hs_timestamp"},
        constant={"type": kind},
    )


OBJECTS: dict[str, ObjectSpec] = {
    "companies": ObjectSpec(
        "companies",
        "account",
        fields={
            "owner_id": "hubspot_owner_id",
            "domain": "domain",
            "customer_since": "hs_date_entered_customer",
            "created_at": "createdate",
        },
    ),
    "contacts": ObjectSpec(
        "contacts",
        "contact",
        modified="lastmodifieddate",
        fields={
            "account_id": "associatedcompanyid",
            "owner_id": "hubspot_owner_id",
            "email": "email",
            "created_at": "createdate",
            "converted_at": "hs_lifecyclestage_customer_date",
        },
    ),
    "deals": ObjectSpec(
        "deals",
        "deal",
        fields={
            "account_id": "hs_primary_associated_company",
            "owner_id": "hubspot_owner_id",
            "pipeline": "pipeline",
            "stage": "dealstage",
            "amount": "amount_in_home_currency",  # the portal's currency: one reporting currency
            "created_at": "createdate",
            "closed_at": "closedate",
        },
    ),
    "tickets": ObjectSpec(
        "tickets",
        "ticket",
        fields={
            "account_id": "hs_primary_company_id",
            "owner_id": "hubspot_owner_id",
            "created_at": "createdate",
            "closed_at": "closed_date",
            "first_response_at": "first_agent_reply_date",
        },
    ),
    "calls": _activity("call", "calls"),
    "emails": _activity("email", "emails"),
    "meetings": _activity("meeting", "meetings"),
    "tasks": _activity("task", "tasks"),
    "notes": _activity("note", "notes"),
    "feedback_submissions": ObjectSpec(
        "feedback_submissions",
        "survey_response",
        fields={
            "contact_id": "hs_contact_id",
            "score": "hs_response_value",
            "submitted_at": "hs_submission_timestamp",
        },
    ),
}

OBJECT_TYPE_IDS = {
    "0-1": "contacts",
    "0-2": "companies",
    "0-3": "deals",
    "0-5": "tickets",
    "0-27": "tasks",
    "0-46": "notes",
    "0-47": "meetings",
    "0-48": "calls",
    "0-49": "emails",
    "0-19": "feedback_submissions",
}
"""HubSpot's object-type ids (the current spec's paths and generic webhooks use them)."""

_SINGULAR = {
    "company": "companies",
    "contact": "contacts",
    "deal": "deals",
    "ticket": "tickets",
    "call": "calls",
    "email": "emails",
    "meeting": "meetings",
    "meeting_event": "meetings",
    "note": "notes",
    "task": "tasks",
    "feedback_submission": "feedback_submissions",
}


def object_type_of(name: str) -> str | None:
    """Our object type (``deals``) for any name HubSpot uses: ``deal``, ``DEAL``, ``0-3``."""
    text = str(name).strip()
    if text in OBJECT_TYPE_IDS:
        return OBJECT_TYPE_IDS[text]
    lower = text.lower()
    if lower in OBJECTS:
        return lower
    return _SINGULAR.get(lower)
