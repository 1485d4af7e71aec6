"""Never wipe, never flicker: the first-read rule, shared by both runtimes.

A CRM field holds a value before crm-pulse starts, so nothing is written until every *pulling*
source of the deployment has finished its first complete read (a backfill, or a first poll from
no cursor) and the engine has applied everything that read stored. Until then the planner plans
nothing; the runtime reports each source's first read with
:meth:`~crm_pulse.streams.writeback.Planner.first_read_done`, and the first tick after the last
one writes every rule's complete value. Receive-only connectors (the ``events`` ingress,
webhook-only plugins) have no history to read: they do not hold writes back.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["FirstReads"]


class FirstReads:
    """Which pulling sources' first complete reads are still awaited."""

    def __init__(self, sources: Iterable[str]) -> None:
        self.sources: frozenset[str] = frozenset(sources)
        """The pulling sources: no write before each finished its first complete read."""
        self.waiting_for: set[str] = set(self.sources)
        """Pulling sources whose first complete read has not been applied yet."""

    @property
    def ready(self) -> bool:
        """True once every source finished its first complete read (writes may flow)."""
        return not self.waiting_for

    def done(self, source: str) -> bool:
        """``source``'s first read is applied; True when that was the last one awaited."""
        if source not in self.waiting_for:
            return False
        self.waiting_for.discard(source)
        return not self.waiting_for

    def restore(self, written: Iterable[str]) -> None:
        """The sources whose first reads were already followed by the whole values: wait for
        the others (a source added to the deployment since is awaited again)."""
        self.waiting_for = set(self.sources) - set(written)
