"""Canonical events, as a connector makes them.

Every connector turns its CRM's records into :class:`~crm_pulse.metrics.events.Event` objects:
an **upsert** carries the record's complete current state in canonical fields, a **delete**
only its identity. ``version`` orders the states of one record (use the CRM's last-modified
time in milliseconds): an older version never overwrites a newer one, so pages may overlap and
webhooks may race polls.

The canonical objects and their fields (metrics-spec section 1) are :data:`CANONICAL_FIELDS`;
a field a connector cannot fill is left out, never guessed. Values are strings or JSON numbers
as they come: times in ISO 8601 with an offset, amounts as decimal strings, dates as
``YYYY-MM-DD``, enumerations as one of their listed values.

=================  ===============================================================
object             fields
=================  ===============================================================
account            owner_id, domain, customer_since, churned_at, created_at
contact            account_id, owner_id, email, lifecycle (lead/customer/other),
                   created_at, converted_at
deal               account_id, owner_id, pipeline, stage, stage_entered_at,
                   status (open/won/lost), type (new/upsell/renewal/other), amount,
                   created_at, closed_at
ticket             account_id, owner_id, status (open/closed), created_at, closed_at
activity           owner_id, account_id, type (call/email/meeting/task/note), occurred_at
survey_response    account_id, contact_id, survey (nps/csat), score, submitted_at
quota, spend       made from the deployment file, not by connectors
=================  ===============================================================

:func:`upsert` and :func:`delete` build events and turn a value that does not fit its field
into a :class:`~crm_pulse.errors.DataError` naming the record; :func:`map_records` applies a
record-to-event function to a batch and sets aside the records it cannot map as
:class:`~crm_pulse.connectors.protocols.BadRecord` -- put them in the
:class:`~crm_pulse.connectors.protocols.Page`'s ``skipped`` and the runtime quarantines them
(skipped, counted, kept with their reason) while the page's good events go on.

:func:`time_ms` and :func:`iso_time` turn a vendor's ISO date or date-time text into epoch
milliseconds and back, refusing times outside the canonical range (1900..2200) as a
:class:`~crm_pulse.errors.DataError`, so every connector bounds times the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from ..errors import DataError
from ..metrics.decode import trusted_event
from ..metrics.events import BUILTIN_OBJECTS, Event, FieldType, ObjectSchema
from ..metrics.jsonl import parse_line
from .protocols import BadRecord

__all__ = [
    "CANONICAL_FIELDS",
    "FieldType",
    "delete",
    "event_from_json",
    "iso_time",
    "make_event",
    "map_records",
    "time_ms",
    "upsert",
    "user_record",
]

CANONICAL_FIELDS: Mapping[str, ObjectSchema] = BUILTIN_OBJECTS
"""Canonical object -> field name -> :class:`FieldType` (or the set of allowed values)."""

R = TypeVar("R")


def time_ms(value: Any) -> int | None:
    """A vendor's ISO 8601 date (``2026-11-02``, midnight UTC) or date-time (``T`` or a space
    between, ``Z`` or an offset; none means UTC) -> epoch milliseconds; ``None`` or ``""`` ->
    ``None``. A time outside 1900..2200 (the canonical bound) is a :class:`DataError`."""
    if value is None or value == "":
        return None
    text = str(value).strip().replace(" ", "T")
    if len(text) == 10:
        text += "T00:00:00"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"not a date or time: {str(value)[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not 1900 <= parsed.year < 2200:
        raise DataError(f"date or time outside 1900..2200: {str(value)[:40]!r}")
    return int(parsed.timestamp() * 1000)


def iso_time(ms: int | None) -> str | None:
    """Epoch milliseconds -> canonical ISO text in UTC (``2026-11-02T10:00:00Z``)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def upsert(
    source: str, object: str, id: str | int, version: int, fields: Mapping[str, Any]
) -> Event:
    """The current state of a record; ``fields`` in canonical names. A field of a canonical
    object outside :data:`CANONICAL_FIELDS` or a value that does not fit its type is a
    :class:`~crm_pulse.errors.DataError` naming the record and the field."""
    schema = CANONICAL_FIELDS.get(object)
    if schema is not None:
        unknown = sorted(set(fields) - set(schema))
        if unknown:
            raise DataError(
                f"not canonical {object} field(s): {', '.join(unknown)}", where=f"{object} {id}"
            )
    return _event(source, object, id, "upsert", version, dict(fields))


def user_record(
    source: str,
    id: str | int,
    *,
    email: Any,
    created_at: str | None,
    changed_ms: int,
    changed_at: str | None,
    deactivated: bool,
) -> Event:
    """A CRM user (owner, rep) as a canonical ``user`` record, versioned by its last change.
    Vendors give no deactivation date: a deactivated user's last change stands for it, and
    its version is one above that change's, so it wins over an upsert of the same instant.
    ``changed_at`` is ``changed_ms`` as the connector writes times (its canonical text)."""
    fields = {
        "email": str(email) if email else None,
        "created_at": created_at,
        "deactivated_at": changed_at if deactivated else None,
    }
    return upsert(source, "user", id, changed_ms + 1 if deactivated else changed_ms, fields)


def delete(source: str, object: str, id: str | int, version: int) -> Event:
    """The record is gone (deleted, archived, merged away)."""
    return _event(source, object, id, "delete", version, {})


def make_event(
    source: str,
    object: str,
    id: str | int,
    op: Literal["upsert", "delete"],
    version: int,
    fields: dict[str, Any] | None = None,
) -> Event:
    """``Event(source=..., ...)``, cheaper: the usual event (ASCII names, an integer version,
    plain fields) is checked and built directly (:func:`~crm_pulse.metrics.decode.trusted_event`,
    about a third of pydantic's validation); anything else is validated by pydantic, so the
    event, or the ``ValidationError``, is the one ``Event(...)`` gives. ``fields`` is kept, not
    copied: pass a dict of the caller's own."""
    data = {
        "source": source,
        "object": object,
        "id": id,
        "op": op,
        "version": version,
        "fields": {} if fields is None else fields,
    }
    event = trusted_event(data)
    return event if event is not None else Event.model_validate(data)


def _event(
    source: str,
    object: str,
    id: str | int,
    op: Literal["upsert", "delete"],
    version: int,
    fields: dict[str, Any],
) -> Event:
    try:
        return make_event(source, object, id, op, version, fields)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".lstrip(": ") for e in exc.errors()
        )
        raise DataError(reasons, where=f"{object} {id}") from None


def event_from_json(text: str, line: int) -> Event:
    """One canonical event written as a JSON object on line ``line`` (the JSONL format of the
    file connector and ``crm-pulse replay``); DataError naming the line otherwise."""
    return parse_line(text, line)


def map_records(
    records: Iterable[R],
    to_events: Callable[[R], Iterable[Event]],
    *,
    describe: Callable[[R], tuple[str, str]] = lambda record: ("record", ""),
) -> tuple[list[Event], list[BadRecord]]:
    """``to_events`` applied to every record: (events, records set aside). A record whose
    mapping raises :class:`~crm_pulse.errors.DataError` becomes a BadRecord with the reason;
    ``describe`` names a record as (object, id) for it."""
    events: list[Event] = []
    bad: list[BadRecord] = []
    for record in records:
        try:
            events.extend(to_events(record))
        except DataError as exc:
            object, id = describe(record)
            bad.append(BadRecord(object, id, exc.reason, where=exc.where))
    return events, bad
