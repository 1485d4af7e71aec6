"""The bounds every event is held to (:data:`LIMITS`), and the checks of its text and untyped
fields."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)
_MIN_MS = (MIN_TIME - _EPOCH) // _MS
_MAX_MS = (MAX_TIME - _EPOCH) // _MS
MAX_AMOUNT = 10**15
"""Amounts and numbers must be below this in magnitude (a quadrillion of any currency)."""
MAX_NUMBER_CHARS = 40
MAX_NAME = 100
"""Longest ``source`` and ``object``."""
MAX_ID = 255
MAX_VALUE = 1_024
"""Longest value of a typed string field (owner, account, stage ids: they become groups)."""
MAX_TEXT = 10_000
"""Longest string anywhere else in ``fields`` (names and untyped values)."""
MAX_FIELDS = 500
MAX_NESTING = 16
MAX_ITEMS = 10_000
"""Most values (all levels) inside ``fields``."""
MAX_VERSION = 2**63

LIMITS: dict[str, object] = {
    "time": "1900-01-01T00:00:00Z <= t < 2200-01-01T00:00:00Z",
    "date": "1900-01-01 <= d < 2200-01-01",
    "amount": f"finite, |x| < 10^15, at most {MAX_NUMBER_CHARS} characters",
    "source/object length": MAX_NAME,
    "id length": MAX_ID,
    "typed string length": MAX_VALUE,
    "other string length": MAX_TEXT,
    "fields": MAX_FIELDS,
    "nesting": MAX_NESTING,
    "values in fields": MAX_ITEMS,
    "version": "integer, |v| < 2^63",
}
"""The bounds every event is held to (docs/runtime.md lists them)."""


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**50:
        return f"an integer of about {len(str(abs(value) // 10**50)) + 50} digits"
    if isinstance(value, str) and len(value) > 200:
        value = value[:200]
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_text(value: str, limit: int = MAX_TEXT) -> str:
    """``value`` if it is at most ``limit`` characters of valid Unicode text, else ValueError.

    A lone surrogate (``"\\ud800"`` in JSON) is refused: it cannot be written as UTF-8 and
    would poison every later reader of the stored event.
    """
    if len(value) > limit:
        raise ValueError(f"text of {len(value)} characters; at most {limit} accepted")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"not valid Unicode text: a lone surrogate at character {exc.start}"
            ) from None
    return value


def _check_tree(value: Any, path: str, depth: int, budget: list[int]) -> None:
    """Bounds of an untyped value inside ``fields`` (any JSON value)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"fields: more than {MAX_ITEMS} values")
    kind = type(value)
    if kind is str:
        try:
            check_text(value)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    elif kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{path}: expected a finite number, got {value!r}")
    elif kind is int:
        if not -(10**30) < value < 10**30:
            raise ValueError(f"{path}: integer out of range (|x| < 10^30)")
    elif kind is dict or kind is list:
        if depth >= MAX_NESTING:
            raise ValueError(f"{path}: nested more than {MAX_NESTING} deep")
        if kind is dict:
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"{path}: a key is not text")
                check_text(key, MAX_NAME)
                _check_tree(item, f"{path}.{key}", depth + 1, budget)
        else:
            for i, item in enumerate(value):
                _check_tree(item, f"{path}[{i}]", depth + 1, budget)
    elif value is not None and kind is not bool:
        raise ValueError(f"{path}: not a JSON value ({kind.__name__})")


def check_fields(fields: Mapping[str, Any]) -> None:
    """Bounds of an event's ``fields`` (see :data:`LIMITS`); ValueError naming the field.

    Written for the hot path: ASCII names and strings, small integers and None cost a few
    comparisons each; anything else goes through :func:`_check_tree`."""
    if len(fields) > MAX_FIELDS:
        raise ValueError(f"fields: {len(fields)} fields; at most {MAX_FIELDS} accepted")
    budget = [MAX_ITEMS]
    for name, value in fields.items():
        if len(name) > MAX_NAME or not name.isascii():
            try:
                check_text(name, MAX_NAME)
            except ValueError as exc:
                raise ValueError(f"fields: a field name: {exc}") from None
        kind = type(value)
        if kind is str:
            if len(value) > MAX_TEXT or not value.isascii():
                try:
                    check_text(value)
                except ValueError as exc:
                    raise ValueError(f"fields.{name}: {exc}") from None
        elif value is None or kind is bool or (kind is int and -_BIG < value < _BIG):
            pass
        else:
            _check_tree(value, f"fields.{name}", 1, budget)
    budget[0] -= len(fields)
    if budget[0] < 0:
        raise ValueError(f"fields: more than {MAX_ITEMS} values")


_BIG = 10**30
