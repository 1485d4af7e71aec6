"""The portal's vocabulary: object types, documented limits, HubSpot's time format, the
record and property kept in memory, and the default pipelines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

OBJECT_TYPE_IDS = {
    "0-1": "contacts",
    "0-2": "companies",
    "0-3": "deals",
    "0-5": "tickets",
    "0-48": "calls",
    "0-47": "meetings",
    "0-49": "emails",
    "0-27": "tasks",
    "0-46": "notes",
    "0-19": "feedback_submissions",
}
_TYPES = set(OBJECT_TYPE_IDS.values())
SEARCH_PAGE_MAX = 200
SEARCH_RESULTS_MAX = 10_000
BATCH_MAX = 100
ASSOCIATIONS_BATCH_MAX = 1_000
_HISTORY = 100_000
_TYPE_IDS = {name: type_id for type_id, name in OBJECT_TYPE_IDS.items()}


def iso_ms(ms: int) -> str:
    """HubSpot's datetime format: ISO 8601 in UTC with milliseconds."""
    return (
        datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    )


def _ms(value: str) -> int:
    if value.isdigit():
        return int(value)
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass
class _Record:
    id: str
    properties: dict[str, str]
    created_ms: int
    modified_ms: int
    archived_ms: int | None = None
    written_at: float = 0.0  # wall-clock time of the last write (search indexing delay)


@dataclass
class _Property:
    name: str
    label: str
    type: str
    field_type: str
    group: str
    extra: dict[str, Any] = field(default_factory=dict)


_DEFAULT_PIPELINES = {
    # what GET /crm/v3/pipelines answers: deal stages carry ``probability`` (1.0 closed won,
    # 0.0 closed lost) and the read-only ``isClosed``; ticket stages carry ``ticketState`` only
    "deals": [
        {
            "id": "default",
            "label": "Sales Pipeline",
            "stages": [
                (
                    "appointmentscheduled",
                    "Appointment Scheduled",
                    {"isClosed": "false", "probability": "0.2"},
                ),
                ("qualifiedtobuy", "Qualified To Buy", {"isClosed": "false", "probability": "0.4"}),
                ("contractsent", "Contract Sent", {"isClosed": "false", "probability": "0.9"}),
                ("closedwon", "Closed Won", {"isClosed": "true", "probability": "1.0"}),
                ("closedlost", "Closed Lost", {"isClosed": "true", "probability": "0.0"}),
            ],
        }
    ],
    "tickets": [
        {
            "id": "0",
            "label": "Support Pipeline",
            "stages": [
                ("1", "New", {"ticketState": "OPEN"}),
                ("2", "Waiting on contact", {"ticketState": "OPEN"}),
                ("4", "Closed", {"ticketState": "CLOSED"}),
            ],
        }
    ],
}
ASSOCIATIONS_PAGE_MAX = 500
"""Associations of one record per page of the v4 APIs (more: ``paging.next.after``)."""
OWNERS_PAGE_MAX = 500
"""Owners per page of ``GET /crm/v3/owners`` (``limit``; HubSpot's default is 100)."""
_PIPELINES_CREATED = "2024-01-02T03:04:05.678Z"


_WRITABLE_BUILTINS = {
    "amount",
    "dealstage",
    "dealname",
    "closedate",
    "hubspot_owner_id",
    "pipeline",
    "dealtype",
    "name",
    "domain",
}
_BUILTIN_GROUPS = {
    "dealinformation",
    "companyinformation",
    "contactinformation",
    "ticketinformation",
}
