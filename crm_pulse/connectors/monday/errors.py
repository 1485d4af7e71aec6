"""The one place where monday API answers and httpx exceptions become crm-pulse errors.

monday's GraphQL API reports most failures inside a 200 answer (``errors`` with an
``extensions.code``), some with an HTTP status (401, 429, 5xx), and older API versions with a
top-level ``error_code`` / ``error_message``. All three are read here:

* 401, ``UserUnauthorizedException``, ``Unauthorized`` -> :class:`FatalError` (the token);
* 429, ``COMPLEXITY_BUDGET_EXHAUSTED`` / ``ComplexityException``, ``RATE_LIMIT_EXCEEDED``,
  ``DAILY_LIMIT_EXCEEDED``, ``maxConcurrencyExceeded``, ``IP_RATE_LIMIT_EXCEEDED`` ->
  :class:`RateLimited` with ``retry_in_seconds`` (or ``Retry-After`` read by the kit's
  :func:`wait_from_headers`, or "reset in N seconds" in the message);
* ``CursorExpiredError`` (or a message saying the cursor expired) -> :class:`CursorExpired`, a
  retriable error the source answers by starting a new ``items_page`` from its ``updated_at``
  mark;
* 5xx, ``INTERNAL_SERVER_ERROR``, network failures -> :class:`RetriableError`;
* anything else (``InvalidItemIdException``, ``InvalidColumnIdException``,
  ``ColumnValueException``, ``InvalidArgumentException``, parse errors...) ->
  :class:`SkippableError` with monday's message.

The token is never part of a message.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from .. import (
    CrmPulseError,
    FatalError,
    RateLimited,
    RetriableError,
    SkippableError,
    wait_from_headers,
)

__all__ = ["CursorExpired", "translate", "translate_answer"]

_RATE_CODES = frozenset(
    {
        "COMPLEXITY_BUDGET_EXHAUSTED",
        "ComplexityException",
        "RATE_LIMIT_EXCEEDED",
        "DAILY_LIMIT_EXCEEDED",
        "maxConcurrencyExceeded",
        "IP_RATE_LIMIT_EXCEEDED",
        "FIELD_LIMIT_EXCEEDED",
    }
)
_AUTH_CODES = frozenset({"UserUnauthorizedException", "Unauthorized", "USER_UNAUTHORIZED"})
_RESET = re.compile(r"reset in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


class CursorExpired(RetriableError):
    """An ``items_page`` cursor is older than monday keeps it (60 minutes)."""


def _seconds(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _first_error(data: Any) -> tuple[str, str, dict[str, Any]] | None:
    """(code, message, extensions) of the first error an answer body carries, or None."""
    if not isinstance(data, dict):
        return None
    if data.get("error_code") or data.get("error_message"):
        # the old format, read first: its ``errors`` beside it is a list of plain messages
        # (ComplexityException), which names no code
        return (
            str(data.get("error_code") or ""),
            str(data.get("error_message") or data.get("error_code")),
            {"retry_in_seconds": (data.get("error_data") or {}).get("retry_in_seconds")}
            if isinstance(data.get("error_data"), dict)
            else {},
        )
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0]
        if isinstance(first, dict):
            ext = first.get("extensions") if isinstance(first.get("extensions"), dict) else {}
            assert isinstance(ext, dict)
            return str(ext.get("code") or ""), str(first.get("message") or ""), ext
        return "", str(first), {}
    return None


def translate_answer(
    status: int, headers: httpx.Headers, data: Any, what: str
) -> CrmPulseError | None:
    """None when the answer is a success, else the error it means."""
    found = _first_error(data)
    if status < 400 and found is None:
        return None
    code, message, ext = found if found is not None else ("", "", {})
    message = message or f"HTTP {status}"
    if status == 429 or code in _RATE_CODES:
        wait = _seconds(ext.get("retry_in_seconds"))
        if wait is None:
            wait = wait_from_headers(headers)
        if wait is None:
            reset = _RESET.search(message)
            wait = float(reset.group(1)) if reset else None
        return RateLimited(f"monday rate limit during {what} ({code or status}): {message}", wait)
    if status == 401 or code in _AUTH_CODES:
        return FatalError(f"monday refused the API token during {what}: {message}")
    if status == 403:
        return FatalError(f"monday refused {what} (403: {message}): check the token's scopes")
    if code == "CursorExpiredError" or ("cursor" in message.lower() and "expired" in message):
        return CursorExpired(f"monday items_page cursor expired during {what}: {message}")
    if status >= 500 or code == "INTERNAL_SERVER_ERROR":
        return RetriableError(f"monday {status} during {what}: {message}")
    return SkippableError(f"monday refused {what} ({code or status}): {message}")


def translate(exc: BaseException, what: str) -> CrmPulseError:
    if isinstance(exc, CrmPulseError):
        return exc
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return RetriableError(f"monday unreachable during {what}: {type(exc).__name__}")
    if isinstance(exc, ValueError):  # a body that is not JSON
        return RetriableError(f"monday answered {what} with a body that is not JSON")
    return RetriableError(f"monday call failed during {what}: {type(exc).__name__}")
