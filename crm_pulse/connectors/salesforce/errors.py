"""The one place where simple-salesforce and requests exceptions become crm-pulse errors.

=================================================  ===========================================
Salesforce answer                                  crm-pulse error
=================================================  ===========================================
403 ``REQUEST_LIMIT_EXCEEDED`` (daily or           RateLimited: pause, then try again
concurrent API limit)                              (``retry_after`` = the connector's pause)
429 (should Salesforce send one)                   RateLimited
401 ``INVALID_SESSION_ID``, other 403s             FatalError (token, permissions, API access)
400 ``INVALID_FIELD``, ``INVALID_TYPE``,           FatalError: the org lacks a mapped field or
``MALFORMED_QUERY``                                object; the message names it
5xx, timeouts, connection resets, a failed         RetriableError
Bulk API job
other 4xx                                          SkippableError with Salesforce's code
=================================================  ===========================================

Salesforce sends no Retry-After with ``REQUEST_LIMIT_EXCEEDED``: the daily allocation is a
rolling 24 hours, so the caller waits ``pause`` seconds and tries one call again. Messages carry
Salesforce's error code and message, never the request (its headers hold the session).
"""

from __future__ import annotations

from typing import Any

import requests
from simple_salesforce.exceptions import SalesforceError, SalesforceOperationError

from ...errors import (
    CrmPulseError,
    FatalError,
    RateLimited,
    RetriableError,
    SkippableError,
    unreachable_cause,
)

__all__ = ["LIMIT_EXCEEDED", "VENDOR_ERRORS", "error_code", "error_text", "translate"]

VENDOR_ERRORS = (SalesforceError, SalesforceOperationError, requests.RequestException, ValueError)
"""What :func:`translate` handles; anything else is a bug and propagates as it is."""

LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
_CONFIG_CODES = {"INVALID_FIELD", "INVALID_TYPE", "MALFORMED_QUERY", "NOT_FOUND"}


def _first(content: Any) -> dict[str, Any]:
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return content[0]
    if isinstance(content, dict):
        return content
    return {}


def error_code(content: Any) -> str:
    """Salesforce's ``errorCode`` from an error body (a list of ``{message, errorCode}``)."""
    first = _first(content)
    return str(first.get("errorCode") or first.get("statusCode") or "")


def error_text(content: Any) -> str:
    """``CODE: message`` from an error body, or ``""``."""
    first = _first(content)
    code = error_code(content)
    message = str(first.get("message") or "")
    return f"{code}: {message}".strip(": ")


def translate(exc: BaseException, what: str, *, pause: float) -> CrmPulseError:
    """A crm-pulse error for an exception raised while doing ``what`` (e.g. 'query Account')."""
    if isinstance(exc, CrmPulseError):
        return exc
    if isinstance(exc, SalesforceError):
        status = int(exc.status)
        code = error_code(exc.content)
        detail = error_text(exc.content) or f"HTTP {status}"
        if code == LIMIT_EXCEEDED or status == 429:
            return RateLimited(
                f"Salesforce API limit reached during {what} ({detail}); pausing", pause
            )
        if status == 401 or status == 403:
            return FatalError(
                f"Salesforce refused {what} ({status} {detail}): check the session or connected "
                "app, the integration user's permissions and API access (docs: Connect Salesforce)"
            )
        if status >= 500:
            return RetriableError(f"Salesforce {status} during {what}: {detail}")
        if status == 400 and code in _CONFIG_CODES:
            return FatalError(
                f"Salesforce rejected {what}: {detail} (does the org have the mapped objects "
                "and fields? see mapping in the deployment file)"
            )
        return SkippableError(f"Salesforce {status} during {what}: {detail}")
    if isinstance(exc, SalesforceOperationError):  # a Bulk API job failed or timed out
        return RetriableError(f"Salesforce Bulk API job failed during {what}: {exc}")
    if isinstance(exc, requests.RequestException):
        return RetriableError(f"Salesforce unreachable during {what}: {unreachable_cause(exc)}")
    if isinstance(exc, ValueError):  # a body that is not JSON
        return RetriableError(f"Salesforce answered {what} with a body that is not JSON")
    raise exc  # a bug of ours, not a vendor answer: let it surface
