"""The one place where Pipedrive HTTP answers and httpx exceptions become crm-pulse errors.

401 -> FatalError (token), 402/403 -> FatalError (plan or permission), 429 -> RateLimited
(Retry-After or x-ratelimit-reset; an hour when ``x-daily-requests-left`` is 0), 5xx / network -> RetriableError, other 4xx -> SkippableError
with Pipedrive's ``error`` text. The token is never part of a message.
"""

from __future__ import annotations

import httpx

from ...errors import CrmPulseError, FatalError, RateLimited, RetriableError, SkippableError
from ...retry import wait_from_headers

__all__ = ["DAILY_WAIT", "translate", "translate_status"]

DAILY_WAIT = 3600.0
"""Seconds to wait after a 429 that says the daily token budget is used up."""


def _detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(data, dict):
        return str(data.get("error") or data.get("error_info") or response.reason_phrase)
    return response.reason_phrase


def translate_status(response: httpx.Response, what: str) -> CrmPulseError | None:
    """None for a success, else the error this answer means."""
    status = response.status_code
    if status < 400:
        return None
    detail = _detail(response)
    if status == 429:
        if response.headers.get("x-daily-requests-left") == "0":
            # the company's daily token budget is used up until the next day
            return RateLimited(f"Pipedrive daily token budget used up during {what}", DAILY_WAIT)
        wait = wait_from_headers(response.headers, reset="x-ratelimit-reset")
        return RateLimited(f"Pipedrive rate limit during {what}: {detail}", wait)
    if status == 401:
        return FatalError(f"Pipedrive refused the API token during {what}: {detail}")
    if status in (402, 403):
        return FatalError(
            f"Pipedrive refused {what} ({status}: {detail}): check the plan and permissions"
        )
    if status >= 500:
        return RetriableError(f"Pipedrive {status} during {what}: {detail}")
    return SkippableError(f"Pipedrive {status} during {what}: {detail}")


def translate(exc: BaseException, what: str) -> CrmPulseError:
    if isinstance(exc, CrmPulseError):
        return exc
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return RetriableError(f"Pipedrive unreachable during {what}: {type(exc).__name__}")
    return RetriableError(f"Pipedrive call failed during {what}: {type(exc).__name__}")
