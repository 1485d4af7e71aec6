"""Writing custom fields with sObject Collections: ``PATCH composite/sobjects``.

One call updates up to 200 records (of any sObject types, User included: per-rep metrics go to
User custom fields) with ``allOrNone: false``, so each record succeeds or fails on its own and
the answer lists one result per record, in order. Writes to one record are merged into one
record of the request (Salesforce refuses a record twice in one call).

Per-record errors: ``UNABLE_TO_LOCK_ROW`` (someone else holds the row) is retried later;
``ENTITY_IS_DELETED``, an id that does not exist, a field that does not exist or a value it
refuses go to the dead letters. Every write carries ``Sforce-Call-Options: client=<name>``, so
change notifications can tell our writes from users'. A refused call (daily limit) raises
RateLimited; sending the batch again is harmless (it sets values).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ...errors import DataError
from ..protocols import FieldKey, FieldWrite, WriteResult
from .client import SalesforceClient

__all__ = ["RETRIABLE_CODES", "SalesforceReader", "SalesforceSink"]

BATCH_MAX = 200
RETRIABLE_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "REQUEST_RUNNING_TOO_LONG", "SERVER_UNAVAILABLE"}
)


def _reason(result: dict[str, Any]) -> tuple[str, bool]:
    errors = result.get("errors") or []
    if not errors:
        return "Salesforce reported a failure without errors", True
    first = errors[0] if isinstance(errors[0], dict) else {}
    code = str(first.get("statusCode") or first.get("errorCode") or "UNKNOWN")
    message = str(first.get("message") or "")
    fields = first.get("fields") or []
    where = f" (fields {', '.join(map(str, fields))})" if fields else ""
    if code == "INVALID_FIELD":
        where += ": run `crm-pulse provision` to create it"
    return f"{code}: {message}{where}".strip(), code in RETRIABLE_CODES


class SalesforceSink:
    max_batch = BATCH_MAX
    rounds_in_flight = 1  # parallel updates of related records: UNABLE_TO_LOCK_ROW

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        records: dict[tuple[str, str], dict[str, Any]] = {}
        for w in writes:
            record = records.setdefault(
                (w.object, w.record_id), {"attributes": {"type": w.object}, "id": w.record_id}
            )
            record[w.field] = w.value
        # one chunk per sObject type (Salesforce allows at most 10 type changes in a call)
        items = sorted(records.items(), key=lambda item: item[0][0])
        outcome: dict[tuple[str, str], tuple[bool, str, bool]] = {}
        for start in range(0, len(items), BATCH_MAX):
            chunk = items[start : start + BATCH_MAX]
            answers = await self.client.update_collection([record for _, record in chunk])
            if len(answers) != len(chunk):
                raise DataError(
                    f"sObject Collections answered {len(answers)} results for {len(chunk)} records",
                    where="PATCH composite/sobjects",
                )
            for (key, _), answer in zip(chunk, answers, strict=True):
                if answer.get("success"):
                    outcome[key] = (True, "", False)
                else:
                    reason, retriable = _reason(answer)
                    outcome[key] = (False, reason, retriable)
        results = []
        for w in writes:
            ok, reason, retriable = outcome[(w.object, w.record_id)]
            results.append(WriteResult(w, ok=ok, retriable=retriable, reason=reason))
        return results


_ID = re.compile(r"^[A-Za-z0-9]{15,18}$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class SalesforceReader:
    """Reads written fields back with SOQL (100 ids a query)."""

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    async def read(self, fields: Sequence[FieldKey]) -> dict[FieldKey, float | int | str | None]:
        by_object: dict[str, dict[str, set[str]]] = {}
        for obj, rid, name in fields:
            if _NAME.match(obj) and _NAME.match(name) and _ID.match(rid):  # nothing to inject
                by_object.setdefault(obj, {}).setdefault(rid, set()).add(name)
        out: dict[FieldKey, float | int | str | None] = {}
        for obj, records in by_object.items():
            names = sorted({n for ns in records.values() for n in ns})
            ids = sorted(records)
            for start in range(0, len(ids), 100):
                chunk = " OR ".join(f"Id = '{i}'" for i in ids[start : start + 100])
                soql = f"SELECT Id, {', '.join(names)} FROM {obj} WHERE {chunk}"
                for row in await self.client.query_records(f"read back {obj}", soql):
                    rid = str(row.get("Id"))
                    for name in records.get(rid, ()):
                        if name in row:
                            value = row[name]
                            out[(obj, rid, name)] = (
                                value
                                if value is None or isinstance(value, int | float)
                                else str(value)
                            )
        return out
