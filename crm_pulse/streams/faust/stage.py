"""What the three agents share: a stage (input order, apply, rollback, lock) and its types."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .order import InputOrder, Message

__all__ = ["DeadLetter", "Outgoing", "Output", "Parts", "Stage"]

Outgoing = tuple[bytes | None, bytes, int | None]
"""A message an agent sends: key, value, and its partition (None: the key's, as Faust's
producer places it)."""


class Output(Protocol):
    """An agent's output topic (:class:`~.bulk.BulkTopic`)."""

    async def send_all(self, messages: Sequence[Outgoing]) -> None:
        """Send ``messages`` (in order within each partition) and return once Kafka
        acknowledged every one."""


Parts = Sequence[tuple[Any, list[Message]]]
"""A batch: per input partition, an event of it (where its table writes go) and its messages."""

DeadLetter = Callable[[str, Message], Awaitable[Any]]
"""Sends a message that cannot be applied to the dead letters with the reason (returns the
send's future, to await with the batch's other output)."""


@dataclass
class Stage:
    """An agent's input order, the function that applies its messages, and its lock."""

    order: InputOrder
    apply: Callable[[Parts], Awaitable[None]]
    rollback: Callable[[], None]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
