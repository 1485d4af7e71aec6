"""How a webhook receiver reports one record it cannot turn into an event: :func:`reject`.

A source reports such records in its page (:attr:`~crm_pulse.connectors.protocols.Page.skipped`).
A receiver's ``parse`` returns only events, so a receiver that meets a bad record (a date in
year 9999, a field that does not parse) calls ``reject(BadRecord(...))`` and goes on with the
next one. The runtime collects these around each stored request it parses and each page it
polls (:func:`collecting`) and quarantines them in the same transaction as the good events,
where ``crm-pulse quarantine list`` shows them. Outside a runtime (tests, tools) it only logs.

Raising a :class:`~crm_pulse.errors.DataError` for one record is the wrong way: the runtime
cannot skip just that record (it quarantines the whole request, or retries the whole page).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .protocols import BadRecord

__all__ = ["collecting", "reject"]

log = logging.getLogger("crm_pulse.connectors")

_bucket: ContextVar[list[BadRecord] | None] = ContextVar("crm_pulse_rejected", default=None)


def reject(record: BadRecord) -> None:
    """Report one record that cannot become an event (it is quarantined; nothing stops)."""
    bucket = _bucket.get()
    if bucket is None:
        log.warning("record skipped", extra={"record": str(record)[:500]})
        return
    bucket.append(record)


@contextmanager
def collecting() -> Iterator[list[BadRecord]]:
    """Collect what :func:`reject` reports in this context (the runtime's side)."""
    bucket: list[BadRecord] = []
    token = _bucket.set(bucket)
    try:
        yield bucket
    finally:
        _bucket.reset(token)
