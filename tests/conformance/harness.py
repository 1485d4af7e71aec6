"""What each connector's test harness offers the shared conformance suite.

Every connector ships ``tests/connectors/<kind>/harness.py`` with a function
``make_harness() -> contextlib.AbstractAsyncContextManager[Harness]`` that starts the
connector's fake vendor on 127.0.0.1 (real HTTP, TLS where the vendor uses it), builds the
connector with the real client library pointed at it, and tears both down. The suite in
``test_conformance.py`` finds every harness and runs the same checks against each, in the
spirit of the Singer SDK's generated tap tests.

Records are named by their vendor ids (strings). "Deal" means the vendor's deal-like object
(HubSpot deals, Salesforce Opportunity, Pipedrive deals); canonical events for it have
``object == "deal"`` and ``id`` equal to the vendor id.
"""

from __future__ import annotations

from typing import Any, Protocol

from crm_pulse.connectors.protocols import Connector, WebhookRequest


class Harness(Protocol):
    kind: str
    records_per_call: int
    """Records one write call can update: the vendor's batch size (1 where, as in Pipedrive,
    every record needs its own call)."""
    connector: Connector
    """Built against the fake; ``source``, ``receiver`` and ``sink`` must be set."""

    def seed_deals(self, n: int, *, same_modified_at: bool = False) -> list[str]:
        """Create ``n`` deals in the fake (open, with an owner and an amount); return their ids.
        With ``same_modified_at`` all get one last-modified time (cursor tie-break check)."""

    def touch(self, deal_id: str) -> None:
        """Change a canonical field of the deal (say, its amount) and bump its modified time."""

    def delete(self, deal_id: str) -> None:
        """Delete (or archive) the deal the way a user would in the CRM."""

    def writeback_target(self, deal_id: str) -> tuple[str, str, str]:
        """(object, record id, field) of a numeric custom field the sink may write, existing
        in the fake, that the source does not map to any canonical field."""

    def field_value(self, object: str, record_id: str, field: str) -> Any:
        """The value the fake holds now."""

    def write_calls(self) -> int:
        """Write requests the fake has received so far (batch or single)."""

    def signed_webhook(self, deal_id: str) -> WebhookRequest:
        """A genuine webhook request announcing a change of the deal."""

    def forged_webhook(self, deal_id: str) -> WebhookRequest:
        """The same request with a wrong signature or wrong credentials."""

    def rate_limit(self, requests: int, retry_after: float) -> None:
        """The fake answers the next ``requests`` API calls with 429 and this Retry-After."""

    def server_errors(self, requests: int, *, delay: float = 0.0) -> None:
        """The fake answers the next ``requests`` API calls with the vendor's 5xx (after
        ``delay`` seconds; with ``delay`` beyond the client's timeout, only slowly); the
        connector's retry waits are made instant."""

    def exhaust_daily(self) -> None:
        """The vendor's daily API allowance is used up: every call is refused as the vendor
        documents it, until :meth:`restore_daily`."""

    def restore_daily(self) -> None:
        """A new day: the allowance is back (and the connector may ask again at once)."""
