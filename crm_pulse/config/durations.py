"""Durations written the way people write them: ``250ms``, ``30s``, ``5m``, ``1h``, ``2d``.

A duration is one or more ``<number><unit>`` parts with no spaces (``1h30m``, ``1.5h``); units are
``ms``, ``s``, ``m``, ``h`` and ``d``. It is held as a number of seconds (a float). A bare number is
refused, since ``30`` could mean seconds or minutes: write the unit.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["Duration", "format_duration", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")


def parse_duration(value: Any) -> float:
    """``'30s'`` -> 30.0, ``'250ms'`` -> 0.25, ``'1h30m'`` -> 5400.0; raise ValueError otherwise.

    The error reads ``expected a duration like '30s', got 'often'``.
    """
    if isinstance(value, str):
        text = value.strip()
        if _WHOLE.match(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
            if math.isfinite(seconds):
                return seconds
    hint = ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        hint = " (add a unit: ms, s, m, h or d)"
    raise ValueError(f"expected a duration like '30s', got {_show(value)}{hint}")


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds``: 30.0 -> '30s', 5400.0 -> '90m'."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds // size)}{unit}"
    millis = seconds * 1000
    if float(millis).is_integer():
        return f"{int(millis)}ms"
    return f"{seconds:g}s"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: a duration string in the file, seconds (float) in the model."""
