"""Canonical change events (metrics-spec section 1) and the typing of their fields.

An :class:`Event` is what every connector produces and what the engine consumes. Its
``fields`` are kept exactly as received (unknown fields included); :attr:`Event.values`
holds the same fields typed for computation:

* times (ISO 8601 with an offset or ``Z``) become integer milliseconds since the epoch;
* amounts and numbers become integer micro-units (value x 1,000,000, rounded half-even),
  so sums and their retractions are exact whatever the order of events;
* dates (``period_start``) become :class:`datetime.date`;
* strings are interned, since the same owner, account and stage ids repeat millions of times.

A field that cannot be typed makes the whole event invalid, with a message naming the field.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

__all__ = [
    "BUILTIN_OBJECTS",
    "ID_FIELD",
    "MICRO",
    "SOURCE_FIELD",
    "Event",
    "FieldType",
    "ObjectSchema",
    "RecordKey",
    "canonical_json",
    "parse_amount",
    "parse_date",
    "parse_time",
    "supersedes",
    "type_fields",
]

MICRO = 1_000_000
SOURCE_FIELD = "source"
"""Every record's typed values also hold its ``source`` (``where: {source: config}``)."""
ID_FIELD = "id"
"""... and its ``id`` (what a ``distinct ... among`` measure matches values with)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
"""Amounts and numbers are held as integers in millionths."""

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

BUILTIN_OBJECTS: dict[str, ObjectSchema] = {
    "account": {
        "owner_id": _S,
        "domain": _S,
        "customer_since": _T,
        "churned_at": _T,
        "created_at": _T,
    },
    "contact": {
        "account_id": _S,
        "owner_id": _S,
        "email": _S,
        "lifecycle": frozenset({"lead", "qualified", "customer", "other"}),
        "created_at": _T,
        "converted_at": _T,
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
    },
    "ticket": {
        "account_id": _S,
        "owner_id": _S,
        "status": frozenset({"open", "closed"}),
        "created_at": _T,
        "closed_at": _T,
        "first_response_at": _T,
    },
    "activity": {
        "owner_id": _S,
        "account_id": _S,
        "type": frozenset({"call", "email", "meeting", "task", "note"}),
        "occurred_at": _T,
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


def parse_time(value: Any) -> int:
    """ISO 8601 time with an offset or ``Z`` -> integer epoch milliseconds."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 time string, got {_show(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 time with an offset or Z, got {_show(value)}"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"time {_show(value)} has no offset; add 'Z' or '+00:00'")
    return (parsed - _EPOCH) // _MS


_PLAIN_AMOUNT = re.compile(r"(-?)(\d{1,18})(?:\.(\d{1,6}))?")


