"""Writing custom fields: one PATCH per record (Pipedrive has no batch update).

All writes to one record in a batch are coalesced into one ``PATCH /api/v2/<entity>/<id>`` with
``{"custom_fields": {<hash key>: value}}``; field names are resolved to hash keys through
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

from collections.abc import Sequence
from typing import Any

from ...errors import RateLimited, RetriableError, SkippableError
from ..protocols import FieldWrite, WriteResult
from .client import PipedriveClient
from .mapping import FieldKeys

__all__ = ["PipedriveSink"]

ENTITY = {
    "deal": "deals",
    "deals": "deals",
    "person": "persons",
    "persons": "persons",
    "organization": "organizations",
    "organizations": "organizations",
}


class PipedriveSink:
    max_batch = 50  # writes per round; one PATCH per distinct record in it

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
        for (entity, rid), values in groups.items():
            try:
                await self.client.patch(entity, rid, {"custom_fields": values})
            except RateLimited:
                raise
            except RetriableError as exc:
                failed[(entity, rid)] = (str(exc), True)
            except SkippableError as exc:
                failed[(entity, rid)] = (str(exc), False)
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
