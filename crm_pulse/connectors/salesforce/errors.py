"""The one place where simple-salesforce and requests exceptions become crm-pulse errors.

=====================================  ==============================================
Salesforce answer                      crm-pulse error
=====================================  ==============================================
403 REQUEST_LIMIT_EXCEEDED             RateLimited: pause until the budget recovers
429 (gateway throttling)               RateLimited with Retry-After
401 INVALID_SESSION_ID, other 403      FatalError (log in again / grant permissions)
400 MALFORMED_QUERY, INVALID_FIELD     FatalError naming Salesforce's message (a mapped
                                       field that does not exist in this org)
404                                    SkippableError
5xx, timeouts, resets                  RetriableError
=====================================  ==============================================
"""

from __future__ import annotations

from typing import Any

from ...errors import CrmPulseError, FatalError, RateLimited, RetriableError, SkippableError

__all__ = ["DAILY_LIMIT_PAUSE", "first_error", "translate"]

DAILY_LIMIT_PAUSE = 900.0  # seconds to wait when the org's daily API limit is exhausted


def first_error(content: Any) -> tuple[str, str]:
    """(errorCode, message) of a Salesforce error body."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", "")), str(content[0].get("message", ""))
    if isinstance(content, dict):
        return str(content.get("errorCode") or content.get("error", "")), str(
            content.get("message") or content.get("error_description", "")
        )
    return "", str(content)[:200]


def translate(exc: BaseException, what: str, retry_after: float | None = None) -> CrmPulseError:
    if isinstance(exc, CrmPulseError):
        return exc
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        code, message = first_error(getattr(exc, "content", None))
        detail = f"{code}: {message}".strip(": ")
        if code == "REQUEST_LIMIT_EXCEEDED" or status == 429:
            wait = retry_after if retry_after is not None else DAILY_LIMIT_PAUSE
            return RateLimited(f"Salesforce API limit during {what}: {detail}", wait)
        if status in (401, 403):
            return FatalError(
                f"Salesforce refused {what} ({status} {detail}): check the session or connected app and its permissions"
            )
        if status == 400:
            return FatalError(f"Salesforce rejected {what}: {detail}")
        if status == 404:
            return SkippableError(f"Salesforce {what}: {detail}")
        return RetriableError(f"Salesforce {status} during {what}: {detail}")
    return RetriableError(f"Salesforce unreachable during {what}: {type(exc).__name__}")