def parse_amount(value: Any) -> int:
    """Decimal string or JSON number -> integer micro-units (half-even rounding)."""
    # fast paths, exact without rounding: an integer, a plain string with at most 6 decimals
    kind = type(value)
    if kind is int:
        return int(value) * MICRO
    if kind is str:
        plain = _PLAIN_AMOUNT.fullmatch(value)
        if plain is not None:
            sign, whole, frac = plain.groups()
            micro = int(whole) * MICRO + (int(frac.ljust(6, "0")) if frac else 0)
            return -micro if sign else micro
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a decimal number or string, got {_show(value)}")
    try:
        dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"expected a decimal number, got {_show(value)}") from None
    if not dec.is_finite():
        raise ValueError(f"expected a finite number, got {_show(value)}")
    try:
        return int((dec * MICRO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    except InvalidOperation:  # more digits than the decimal context holds
        raise ValueError(f"amount out of range: {_show(value)}") from None


def parse_date(value: Any) -> date:
    """``YYYY-MM-DD`` -> :class:`datetime.date`."""
    if not isinstance(value, str):
        raise ValueError(f"expected a date like '2026-01-01', got {_show(value)}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected a date like '2026-01-01', got {_show(value)}") from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _enumeration(kind: frozenset[str]) -> Callable[[Any], TypedValue]:
    canonical = {value: sys.intern(value) for value in kind}
    allowed = ", ".join(sorted(kind))

    def one_of(value: Any) -> TypedValue:
        try:
            return canonical[value]
        except (KeyError, TypeError):  # TypeError: an unhashable value (a list, an object)
            raise ValueError(f"expected one of {allowed}, got {_show(value)}") from None

    return one_of


def _string(value: Any) -> TypedValue:
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return sys.intern(str(value))
    raise ValueError(f"expected a string, got {_show(value)}")


_CONVERTERS: dict[FieldType, Callable[[Any], TypedValue]] = {
    FieldType.TIME: parse_time,
    FieldType.AMOUNT: parse_amount,
    FieldType.NUMBER: parse_amount,
    FieldType.DATE: parse_date,
    FieldType.STRING: _string,
}
_SCHEMA_CONVERTERS: dict[int, tuple[ObjectSchema, dict[str, Callable[[Any], TypedValue]]]] = {}


def _converters(schema: ObjectSchema) -> dict[str, Callable[[Any], TypedValue]]:
    """Field name -> function typing its value, built once per schema (the parsing hot path)."""
    cached = _SCHEMA_CONVERTERS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    converters = {
        name: _enumeration(kind) if isinstance(kind, frozenset) else _CONVERTERS[kind]
        for name, kind in schema.items()
    }
    if len(_SCHEMA_CONVERTERS) >= 256:  # schemas are few and long-lived; bound it anyway
        _SCHEMA_CONVERTERS.clear()
    _SCHEMA_CONVERTERS[id(schema)] = (schema, converters)
    return converters


def type_fields(schema: ObjectSchema | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Type every field the schema knows; keep the others as they are.

    Raises ``ValueError`` naming the first field that cannot be typed.
    """
    if schema is None:
        return dict(fields)
    converters = _converters(schema)
    typed: dict[str, Any] = {}
    for name, value in fields.items():
        convert = converters.get(name)
        if convert is None or value is None:
            typed[name] = value
            continue
        try:
            typed[name] = convert(value)
        except ValueError as exc:
            raise ValueError(f"fields.{name}: {exc}") from None
    return typed


class Event(BaseModel):
    """One canonical change event: an upsert with the record's complete state, or a delete."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    source: str = Field(min_length=1)
    object: str = Field(min_length=1)
    id: str = Field(min_length=1)
    op: Literal["upsert", "delete"]
    version: int
    fields: dict[str, Any] = Field(default_factory=dict)

    _values: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _integral_version(cls, value: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"expected an integer version, got {value!r}")
        return value

    @model_validator(mode="after")
    def _type_known_fields(self) -> Event:
        if self.op == "upsert":
            self._values = type_fields(BUILTIN_OBJECTS.get(self.object), self.fields)
            self._values.setdefault(SOURCE_FIELD, self.source)
            self._values.setdefault(ID_FIELD, self.id)
        return self

    @property
    def key(self) -> RecordKey:
        return (self.source, self.object, self.id)

    def replaces(self, other: Event) -> bool:
        """Whether this event wins over ``other`` (same record) under the tie rule."""
        return supersedes(
            self.version,
            self.op,
            self.canonical if self.op == "upsert" else None,
            other.version,
            other.op == "delete",
            other.canonical if other.op == "upsert" else None,
        )

    @property
    def canonical(self) -> str:
        """The fields as canonical JSON (sorted keys, no spaces): the tie-breaker between two
        upserts of one record with the same version (see :func:`supersedes`)."""
        return canonical_json(self.fields)

    @property
    def values(self) -> dict[str, Any]:
        """The fields, typed (see the module docstring); empty for a delete."""
        # read the private dict directly: pydantic's __getattr__ path for private attributes
        # costs about 3 µs a call, more than the engine spends on most events
        return cast("dict[str, Any]", self.__pydantic_private__["_values"])  # type: ignore[index]

    def with_schema(self, schema: ObjectSchema) -> Event:
        """Re-type the fields with a schema from the configuration (custom objects)."""
        if self.op == "upsert":
            self._values = type_fields(schema, self.fields)
            self._values.setdefault(SOURCE_FIELD, self.source)
            self._values.setdefault(ID_FIELD, self.id)
        return self


def canonical_json(fields: Mapping[str, Any]) -> str:
    """``fields`` as canonical JSON: sorted keys, no spaces, non-ASCII kept as is."""
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def supersedes(
    version: int,
    op: str,
    tie: str | None,
    old_version: int | None,
    old_deleted: bool,
    old_tie: str | None,
) -> bool:
    """Whether an event (``version``, ``op``, ``tie`` = its canonical fields, None for a delete)
    replaces a record state (``old_version`` None: nothing known yet).

    A greater version wins. At equal versions a delete wins over an upsert, and between two
    upserts the one whose fields serialise greater as canonical JSON wins; so the final state
    never depends on the order in which the events arrive (metrics-spec section 6).
    """
    if old_version is None or version > old_version:
        return True
    if version < old_version or old_deleted:
        return False
    if op == "delete":
        return True
    return old_tie is None or (tie is not None and tie > old_tie)
