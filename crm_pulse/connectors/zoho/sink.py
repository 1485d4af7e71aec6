"""Writing custom fields: Update Records (``PUT /crm/v8/{module}``), 100 records a call.

Writes to one record in a batch are coalesced into one record object; records are sent in
chunks of at most 100 per module, up to the client's ``concurrency`` chunks at once (a round
takes ``100 x concurrency x WAVES`` writes: Zoho limits calls in flight, not calls per second, so one
call after the other would leave most of the edition's allowance unused), and Zoho's per-record results (``status``/``code``/
``message``, in order) become one result per write. Field names may be given as API names or
labels; :class:`~.mapping.FieldCatalog` resolves them. A 429 or a spent credit share raises
RateLimited (the outbox waits and retries); an unknown field fails as retriable with a message
naming ``crm-pulse provision`` (it may be being created); a record Zoho refuses fails for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ...errors import DataError, RateLimited, RetriableError, SkippableError
from ..protocols import FieldKey, FieldWrite, WriteResult
from ..readback import held_value
from .client import UPDATE_BATCH, ZohoClient, check_id
from .mapping import FieldCatalog

__all__ = ["MODULE", "WAVES", "ZohoReader", "ZohoSink"]

WAVES = 3

MODULE = {
    "account": "Accounts",
    "accounts": "Accounts",
    "contact": "Contacts",
    "contacts": "Contacts",
    "lead": "Leads",
    "leads": "Leads",
    "deal": "Deals",
    "deals": "Deals",
    "ticket": "Cases",
    "case": "Cases",
    "cases": "Cases",
}


class ZohoSink:
    rounds_in_flight = 2
    """The writer hands over the next round while one settles: its calls wait for the client's
    slots (``concurrency``), so the slots stay busy through a round's last wave."""

    def __init__(self, client: ZohoClient, catalog: FieldCatalog) -> None:
        self.client = client
        self.catalog = catalog
        self.max_batch = UPDATE_BATCH * max(1, client.concurrency) * WAVES
        """Writes per round: ``WAVES`` Update Records calls of 100 per slot of the concurrency
        (a round ends with its slowest call: two waves keep the slots busy longer per round)."""

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        problems: dict[int, tuple[str, bool]] = {}
        records: dict[str, dict[str, dict[str, Any]]] = {}  # module -> id -> record
        keys: list[tuple[str, str] | None] = []  # per write: (module, record id) once sent
        names: dict[tuple[str, str], str | None] = {}  # (module, field) -> API name, this round
        for i, w in enumerate(writes):
            keys.append(None)
            module = MODULE.get(w.object)
            if module is None:
                problems[i] = (
                    f"Zoho object {w.object!r} takes no written fields "
                    "(account, contact, lead, deal, ticket)",
                    False,
                )
                continue
            try:
                rid = check_id(w.record_id)
            except DataError as exc:
                problems[i] = (str(exc), False)
                continue
            named = (module, w.field)
            if named in names:
                api = names[named]
            else:  # once per field a round: a round holds thousands of writes to a few fields
                # retry=False: a 429 goes straight to the outbox, which waits Retry-After
                api = names[named] = await self.catalog.resolve(module, w.field, retry=False)
            if api is None:
                problems[i] = (f"no {module} field {w.field!r}: run `crm-pulse provision`", True)
                continue
            by_id = records.get(module)
            if by_id is None:
                by_id = records[module] = {}
            record = by_id.get(rid)
            if record is None:
                record = by_id[rid] = {"id": rid}
            record[api] = w.value
            keys[i] = (module, rid)
        failed: dict[tuple[str, str], tuple[str, bool]] = {}
        chunks = [
            (module, ids[start : start + UPDATE_BATCH])
            for module, by_id in records.items()
            for ids in [list(by_id)]
            for start in range(0, len(ids), UPDATE_BATCH)
        ]

        async def send(module: str, chunk: list[str]) -> None:
            """One Update Records call, its answers read as soon as it is back (while the
            other calls of the round are still out)."""
            try:
                outcome = await self.client.update(module, [records[module][r] for r in chunk])
            except RetriableError as exc:
                if isinstance(exc, RateLimited):
                    raise
                failed.update(((module, r), (str(exc), True)) for r in chunk)
                return
            except SkippableError as exc:
                failed.update(((module, r), (str(exc), False)) for r in chunk)
                return
            for rid, answer in zip(chunk, outcome, strict=True):
                if answer.get("status") != "success":
                    code = answer.get("code") or "ERROR"
                    failed[(module, rid)] = (
                        f"Zoho refused {module} {rid}: {code} {answer.get('message') or ''}".strip(),
                        code in ("INTERNAL_ERROR", "TOO_MANY_REQUESTS"),
                    )

        # the client's slots bound the calls in flight to its concurrency
        outcomes = await asyncio.gather(
            *(send(module, chunk) for module, chunk in chunks), return_exceptions=True
        )
        limited = [o for o in outcomes if isinstance(o, RateLimited)]
        if limited:  # the whole round waits; chunks already written are harmlessly re-sent
            raise max(limited, key=lambda e: e.retry_after or 0.0)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        results = []
        for i, w in enumerate(writes):
            key = keys[i]
            if key is None:
                reason, retriable = problems[i]
                results.append(WriteResult(w, ok=False, retriable=retriable, reason=reason))
                continue
            failure = failed.get(key)
            results.append(
                WriteResult(w, ok=True)
                if failure is None
                else WriteResult(w, ok=False, retriable=failure[1], reason=failure[0])
            )
        return results


class ZohoReader:
    """Reads written fields back for ``crm-pulse audit``: Get Records by ``ids`` with the
    fields' API names (100 records a call); a record or field Zoho does not have is left out."""

    def __init__(self, client: ZohoClient, catalog: FieldCatalog) -> None:
        self.client = client
        self.catalog = catalog

    async def read(self, fields: Sequence[FieldKey]) -> dict[FieldKey, float | int | str | None]:
        by_module: dict[tuple[str, str], dict[str, list[str]]] = {}  # (object, module) -> id
        for obj, rid, name in fields:
            module = MODULE.get(obj)
            if module is not None:
                by_module.setdefault((obj, module), {}).setdefault(rid, []).append(name)
        out: dict[FieldKey, float | int | str | None] = {}
        for (obj, module), records in by_module.items():
            api: dict[str, str] = {}  # field as written -> its API name
            for name in sorted({n for names in records.values() for n in names}):
                resolved = await self.catalog.resolve(module, name)
                if resolved is not None:
                    api[name] = resolved
            if not api:
                continue
            found = await self.client.get_many(module, sorted(records), sorted(set(api.values())))
            for record in found:
                rid = str(record.get("id"))
                for name in records.get(rid, ()):
                    if name in api and api[name] in record:
                        out[(obj, rid, name)] = held_value(record[api[name]])
        return out
