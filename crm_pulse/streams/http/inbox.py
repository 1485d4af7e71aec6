"""Where the HTTP server puts a verified request: the runtime's durable log.

The server answers 2xx only after :meth:`Inbox.accept` has returned, so ``accept`` must return
only once the request is durable (committed to the SQLite log, acknowledged by Kafka). An
exception means "not stored": the server answers 503 with Retry-After and the sender retries.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ...connectors.protocols import WebhookRequest

__all__ = ["Inbox", "MemoryInbox"]


@runtime_checkable
class Inbox(Protocol):
    async def accept(self, connector: str, request: WebhookRequest) -> None:
        """Store the request durably; return only when it is (raise if it could not be)."""


class MemoryInbox:
    """An in-memory inbox for tests and benchmarks: keeps every request; ``fail`` makes it raise."""

    def __init__(self) -> None:
        self.items: list[tuple[str, WebhookRequest]] = []
        self.fail: Exception | None = None

    async def accept(self, connector: str, request: WebhookRequest) -> None:
        if self.fail is not None:
            raise self.fail
        self.items.append((connector, request))
