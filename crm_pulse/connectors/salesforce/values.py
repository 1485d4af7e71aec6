"""Salesforce values as canonical ones: times and dates (REST ``...000+0000``, Outbound Messages
``...000Z``, dates at noon UTC) to epoch ms and ISO text, SOQL time literals, checkboxes,
numbers as canonical decimal text, and a website's domain."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ...errors import DataError


def _parse(value: Any) -> datetime | date | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    if len(text) == 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise DataError(f"not a date: {text[:40]!r}") from None
        if not 1900 <= day.year < 2200:
            raise DataError(f"date outside 1900..2200: {text!r}")
        return day
    # Salesforce writes offsets as +0000; fromisoformat wants +00:00 on Python 3.11
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise DataError(f"not a date or time: {str(value)!r}") from None
    if not 1900 <= parsed.year < 2200:
        raise DataError(f"date or time outside 1900..2200: {str(value)[:40]!r}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_UTC_MS = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})(?:\+0000|Z)")
"""The form of nearly every time Salesforce sends: REST ``2026-01-02T09:00:00.000+0000``,
Outbound Messages ``...000Z`` (UTC, milliseconds). Its canonical text is its own first 23
characters and a ``Z``: no datetime arithmetic or formatting is needed (five times a record)."""
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_NOON = timedelta(hours=12)


def _utc_ms(value: Any) -> datetime | None:
    """``value`` (naive, UTC) when it is a valid time in the common UTC form, else None (the
    general path then converts it, or says why it cannot)."""
    if type(value) is not str:
        return None
    match = _UTC_MS.fullmatch(value)
    if match is None:
        return None
    try:
        parsed = datetime.fromisoformat(match.group(1))
    except ValueError:  # month 13 and the like: the general path words the error
        return None
    return parsed if 1900 <= parsed.year < 2200 else None


def to_ms(value: Any) -> int | None:
    """A Salesforce datetime (``2026-01-02T09:00:00.000+0000``) or date -> epoch ms (exact
    integer arithmetic, floored to the millisecond; a date is noon UTC of that date)."""
    fast = _utc_ms(value)
    if fast is not None:
        return (fast - _EPOCH) // _MS
    parsed = _parse(value)
    if parsed is None:
        return None
    if not isinstance(parsed, datetime):
        return (datetime(parsed.year, parsed.month, parsed.day) + _NOON - _EPOCH) // _MS
    return (parsed - _EPOCH_UTC) // _MS


def to_iso(value: Any) -> str | None:
    """Canonical ISO time (``...Z``, milliseconds); a date becomes noon UTC of that date."""
    if _utc_ms(value) is not None:
        return f"{value[:23]}Z"
    ms = to_ms(value)
    if ms is None:
        return None
    return f"{(_EPOCH + ms * _MS).isoformat(timespec='milliseconds')}Z"


def format_soql_time(ms: int) -> str:
    """A SOQL datetime literal for ``ms``, floored to the second (SOQL literals have no
    fraction)."""
    return datetime.fromtimestamp(max(0, ms) // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _flag(value: Any) -> bool:
    """A checkbox: JSON true/false from REST, ``"true"``/``"false"`` from Outbound Messages."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _decimal(value: Any) -> Any:
    """A number as a canonical decimal string: REST sends ``1200.0``, Outbound Messages
    ``"1200.0"``; both become ``"1200"``, so the two paths give identical events. A value that
    is not a number is passed on for the Event to refuse with its own message."""
    if value is None or value == "" or isinstance(value, bool):
        return None if value == "" else value
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return value
    if not number.is_finite():
        return value
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _domain(value: Any) -> str | None:
    """Account.Website (``https://www.acme.com/about``) -> ``acme.com``."""
    if value in (None, ""):
        return None
    text = str(value).strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0]
    return text.removeprefix("www.") or None
