"""Reading JSON from outside (webhooks, the ingress, stored requests) within bounds.

:func:`loads` is what every receiver uses instead of ``json.loads``: it refuses, with a
:class:`~crm_pulse.errors.DataError` naming the reason, a body nested deeper than
:data:`MAX_DEPTH` (``json.loads`` would recurse once per level and raise ``RecursionError``
around 1,000), an integer literal of more digits than Python converts (about 4,300), text that
is not UTF-8, and anything else that is not JSON. Nothing raised here is a 5xx.

The depth is measured before decoding, by scanning only the brackets outside strings (the
string contents are removed with one regular expression, in C), so a deep body costs a scan and
not a recursion.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import DataError

__all__ = ["MAX_DEPTH", "depth_of", "loads"]

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in any JSON body."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def depth_of(data: bytes) -> int:
    """How deeply arrays and objects nest in ``data`` (JSON text; an estimate for non-JSON)."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return data.count(b"[") + data.count(b"{")
    deepest = depth = 0
    for bracket in _BRACKET.findall(_STRING.sub(b'""', data)):
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH, what: str = "body") -> Any:
    """``json.loads`` within bounds; :class:`DataError` saying why not."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    deepest = depth_of(raw)
    if deepest > max_depth:
        raise DataError(f"{what}: JSON nested {deepest} deep; at most {max_depth} accepted")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{what} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError:
        raise DataError(f"{what} is not UTF-8 text") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise DataError(f"{what}: JSON nested too deep") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise DataError(f"{what}: a number is too long ({str(exc)[:80]})") from None
