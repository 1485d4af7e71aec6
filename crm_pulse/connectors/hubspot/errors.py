"""The one place where hubspot-api-client and urllib3 exceptions become crm-pulse errors.

=========================  =========================================================
HubSpot answer             crm-pulse error
=========================  =========================================================
401, 403                   FatalError (token invalid or a scope is missing)
429                        RateLimited (Retry-After seconds when sent; a DAILY policy
                           without one waits an hour: the day ends at the portal's midnight)
5xx, timeouts, resets      RetriableError
TLS verification failure   FatalError (the certificate is not trusted: see ca_cert)
other 4xx                  Refused (a SkippableError) with HubSpot's status and category
=========================  =========================================================

Messages carry HubSpot's category and message, never the request (which holds the token).
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import CrmPulseError, FatalError, RateLimited, RetriableError, SkippableError
from ...retry import wait_from_headers

__all__ = ["DAILY_WAIT", "Refused", "category_of", "describe", "policy_of", "translate"]


class Refused(SkippableError):
    """HubSpot refused this one request (a 4xx other than 401/403/429).

    ``status`` and ``category`` (``VALIDATION_ERROR``, ``OBJECT_ALREADY_EXISTS``, ...) let the
    caller decide per case: a 409 on create means "already there", a 400 on a batch update
    fails each write of that batch.
    """

    def __init__(self, message: str, status: int, category: str) -> None:
        super().__init__(message)
        self.status = status
        self.category = category


def category_of(body: Any) -> str:
    """HubSpot's error ``category`` from an error body, or ''."""
    try:
        data = json.loads(body) if isinstance(body, bytes | str) else body
    except (ValueError, TypeError):
        return ""
    return str(data.get("category") or "") if isinstance(data, dict) else ""


def describe(body: Any) -> str:
    """HubSpot's ``category: message`` from an error body."""
    try:
        data = json.loads(body) if isinstance(body, bytes | str) else body
    except (ValueError, TypeError):
        return ""
    if not isinstance(data, dict):
        return ""
    category = data.get("category") or data.get("errorType") or data.get("status") or ""
    message = data.get("message") or ""
    policy = data.get("policyName")
    text = f"{category}: {message}".strip(": ")
    return f"{text} (policy {policy})" if policy else text


def policy_of(body: Any) -> str:
    """The ``policyName`` of a HubSpot 429 body (``DAILY``, ``TEN_SECONDLY_ROLLING``...), or ''."""
    try:
        data = json.loads(body) if isinstance(body, bytes | str) else body
    except (ValueError, TypeError):
        return ""
    return str(data.get("policyName") or "") if isinstance(data, dict) else ""


DAILY_WAIT = 3600.0
"""Seconds to wait after a daily-limit 429 that names no Retry-After."""


def translate(exc: BaseException, what: str) -> CrmPulseError:
    """A crm-pulse error for an exception raised while doing ``what`` (e.g. 'search deals')."""
    if isinstance(exc, CrmPulseError):
        return exc
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status > 0:
        detail = describe(getattr(exc, "body", None)) or str(getattr(exc, "reason", ""))
        headers = getattr(exc, "headers", None)
        if status == 429:
            seconds = wait_from_headers(dict(headers or {}))
            if seconds is None and policy_of(getattr(exc, "body", None)) == "DAILY":
                seconds = DAILY_WAIT
            return RateLimited(f"HubSpot rate limit during {what}: {detail}", seconds)
        if status in (401, 403):
            return FatalError(
                f"HubSpot refused {what} ({status} {detail}): check the private app's token "
                "and scopes (README: Connect HubSpot)"
            )
        if status >= 500:
            return RetriableError(f"HubSpot {status} during {what}: {detail}")
        category = category_of(getattr(exc, "body", None))
        return Refused(f"HubSpot {status} during {what}: {detail}", status, category)
    if _is_tls_failure(exc):
        return FatalError(
            f"HubSpot's TLS certificate was not accepted during {what}: check base_url and ca_cert"
        )
    name = type(exc).__name__
    return RetriableError(f"HubSpot unreachable during {what}: {name}")


def _is_tls_failure(exc: BaseException) -> bool:
    """A certificate problem, which waiting does not cure (urllib3 wraps it in MaxRetryError;
    the SDK turns it into an ApiException with status 0 and the SSLError's name)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException) and type(reason).__name__ in ("SSLError",):
        return True
    return getattr(exc, "status", None) == 0 and str(reason).startswith("SSLError")
