"""What a canonical field is: record keys, field types, the built-in objects' schemas, and the
fields every record's typed values also hold."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum

SOURCE_FIELD = "source"
"""Every record's typed values also hold its ``source`` (``where: {source: config}``)."""
ID_FIELD = "id"
"""... and its ``id`` (what a ``distinct ... among`` measure matches values with)."""


RecordKey = tuple[str, str, str]
"""(source, object, id): the identity of a record."""

TypedValue = int | str | date | bool | None


class FieldType(StrEnum):
    """How a canonical field is typed."""

    TIME = "time"
    AMOUNT = "amount"
    NUMBER = "number"
    DATE = "date"
    STRING = "string"


ObjectSchema = Mapping[str, FieldType | frozenset[str]]
"""Field name to type; a frozenset is an enumeration of allowed string values."""


_T, _A, _N, _D, _S = (
    FieldType.TIME,
    FieldType.AMOUNT,
    FieldType.NUMBER,
    FieldType.DATE,
    FieldType.STRING,
)
_PERIODS = frozenset({"month", "quarter", "year"})
_CHANGED: dict[str, FieldType] = {"modified_by": _S, "modified_at": _T}
"""Who changed a record last (a user id, as in ``owner_id``) and when: CRM adoption."""

BUILTIN_OBJECTS: dict[str, ObjectSchema] = {
    "account": {
        "owner_id": _S,
        "domain": _S,
        "customer_since": _T,
        "churned_at": _T,
        "created_at": _T,
        **_CHANGED,
    },
    "contact": {
        "account_id": _S,
        "owner_id": _S,
        "email": _S,
        "lifecycle": frozenset({"lead", "qualified", "customer", "other"}),
        "created_at": _T,
        "converted_at": _T,
        **_CHANGED,
    },
    "deal": {
        "account_id": _S,
        "owner_id": _S,
        "pipeline": _S,
        "stage": _S,
        "stage_entered_at": _T,
        "status": frozenset({"open", "won", "lost"}),
        "type": frozenset({"new", "upsell", "renewal", "other"}),
        "amount": _A,
        "created_at": _T,
        "closed_at": _T,
        **_CHANGED,
    },
    "ticket": {
        "account_id": _S,
        "owner_id": _S,
        "status": frozenset({"open", "closed"}),
        "created_at": _T,
        "closed_at": _T,
        "first_response_at": _T,
        **_CHANGED,
    },
    "activity": {
        "owner_id": _S,
        "account_id": _S,
        "type": frozenset({"call", "email", "meeting", "task", "note"}),
        "occurred_at": _T,
        **_CHANGED,
    },
    "survey_response": {
        "account_id": _S,
        "contact_id": _S,
        "survey": frozenset({"nps", "csat"}),
        "score": _N,
        "submitted_at": _T,
    },
    "user": {
        "email": _S,
        "created_at": _T,
        "deactivated_at": _T,
    },
    "quota": {
        "owner_id": _S,
        "period": _PERIODS,
        "period_start": _D,
        "amount": _A,
    },
    "spend": {
        "category": frozenset({"acquisition", "retention"}),
        "period": _PERIODS,
        "period_start": _D,
        "amount": _A,
    },
}
