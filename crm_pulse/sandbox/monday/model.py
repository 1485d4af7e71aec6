"""The account's vocabulary: API versions, limits, monday CRM's board templates, times."""

from __future__ import annotations

import contextvars
import math
from datetime import UTC, datetime

CURSOR_TTL = 3600.0
BUDGET = 5_000_000
CURRENT_VERSION = "2025-10"
"""What an answer looks like when a call names no API-Version (monday: "current")."""
CURSOR_EXPIRED = (
    "CursorExpiredError: The cursor provided for pagination has expired. Please refresh your "
    "query and obtain a new cursor to continue fetching items"
)
_VERSION: contextvars.ContextVar[str] = contextvars.ContextVar(
    "monday_api_version", default=CURRENT_VERSION
)

TEMPLATES: dict[str, list[tuple[str, str, list[str] | None]]] = {
    # (title, type, status labels) of monday CRM's boards, as crm-pulse's defaults expect them
    "deals": [
        ("Deal stage", "status", ["New", "Discovery", "Proposal", "Negotiation", "Won", "Lost"]),
        ("Owner", "people", None),
        ("Deal value", "numbers", None),
        ("Accounts", "board_relation", None),
        ("Expected close date", "date", None),
        ("Close probability", "numbers", None),
    ],
    "accounts": [
        ("Owner", "people", None),
        ("Domain", "text", None),
        ("Industry", "status", ["Software", "Retail", "Finance", "Other"]),
    ],
    "contacts": [
        ("Owner", "people", None),
        ("Accounts", "board_relation", None),
        ("Email", "email", None),
        ("Type", "status", ["Lead", "Customer", "Partner"]),
    ],
    "activities": [
        ("Owner", "people", None),
        ("Activity type", "status", ["Call", "Meeting", "Email", "Task"]),
        ("Date", "date", None),
        ("Accounts", "board_relation", None),
    ],
}


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _until_midnight(now: float) -> float:
    """The next midnight UTC (monday resets the daily call limit then)."""
    return (math.floor(now / 86400) + 1) * 86400.0
