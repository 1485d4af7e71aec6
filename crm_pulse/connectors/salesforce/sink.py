"""Writing custom fields with sObject Collections (``PATCH composite/sobjects``, 200 records).

``allOrNone: false``: each record succeeds or fails alone, and the results come back in order.
``UNABLE_TO_LOCK_ROW`` is retried later; a deleted record (``ENTITY_IS_DELETED``) or an unknown
field fails for good (dead letters). Every write carries ``Sforce-Call-Options: client=<name>``
so that change events can tell our writes from others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..protocols import FieldWrite, WriteResult
from .client import SalesforceClient

__all__ = ["SalesforceSink"]

COLLECTION_MAX = 200
_RETRIABLE = {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"}


class SalesforceSink:
    max_batch = COLLECTION_MAX

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for w in writes:
            merged.setdefault((w.object, w.record_id), {})[w.field] = w.value
        items = list(merged.items())
        outcome: dict[tuple[str, str], tuple[bool, bool, str]] = {}
        for start in range(0, len(items), COLLECTION_MAX):
            chunk = items[start : start + COLLECTION_MAX]
            records = [
                {"attributes": {"type": obj}, "id": rid, **values} for (obj, rid), values in chunk
            ]
            results = await self.client.update_collection(records)
            for ((obj, rid), _), result in zip(chunk, results, strict=False):
                if result.get("success"):
                    outcome[(obj, rid)] = (True, False, "")
                else:
                    errors = result.get("errors") or [{}]
                    code = str(errors[0].get("statusCode", ""))
                    outcome[(obj, rid)] = (
                        False,
                        code in _RETRIABLE,
                        f"{code}: {errors[0].get('message', '')}",
                    )
        out = []
        for w in writes:
            ok, retriable, reason = outcome.get(
                (w.object, w.record_id), (False, True, "no result returned")
            )
            out.append(WriteResult(w, ok=ok, retriable=retriable, reason=reason))
        return out
