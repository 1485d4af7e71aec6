"""What a connector package gives the suite: a :class:`Harness` over its simulator, made by a
:data:`HarnessFactory`; and :func:`drain`, reading a source's pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from ...connectors.protocols import (
    Connector,
    Cursor,
    FieldSpec,
    Page,
    WebhookRequest,
)
from ...metrics.events import Event


class Harness:
    """What a connector package gives the suite; subclass it and fill in the methods its
    connector's parts need (a connector without a sink needs no ``writeback_target``)."""

    kind: str = ""
    """The connector's kind, as registered in the ``crm_pulse.connectors`` entry points."""
    connector: Connector
    """The connector, built against the simulator."""
    records_per_call: int = 1
    """Records one write call can update: the vendor's batch size (1 where every record needs
    its own call)."""
    deletes: bool = True
    """The simulator can delete records and the source reports deletions."""
    rate_limits: bool = True
    """The simulator can answer with 429 and a Retry-After (:meth:`rate_limit`)."""
    bad_records: bool = True
    """The simulator can hold a record the source cannot map (:meth:`seed_bad_deal`)."""
    faults: bool = False
    """The simulator produces the vendor's documented failures on demand (:meth:`server_errors`,
    :meth:`slow_answers`, :meth:`exhaust_daily`)."""

    def seed_deals(self, n: int, *, same_modified_at: bool = False) -> list[str]:
        """Create ``n`` open deals (with an owner and an amount); return their ids. With
        ``same_modified_at`` all get one last-modified time (the cursor's tie-break)."""
        raise NotImplementedError

    def seed_bad_deal(self) -> str:
        """Create a deal the source cannot map (a value that does not fit its canonical field,
        like an amount of ``'n/a'``); return its id, or the id the source will report it by."""
        raise NotImplementedError

    def touch(self, deal_id: str) -> None:
        """Change a canonical field of the deal (its amount) and its modified time."""
        raise NotImplementedError

    def delete(self, deal_id: str) -> None:
        """Delete (or archive) the deal the way a user would."""
        raise NotImplementedError

    def writeback_target(self, deal_id: str) -> tuple[str, str, str]:
        """(object, record id, field) of a numeric custom field that exists in the simulator
        and that the source maps to no canonical field."""
        raise NotImplementedError

    def field_value(self, object: str, record_id: str, field: str) -> Any:
        """The value the simulator holds now."""
        raise NotImplementedError

    def write_calls(self) -> int:
        """Write requests the simulator has received so far."""
        raise NotImplementedError

    def signed_webhook(self, deal_id: str) -> WebhookRequest:
        """A genuine webhook request announcing a change of the deal."""
        raise NotImplementedError

    def forged_webhook(self, deal_id: str) -> WebhookRequest:
        """The same request with a wrong signature or wrong credentials."""
        raise NotImplementedError

    def rate_limit(self, requests: int, retry_after: float) -> None:
        """Answer the next ``requests`` API calls with 429 and this Retry-After."""
        raise NotImplementedError

    def new_field(self) -> FieldSpec:
        """A custom field that does not exist yet (for the provisioner)."""
        raise NotImplementedError

    def server_errors(self, requests: int) -> None:
        """Answer the next ``requests`` API calls with the vendor's 5xx; make the connector's
        retry waits instant (the checks count retries, not seconds)."""
        raise NotImplementedError

    def slow_answers(self, requests: int) -> None:
        """Answer the next ``requests`` API calls only after the connector's client has given
        up waiting (set its timeout short, and the simulator's delay beyond it)."""
        raise NotImplementedError

    def exhaust_daily(self) -> None:
        """Use up the vendor's daily API allowance: every call is refused the way the vendor
        documents it, until :meth:`restore_daily`."""
        raise NotImplementedError

    def restore_daily(self) -> None:
        """A new day: the allowance is back."""
        raise NotImplementedError


HarnessFactory = Callable[[], AbstractAsyncContextManager[Harness]]


async def drain(pages: AsyncIterator[Page]) -> tuple[list[Event], Cursor | None]:
    """Every event of every page, and the cursor after the last page."""
    events: list[Event] = []
    cursor: Cursor | None = None
    async for page in pages:
        events.extend(page.events)
        cursor = page.cursor
    return events, cursor
