"""The one place where Zoho answers and httpx exceptions become crm-pulse errors.

Zoho's errors are ``{"code": "...", "message": "...", "details": {...}, "status": "error"}``.
401 ``INVALID_TOKEN`` -> :class:`TokenExpired` (the client refreshes the access token once and
tries again); other 401s and 403 -> FatalError (credentials, scopes, permissions); 429 ->
RateLimited (Retry-After when sent); 5xx / network -> RetriableError; other 4xx ->
SkippableError with Zoho's code and message. No credential is ever part of a message.
"""

from __future__ import annotations

from typing import Any

import httpx

from ...errors import CrmPulseError, FatalError, RateLimited, RetriableError, SkippableError
from ...retry import wait_from_headers

__all__ = ["TokenExpired", "ZohoError", "error_code", "translate", "translate_status"]


class TokenExpired(RetriableError):
    """401 INVALID_TOKEN: the access token expired or was revoked; refresh and try again."""


class ZohoError(SkippableError):
    """A 4xx Zoho refused for this request only; ``code`` is Zoho's error code."""

    def __init__(
        self, message: str, code: str, status: int, results: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.results = results or []
        """Per-record answers when Zoho refused every record of a batch (``data``)."""


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    if isinstance(data, dict):
        inner = data.get("data")
        if isinstance(inner, list) and inner and isinstance(inner[0], dict) and "code" in data:
            return data
        if "code" not in data and isinstance(inner, list) and inner and isinstance(inner[0], dict):
            return dict(inner[0])
        return data
    return {}


def error_code(response: httpx.Response) -> tuple[str, str]:
    """(Zoho error code, message) of an answer; empty strings if it names none."""
    body = _body(response)
    return str(body.get("code") or ""), str(body.get("message") or response.reason_phrase)


def translate_status(response: httpx.Response, what: str) -> CrmPulseError | None:
    """None for a success, else the error this answer means."""
    status = response.status_code
    if status < 400:
        return None
    code, message = error_code(response)
    detail = f"{code}: {message}" if code else message
    if status == 429:
        wait = wait_from_headers(response.headers)
        return RateLimited(f"Zoho rate or credit limit during {what} ({detail})", wait)
    if status == 401 and code == "INVALID_TOKEN":
        return TokenExpired(f"Zoho access token refused during {what}")
    if status == 401:
        return FatalError(f"Zoho refused the credentials during {what} ({detail})")
    if status == 403:
        return FatalError(f"Zoho refused {what} ({detail}): check the user's profile and scopes")
    if status >= 500:
        return RetriableError(f"Zoho {status} during {what}: {detail}")
    results: list[dict[str, Any]] = []
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        results = [dict(r) for r in data["data"] if isinstance(r, dict)]
    return ZohoError(f"Zoho {status} during {what}: {detail}", code, status, results)


def translate(exc: BaseException, what: str) -> CrmPulseError:
    if isinstance(exc, CrmPulseError):
        return exc
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return RetriableError(f"Zoho unreachable during {what}: {type(exc).__name__}")
    if isinstance(exc, ValueError):  # an answer that is not JSON
        return RetriableError(f"Zoho sent an unreadable answer during {what}")
    return RetriableError(f"Zoho call failed during {what}: {type(exc).__name__}")
