"""The shapes of HubSpot's answers: records, properties, associations, batch results, errors."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from .model import _PIPELINES_CREATED, _Property, _Record, iso_ms


def _public(object_type: str, record: _Record, names: Iterable[str] | None) -> dict[str, Any]:
    wanted = set(names or ()) | {
        "hs_object_id",
        "createdate",
        "hs_lastmodifieddate",
        "lastmodifieddate",
    }
    props: dict[str, str | None] = {k: v for k, v in record.properties.items() if k in wanted}
    for name in wanted:
        props.setdefault(name, None)  # HubSpot returns requested properties, null when unset
    if object_type != "contacts":
        props.pop("lastmodifieddate", None)
    out: dict[str, Any] = {
        "id": record.id,
        "properties": props,
        "createdAt": iso_ms(record.created_ms),
        "updatedAt": iso_ms(record.modified_ms),
        "archived": record.archived_ms is not None,
    }
    if record.archived_ms is not None:
        out["archivedAt"] = iso_ms(record.archived_ms)
    return out


def _property_answer(p: _Property) -> dict[str, Any]:
    """A property as HubSpot describes one (``description`` and ``options`` always present,
    ``createdAt`` and ``updatedAt`` in ISO time)."""
    out: dict[str, Any] = {
        "name": p.name,
        "label": p.label,
        "type": p.type,
        "fieldType": p.field_type,
        "groupName": p.group,
        "description": "",
        "options": [],
        "createdAt": _PIPELINES_CREATED,
        "updatedAt": _PIPELINES_CREATED,
        "hidden": False,
        "formField": False,
        "calculated": False,
        "externalOptions": False,
        "hasUniqueValue": False,
        "modificationMetadata": {
            "archivable": True,
            "readOnlyDefinition": False,
            "readOnlyValue": False,
        },
    }
    out.update(p.extra)
    return out


def _associated(target: str) -> dict[str, Any]:
    return {
        "toObjectId": str(target),
        "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 1, "label": None}],
    }


def _next_page(after: int) -> dict[str, Any]:
    return {"next": {"after": str(after), "link": f"?after={after}"}}


def _batch_times() -> dict[str, str]:
    """``startedAt`` and ``completedAt``: required in every batch answer."""
    now = iso_ms(int(time.time() * 1000))
    return {"startedAt": now, "completedAt": now}


def _too_many(count: int, limit: int) -> web.Response:
    return _error(400, "VALIDATION_ERROR", f"Batch size {count} exceeds the limit of {limit}")


def _batch_answer(
    results: list[Any], missing: list[str], message: str, *, with_ids: bool = True
) -> web.Response:
    """200 with the results, or 207 with one OBJECT_NOT_FOUND error naming the missing ids."""
    answer: dict[str, Any] = {"status": "COMPLETE", "results": results, **_batch_times()}
    if not missing:
        return web.json_response(answer)
    error: dict[str, Any] = {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": message,
        "context": {"ids": missing} if with_ids else {},
        "links": {},
        "errors": [],
    }
    answer["errors"] = [error]
    answer["numErrors"] = 1
    return web.json_response(answer, status=207)


def _error(
    status: int, category: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {
            "status": "error",
            "message": message,
            "category": category,
            "correlationId": "00000000-fake",
        },
        status=status,
        headers=headers,
    )
