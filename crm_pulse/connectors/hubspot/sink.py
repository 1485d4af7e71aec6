"""Writing custom properties with ``batch/update`` (at most 100 inputs per call).

Writes to one record are merged into one input (the last value of a field wins). A round takes
up to ``PARALLEL`` calls' worth of writes and sends those calls at once: HubSpot limits calls
per rolling interval, not calls in flight, and the client's window
(:class:`~crm_pulse.retry.RollingWindow`) keeps them under it, so one call after the other
would leave most of the allowance unused when answers are slow. The answer is
read per record: a record named in ``results`` was written; one that is not was refused, with
the reason of the ``errors`` entry naming it (``context.ids``), or a generic reason when HubSpot
did not say which record an error was about: nothing is reported written that HubSpot did not
confirm. A record that no longer exists or a value HubSpot refuses goes to the dead letters;
other failures are retried.

A refusal of the whole call: 429 raises :class:`~crm_pulse.errors.RateLimited` with
Retry-After, and the outbox writer retries the batch later (``batch/update`` sets values, so
sending it again is harmless); a 400 (a property that does not exist, a value of the wrong type)
fails each write of that call, not retried, with HubSpot's reason.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

from ...errors import RateLimited
from ..protocols import FieldKey, FieldWrite, WriteResult
from ..readback import held_value
from .client import HubSpotClient
from .errors import Refused, describe

__all__ = ["BATCH_MAX", "HubSpotReader", "HubSpotSink"]

BATCH_MAX = 100
PARALLEL = 4
"""batch/update calls one round sends at once."""
_PERMANENT = {"OBJECT_NOT_FOUND", "VALIDATION_ERROR", "PROPERTY_DOESNT_EXIST", "INVALID_OWNER_ID"}


def _text(value: float | int | None) -> str:
    """HubSpot property values are strings; '' clears the property."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class HubSpotSink:
    max_batch = BATCH_MAX * PARALLEL
    rounds_in_flight = 1
    """One round at a time (its four calls go out together). Two rounds out measured 429s in
    the connector-ceiling benchmark under load: the client's rolling window counts a call when
    it starts, and calls held up in a busy event loop reached HubSpot bunched together
    (docs/benchmarks.md, "Connector ceilings", session 4)."""

    def __init__(self, client: HubSpotClient) -> None:
        self.client = client

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        by_object: dict[str, dict[str, dict[str, str]]] = {}
        unsendable: dict[int, str] = {}
        for i, w in enumerate(writes):
            if w.value is not None and not math.isfinite(w.value):
                # HubSpot would refuse the whole call for it: keep it out, fail it alone
                unsendable[i] = f"{w.field} = {w.value!r} is not a number HubSpot can store"
                continue
            by_object.setdefault(w.object, {}).setdefault(w.record_id, {})[w.field] = _text(w.value)
        failed: dict[tuple[str, str], tuple[str, bool]] = {}
        chunks = [
            (object_type, items[start : start + BATCH_MAX])
            for object_type, records in by_object.items()
            for items in [list(records.items())]
            for start in range(0, len(items), BATCH_MAX)
        ]
        outcomes = await asyncio.gather(
            *(
                self.client.batch_update(o, [{"id": r, "properties": p} for r, p in chunk])
                for o, chunk in chunks
            ),
            return_exceptions=True,
        )
        limited = [o for o in outcomes if isinstance(o, RateLimited)]
        if limited:  # the whole round waits; batches already written set the same values again
            raise max(limited, key=lambda e: e.retry_after or 0.0)
        for (object_type, chunk), outcome in zip(chunks, outcomes, strict=True):
            if isinstance(outcome, Refused):  # the whole call refused: each of its writes fails
                for rid, _ in chunk:
                    failed[(object_type, rid)] = (str(outcome), outcome.status >= 500)
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            status, data = outcome
            failed.update(_failures(object_type, [rid for rid, _ in chunk], status, data))
        results = []
        for i, w in enumerate(writes):
            failure = failed.get((w.object, w.record_id))
            if i in unsendable:
                results.append(WriteResult(w, ok=False, retriable=False, reason=unsendable[i]))
            elif failure is None:
                results.append(WriteResult(w, ok=True))
            else:
                reason = failure[0]
                if "does not exist" in reason and "roperty" in reason:
                    reason += ": run `crm-pulse provision` to create it"
                results.append(WriteResult(w, ok=False, retriable=failure[1], reason=reason))
        return results


def _failures(
    object_type: str, ids: list[str], status: int, data: dict[str, Any]
) -> dict[tuple[str, str], tuple[str, bool]]:
    """(object, id) -> (reason, retriable) for each record of one call HubSpot did not write."""
    if status == 200:
        return {}
    written = {str(r.get("id")) for r in data.get("results") or [] if isinstance(r, dict)}
    named: dict[str, tuple[str, bool]] = {}
    anonymous: list[tuple[str, bool]] = []
    for error in data.get("errors") or []:
        category = str(error.get("category") or "")
        reason = describe(error) or category or "refused"
        verdict = (reason, category not in _PERMANENT)
        ids_in_error = _error_ids(error)
        for rid in ids_in_error:
            named[rid] = verdict
        if not ids_in_error:
            anonymous.append(verdict)
    out: dict[tuple[str, str], tuple[str, bool]] = {}
    for rid in ids:
        if rid in named:
            out[(object_type, rid)] = named[rid]
        elif rid not in written:
            reason, retriable = anonymous[0] if anonymous else ("not confirmed by HubSpot", True)
            out[(object_type, rid)] = (reason, retriable)
    return out


def _error_ids(error: dict[str, Any]) -> list[str]:
    context = error.get("context") or {}
    ids = context.get("ids") or context.get("id") or []
    return [str(i) for i in (ids if isinstance(ids, list) else [ids])]


class HubSpotReader:
    """Reads written properties back with batch read (100 records a call)."""

    def __init__(self, client: HubSpotClient) -> None:
        self.client = client

    async def read(self, fields: Sequence[FieldKey]) -> dict[FieldKey, float | int | str | None]:
        by_object: dict[str, dict[str, set[str]]] = {}
        for obj, rid, name in fields:
            by_object.setdefault(obj, {}).setdefault(rid, set()).add(name)
        out: dict[FieldKey, float | int | str | None] = {}
        for obj, records in by_object.items():
            names = sorted({n for ns in records.values() for n in ns})
            for record in await self.client.batch_read(obj, sorted(records), names):
                rid = str(record.get("id"))
                props = record.get("properties") or {}
                for name in records.get(rid, ()):
                    if name in props:
                        out[(obj, rid, name)] = held_value(props[name])
        return out
