"""Writing custom properties with ``batch/update`` (at most 100 inputs per call).

Writes to one record are merged into one input; a 207 answer's per-record errors become
per-record results (a record that no longer exists goes to the dead letters; other errors are
retried). A 429 for the whole call raises RateLimited with Retry-After, and the outbox writer
retries the batch later: ``batch/update`` sets values, so sending it again is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocols import FieldWrite, WriteResult
from .client import HubSpotClient
from .errors import describe

__all__ = ["HubSpotSink"]

BATCH_MAX = 100
_PERMANENT = {"OBJECT_NOT_FOUND", "VALIDATION_ERROR", "PROPERTY_DOESNT_EXIST"}


def _text(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class HubSpotSink:
    max_batch = BATCH_MAX

    def __init__(self, client: HubSpotClient) -> None:
        self.client = client

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        by_object: dict[str, dict[str, dict[str, str]]] = {}
        for w in writes:
            by_object.setdefault(w.object, {}).setdefault(w.record_id, {})[w.field] = _text(w.value)
        failed: dict[tuple[str, str], tuple[str, bool]] = {}
        for object_type, records in by_object.items():
            items = list(records.items())
            for start in range(0, len(items), BATCH_MAX):
                inputs = [
                    {"id": rid, "properties": props}
                    for rid, props in items[start : start + BATCH_MAX]
                ]
                status, data = await self.client.batch_update(object_type, inputs)
                if status == 207:
                    for error in data.get("errors") or []:
                        category = str(error.get("category") or "")
                        reason = describe(error) or category
                        for rid in _error_ids(error):
                            failed[(object_type, rid)] = (reason, category not in _PERMANENT)
        results = []
        for w in writes:
            failure = failed.get((w.object, w.record_id))
            if failure is None:
                results.append(WriteResult(w, ok=True))
            else:
                results.append(WriteResult(w, ok=False, retriable=failure[1], reason=failure[0]))
        return results


def _error_ids(error: dict[str, Any]) -> list[str]:
    context = error.get("context") or {}
    ids = context.get("ids") or context.get("id") or []
    return [str(i) for i in (ids if isinstance(ids, list) else [ids])]
