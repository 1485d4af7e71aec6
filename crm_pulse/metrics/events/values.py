"""Typing an event's fields: times, amounts and dates parsed, strings interned, enumerations
checked, one converter per schema field."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from .limits import (
    _EPOCH,
    _MAX_MS,
    _MIN_MS,
    _MS,
    MAX_AMOUNT,
    MAX_NUMBER_CHARS,
    MAX_TIME,
    MAX_VALUE,
    MIN_TIME,
    _show,
)
from .schema import FieldType, ObjectSchema, TypedValue

MICRO = 1_000_000
"""Amounts and numbers are held as integers in millionths."""


def parse_time(value: Any) -> int:
    """ISO 8601 time with an offset or ``Z`` -> integer epoch milliseconds."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError(f"expected an ISO 8601 time string, got {_show(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 time with an offset or Z, got {_show(value)}"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"time {_show(value)} has no offset; add 'Z' or '+00:00'")
    try:
        ms = (parsed - _EPOCH) // _MS
    except OverflowError:  # the year 0001 or 9999 pushed past the calendar by its offset
        raise _time_range(value) from None
    if not _MIN_MS <= ms < _MAX_MS:
        raise _time_range(value)
    return ms


def _time_range(value: Any) -> ValueError:
    return ValueError(f"time {_show(value)} is outside 1900-01-01..2200-01-01 (UTC)")


_PLAIN_AMOUNT = re.compile(r"(-?)(\d{1,18})(?:\.(\d{1,6}))?")


def parse_amount(value: Any) -> int:
    """Decimal string or JSON number -> integer micro-units (half-even rounding)."""
    # fast paths, exact without rounding: an integer, a plain string with at most 6 decimals
    kind = type(value)
    if kind is int:
        if -MAX_AMOUNT < value < MAX_AMOUNT:
            return int(value) * MICRO
        raise _amount_range(value)
    if kind is str:
        plain = _PLAIN_AMOUNT.fullmatch(value)
        if plain is not None:
            sign, whole, frac = plain.groups()
            units = int(whole)
            if units >= MAX_AMOUNT:  # by value: leading zeros are allowed
                raise _amount_range(value)
            micro = units * MICRO + (int(frac.ljust(6, "0")) if frac else 0)
            return -micro if sign else micro
        if len(value) > MAX_NUMBER_CHARS:
            raise ValueError(
                f"expected a decimal number of at most {MAX_NUMBER_CHARS} characters, "
                f"got {_show(value)}"
            )
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a decimal number or string, got {_show(value)}")
    try:
        dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"expected a decimal number, got {_show(value)}") from None
    except ValueError:  # an int with more digits than Python converts to text
        raise _amount_range(value) from None
    if not dec.is_finite():
        raise ValueError(f"expected a finite number, got {_show(value)}")
    if abs(dec) >= MAX_AMOUNT:
        raise _amount_range(value)
    try:
        return int((dec * MICRO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    except InvalidOperation:  # pragma: no cover - excluded by the magnitude check
        raise _amount_range(value) from None


def _amount_range(value: Any) -> ValueError:
    return ValueError(f"number out of range (|x| < 10^15): {_show(value)}")


def parse_date(value: Any) -> date:
    """``YYYY-MM-DD`` -> :class:`datetime.date`."""
    if not isinstance(value, str):
        raise ValueError(f"expected a date like '2026-01-01', got {_show(value)}")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected a date like '2026-01-01', got {_show(value)}") from None
    if not MIN_TIME.year <= parsed.year < MAX_TIME.year:
        raise ValueError(f"date {_show(value)} is outside 1900-01-01..2200-01-01")
    return parsed


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
    if type(value) is str or isinstance(value, str):
        if len(value) > MAX_VALUE:
            raise ValueError(f"text of {len(value)} characters; at most {MAX_VALUE} accepted")
        return sys.intern(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value) if -(10**30) < value < 10**30 else ""
        if not text or text in ("nan", "inf", "-inf"):
            raise ValueError(f"expected a string or an id, got {_show(value)}")
        return sys.intern(text)
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
