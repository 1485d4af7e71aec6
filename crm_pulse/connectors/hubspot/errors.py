"""The one place where hubspot-api-client and urllib3 exceptions become crm-pulse errors.

=========================  =========================================================
HubSpot answer             crm-pulse error
=========================  =========================================================
401, 403                   FatalError (token invalid or a scope is missing)
429                        RateLimited (with Retry-After seconds when sent)
5xx, timeouts, resets      RetriableError
other 4xx                  SkippableError with HubSpot's category and message
=========================  =========================================================

Messages carry HubSpot's category and message, never the request (which holds the token).
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import CrmPulseError, FatalError, RateLimited, RetriableError, SkippableError

__all__ = ["describe", "translate"]


def describe(body: Any) -> str:
    """HubSpot's ``category: message`` from an error body."""
    try:
        data = json.loads(body) if isinstance(body, bytes | str) else body
    except (ValueError, TypeError):
        return ""
    if not isinstance(data, dict):
        return ""
    category = data.get("category") or data.get("status") or ""
    message = data.get("message") or ""
    return f"{category}: {message}".strip(": ")


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == name.lower():
            return str(value)
    return None


def translate(exc: BaseException, what: str) -> CrmPulseError:
    """A crm-pulse error for an exception raised while doing ``what`` (e.g. 'search deals')."""
    if isinstance(exc, CrmPulseError):
        return exc
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status > 0:
        detail = describe(getattr(exc, "body", None)) or str(getattr(exc, "reason", ""))
        headers = getattr(exc, "headers", None)
        if status == 429:
            retry = _header(headers, "Retry-After")
            try:
                seconds = float(retry) if retry is not None else None
            except ValueError:
                seconds = None
            return RateLimited(f"HubSpot rate limit during {what}: {detail}", seconds)
        if status in (401, 403):
            return FatalError(
                f"HubSpot refused {what} ({status} {detail}): check the private app's token "
                "and scopes (README: Connect HubSpot)"
            )
        if status >= 500:
            return RetriableError(f"HubSpot {status} during {what}: {detail}")
        return SkippableError(f"HubSpot {status} during {what}: {detail}")
    name = type(exc).__name__
    return RetriableError(f"HubSpot unreachable during {what}: {name}")
