"""How a connector reports one record it cannot turn into an event: :func:`reject`.

A source or webhook receiver that meets a bad record (a date in year 9999, a field that does
not parse, a record without an id) calls ``reject(where, reason)`` and goes on with the next
one. The runtime collects these around each page it polls and each stored request it parses
(:func:`collecting`) and quarantines them in the same transaction as the good events, where
``crm-pulse quarantine list`` shows them. Outside a runtime (tests, tools) the call only logs.

A source may instead return them in :attr:`~crm_pulse.connectors.protocols.Page.rejected`; both
end in the same place. Raising a :class:`~crm_pulse.errors.DataError` for one record is the
wrong way: the runtime cannot skip just that record, so it retries the whole page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .protocols import Rejected

__all__ = ["collecting", "reject"]

log = logging.getLogger("crm_pulse.connectors")

_bucket: ContextVar[list[Rejected] | None] = ContextVar("crm_pulse_rejected", default=None)


def reject(where: str, reason: str, excerpt: str = "") -> None:
    """Report one record that cannot become an event (it is quarantined; nothing stops)."""
    bucket = _bucket.get()
    item = Rejected(where[:200], reason[:500], excerpt[:500])
    if bucket is None:
        log.warning("record rejected", extra={"where": item.where, "reason": item.reason})
        return
    bucket.append(item)


@contextmanager
def collecting() -> Iterator[list[Rejected]]:
    """Collect what :func:`reject` reports in this context (the runtime's side)."""
    bucket: list[Rejected] = []
    token = _bucket.set(bucket)
    try:
        yield bucket
    finally:
        _bucket.reset(token)
