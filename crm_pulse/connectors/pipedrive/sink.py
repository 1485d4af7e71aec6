"""Writing custom fields: one PATCH per record (Pipedrive has no batch update).

All writes to one record in a batch are coalesced into one ``PATCH /api/v2/<entity>/<id>`` with
``{"custom_fields": {<hash key>: value}}``; a round's PATCHes are sent concurrently, paced by the
client's burst window (:class:`~.client.TokenBudget`: never more requests per rolling two seconds
than the plan allows), since one PATCH after the other would use a fraction of it; field names are resolved to hash keys through
:class:`~.mapping.FieldKeys`. A ``monetary`` field takes ``{"value": <number>, "currency":
<code>}`` in API v2 (the ``currency`` setting, else the company's default currency); other
number fields take the number (never a string: v2 does not convert them).
A 429 raises RateLimited (the outbox retries after Retry-After);
a record that is gone fails permanently (dead letter); an unknown field name fails as retriable
(``crm-pulse provision`` may be creating it in another process; the definitions are read again)
with a message naming it and ``crm-pulse provision``, and becomes a dead letter once the
outbox's attempts run out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ...errors import RateLimited, RetriableError, SkippableError
from ..protocols import FieldKey, FieldWrite, WriteResult
from ..readback import held_value
from .client import PipedriveClient
from .mapping import FieldKeys

__all__ = ["PipedriveReader", "PipedriveSink"]

ENTITY = {
    "deal": "deals",
    "deals": "deals",
    "person": "persons",
    "persons": "persons",
    "organization": "organizations",
    "organizations": "organizations",
}


class PipedriveSink:
    max_batch = 100  # writes per round; one PATCH per distinct record in it, sent concurrently
    rounds_in_flight = 2  # the client holds every request under the burst window (from its answer)

    def __init__(
        self, client: PipedriveClient, keys: FieldKeys, currency: str | None = None
    ) -> None:
        self.client = client
        self.keys = keys
        self.currency = currency
        """Currency of money values; None: the company's default, read once."""

    async def _currency(self) -> str:
        if self.currency is None:
            self.currency = await self.client.default_currency()
            if self.currency is None:
                raise SkippableError(
                    "Pipedrive names no default currency: set `currency` on the connector"
                )
        return self.currency

    async def _value(self, entity: str, key: str, value: float | int | None) -> Any:
        if value is None or self.keys.field_type(entity, key) != "monetary":
            return value
        return {"value": value, "currency": await self._currency()}

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        problems: dict[int, str] = {}
        unknown: set[int] = set()  # a field not (yet) known: retried, it may be provisioned
        for i, w in enumerate(writes):
            entity = ENTITY.get(w.object)
            if entity is None:
                problems[i] = (
                    f"Pipedrive object {w.object!r} takes no custom fields (deal, person, organization)"
                )
                continue
            # retry=False: a 429 goes straight to the outbox, which waits Retry-After
            key = await self.keys.resolve(entity, w.field, retry=False)
            if key is None:
                problems[i] = f"no {entity} field named {w.field!r}: run `crm-pulse provision`"
                unknown.add(i)
                continue
            try:
                value = await self._value(entity, key, w.value)
            except RateLimited:
                raise
            except RetriableError as exc:  # the currency could not be read yet
                problems[i] = str(exc)
                unknown.add(i)
                continue
            except SkippableError as exc:
                problems[i] = str(exc)
                continue
            groups.setdefault((entity, w.record_id), {})[key] = value
        failed: dict[tuple[str, str], tuple[str, bool]] = {}
        # concurrent, but each PATCH waits for room in the client's burst window
        outcomes = await asyncio.gather(
            *(self.client.patch(e, r, {"custom_fields": v}) for (e, r), v in groups.items()),
            return_exceptions=True,
        )
        limited = [o for o in outcomes if isinstance(o, RateLimited)]
        if limited:  # the whole round waits; PATCHes already made set the same values again
            raise max(limited, key=lambda e: e.retry_after or 0.0)
        for target, outcome in zip(groups, outcomes, strict=True):
            if isinstance(outcome, RetriableError):
                failed[target] = (str(outcome), True)
            elif isinstance(outcome, SkippableError):
                failed[target] = (str(outcome), False)
            elif isinstance(outcome, BaseException):
                raise outcome
        results = []
        for i, w in enumerate(writes):
            if i in problems:
                results.append(WriteResult(w, ok=False, retriable=i in unknown, reason=problems[i]))
                continue
            failure = failed.get((ENTITY[w.object], w.record_id))
            results.append(
                WriteResult(w, ok=True)
                if failure is None
                else WriteResult(w, ok=False, retriable=failure[1], reason=failure[0])
            )
        return results


class PipedriveReader:
    """Reads written custom fields back, one GET per record."""

    def __init__(self, client: PipedriveClient, keys: FieldKeys) -> None:
        self.client = client
        self.keys = keys

    async def read(self, fields: Sequence[FieldKey]) -> dict[FieldKey, float | int | str | None]:
        by_record: dict[tuple[str, str], list[str]] = {}
        for obj, rid, name in fields:
            by_record.setdefault((obj, rid), []).append(name)
        out: dict[FieldKey, float | int | str | None] = {}
        for (obj, rid), names in by_record.items():
            entity = ENTITY.get(obj)
            if entity is None:
                continue
            record = await self.client.get(entity, rid)
            if record is None:
                continue
            custom = record.get("custom_fields") or {}
            for name in names:
                key = await self.keys.resolve(entity, name)
                if key is not None and key in custom:
                    out[(obj, rid, name)] = held_value(custom[key])
        return out
