"""Errors as monday words them, by the request's ``API-Version``: a refusal (HTTP status,
body, headers), GraphQL errors, the complexity budget and expired cursors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import (
    _VERSION,
    CURSOR_EXPIRED,
)


class _Refusal(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: Mapping[str, str] = {}):
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = dict(headers)


def _error(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code, **extra}}]}


def _legacy(version: str) -> bool:
    """API versions before 2025-01 answer errors in the old top-level format."""
    return version < "2025-01"


def _complexity_error(wait: int, cost: int, left: int, limit: int) -> dict[str, Any]:
    """The complexity-budget error of the request's API version (HTTP 200)."""
    version = _VERSION.get()
    if _legacy(version):
        message = (
            f"Complexity budget exhausted, query cost {cost} budget remaining {left} "
            f"out of {limit} reset in {wait} seconds"
        )
        return {
            "error_code": "ComplexityException",
            "status_code": 429,
            "error_message": message,
            "error_data": {},
            "errors": [message],
        }
    extra: dict[str, Any] = {"retry_in_seconds": wait}
    if version < "2025-07":  # simplified in 2025-07: no budget fields, no status_code
        extra.update(
            complexity=cost,
            complexity_budget_left=left,
            complexity_budget_limit=limit,
            status_code=429,
        )
    return _error("Complexity budget exhausted", "COMPLEXITY_BUDGET_EXHAUSTED", **extra)


def _cursor_expired() -> dict[str, Any]:
    if _legacy(_VERSION.get()):
        return {
            "error_code": "CursorException",
            "status_code": 200,
            "error_message": CURSOR_EXPIRED,
            "error_data": {},
        }
    return _error(CURSOR_EXPIRED, "CursorException", status_code=200)
