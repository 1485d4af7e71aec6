"""The account's vocabulary: plans and token costs, standard fields and defaults, a record
as the API shows it, Pipedrive's time formats."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

_COST = {"GET_list": 10, "GET_one": 1, "PATCH": 5, "POST": 5}
PLANS: dict[str, tuple[int, int]] = {
    # plan: (burst requests per 2 s per api_token, daily budget multiplier)
    "lite": (20, 1),
    "growth": (40, 2),
    "premium": (100, 5),
    "ultimate": (120, 7),
}
BASE_TOKENS = 30_000
"""Daily token budget per seat before the plan multiplier."""
DELETED_VISIBLE_DAYS = 30
FIELDS_PAGE_DEFAULT, FIELDS_PAGE_MAX = 100, 500
_ESSENTIAL: dict[str, tuple[str, ...]] = {
    # what a webhooks v2 ``data`` carries: the essential fields, not the whole record
    "deals": (
        "id",
        "title",
        "value",
        "currency",
        "status",
        "stage_id",
        "pipeline_id",
        "owner_id",
        "person_id",
        "org_id",
        "add_time",
        "update_time",
    ),
    "persons": ("id", "name", "owner_id", "org_id", "add_time", "update_time"),
    "organizations": ("id", "name", "owner_id", "add_time", "update_time"),
    "activities": ("id", "subject", "type", "owner_id", "deal_id", "add_time", "update_time"),
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "deals": {
        "title": None,
        "value": 0,
        "owner_id": None,
        "person_id": None,
        "org_id": None,
        "pipeline_id": None,
        "stage_id": None,
        "stage_change_time": None,
        "won_time": None,
        "lost_time": None,
        "close_time": None,
        "expected_close_date": None,
    },
    "persons": {"name": None, "owner_id": None, "org_id": None, "emails": []},
    "organizations": {"name": None, "owner_id": None},
    "activities": {
        "subject": None,
        "type": None,
        "owner_id": None,
        "deal_id": None,
        "org_id": None,
        "due_date": None,
        "due_time": None,
    },
}
_STANDARD_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    # a few of the standard (not custom) fields every account lists first
    "deals": (
        ("title", "varchar"),
        ("value", "monetary"),
        ("status", "status"),
        ("stage_id", "stage"),
        ("owner_id", "user"),
        ("org_id", "org"),
        ("add_time", "date"),
        ("update_time", "date"),
    ),
    "persons": (("name", "varchar"), ("owner_id", "user"), ("org_id", "org")),
    "organizations": (("name", "varchar"), ("owner_id", "user")),
    "activities": (("subject", "varchar"), ("type", "varchar"), ("due_date", "date")),
}
_ENTITIES = ("deals", "persons", "organizations", "activities")
_SINGULAR = {
    "deals": "deal",
    "persons": "person",
    "organizations": "organization",
    "activities": "activity",
}


def _essential(entity: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``data`` of a webhooks v2 delivery: the record's essential fields only."""
    return {k: json.loads(json.dumps(record[k])) for k in _ESSENTIAL[entity] if k in record}


def _public(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the API shows it (without the simulator's own bookkeeping)."""
    return {k: v for k, v in json.loads(json.dumps(record)).items() if not k.startswith("_")}


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _v1_time(seconds: int) -> str:
    """API v1's time format: ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


_FIELD_TYPES = ("double", "monetary", "varchar", "enum", "date", "text")
