"""The search API's filter language: values as search compares them, sorting, matching."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from .model import _ms, _Record

FILTER_GROUPS_MAX = 5
FILTERS_PER_GROUP_MAX = 10
FILTERS_TOTAL_MAX = 25


def _value(record: _Record, name: str) -> Any:
    if name in ("hs_object_id", "id"):
        return int(record.id)
    raw = record.properties.get(name)
    if raw is None or raw == "":
        return None
    if name in ("hs_lastmodifieddate", "lastmodifieddate", "createdate") or name.startswith(
        "hs_date_"
    ):
        return _ms(raw)
    try:
        return float(raw)
    except ValueError:
        return raw


def _sorter(name: str) -> Callable[[_Record], tuple[int, Any]]:
    return lambda record: _sort_key(record, name)


def _sort_key(record: _Record, name: str) -> tuple[int, Any]:
    value = _value(record, name)
    return (0, "") if value is None else (1, value)


def _match(record: _Record, f: Mapping[str, Any]) -> bool:
    value = _value(record, str(f.get("propertyName")))
    op = f.get("operator")
    if op == "HAS_PROPERTY":
        return value is not None
    if op == "NOT_HAS_PROPERTY":
        return value is None
    if value is None:
        return False
    target: Any = f.get("value")
    if isinstance(value, int | float) and not isinstance(target, int | float):
        try:
            target = (
                _ms(str(target))
                if not str(target).replace(".", "", 1).lstrip("-").isdigit()
                else float(target)
            )
        except ValueError:
            return False
    elif isinstance(value, str):
        target = str(target)
    if op == "EQ":
        return bool(value == target)
    if op == "NEQ":
        return bool(value != target)
    if op == "GT":
        return bool(value > target)
    if op == "GTE":
        return bool(value >= target)
    if op == "LT":
        return bool(value < target)
    if op == "LTE":
        return bool(value <= target)
    if op == "IN":
        return str(value) in {str(v) for v in f.get("values", [])}
    raise web.HTTPBadRequest(
        text=json.dumps(
            {
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": f"operator {op} not supported",
            }
        ),
        content_type="application/json",
    )
