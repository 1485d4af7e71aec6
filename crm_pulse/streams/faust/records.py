"""The ``records`` agent's stage: events in, each record's state in the ``records`` table, one
delta message per metric group and batch out (phase 1, :class:`~.phases.RecordPhase`).

A first-read marker (:data:`~.phases.FIRST_READ`) goes on to every deltas partition, behind the
deltas of the events before it in its events partition: the entries gathered so far are sent
first."""

from __future__ import annotations

from typing import Any

from .phases import FIRST_READ, BadMessage, RecordPhase, first_read_marker, pack, read_marker
from .stage import DeadLetter, Outgoing, Output, Parts
from .stores import GroupedStore

__all__ = ["RecordsStage"]


class RecordsStage:
    def __init__(
        self,
        phase: RecordPhase,
        store: GroupedStore,
        deltas: Output,
        dead_letter: DeadLetter,
        partitions: int,
    ) -> None:
        self.phase = phase
        self.store = store
        self.deltas = deltas  # the deltas topic (see .bulk.BulkTopic)
        self.dead_letter = dead_letter
        self.partitions = partitions  # of the deltas topic

    async def apply(self, parts: Parts) -> None:
        """Deltas out (acknowledged), then the record states."""
        sent = []
        out: list[Outgoing] = []
        entries: list[tuple[bytes, dict[str, Any]]] = []
        for anchor, messages in parts:
            for message in messages:
                try:
                    marker = read_marker(message.key, message.value)
                    if marker is not None:  # on to every deltas partition, behind the deltas
                        out.extend((key, body, None) for key, body in pack(entries))
                        entries = []
                        body = first_read_marker(marker[0], message.partition)
                        out.extend((FIRST_READ, body, q) for q in range(self.partitions))
                        continue
                    entries.extend(
                        self.phase.entries(message.value, message.partition, message.offset)
                    )
                except BadMessage as exc:
                    sent.append(await self.dead_letter(str(exc), message))
            self.store.stage(anchor)
        # one message per metric group and batch, in order within each deltas partition
        out.extend((key, body, None) for key, body in pack(entries))
        await self.deltas.send_all(out)  # acknowledged by Kafka before the state moves on
        for future in sent:
            await future
        await self.store.commit()  # state durable before the offsets can move

    def rollback(self) -> None:
        self.store.rollback()
