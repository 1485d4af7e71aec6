"""The ``aggregates`` agent's stage: delta messages in, each metric group's buckets in the
``aggregates`` table, the field values the write-back rules call for out (phase 2,
:class:`~.phases.AggregatePhase`, and the shared :class:`~crm_pulse.streams.writeback.Planner`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from ...connectors.protocols import FieldWrite
from ...metrics.engine import Engine
from ..writeback import Planner
from .phases import AggregatePhase, BadMessage
from .stage import DeadLetter, Parts
from .stores import GroupedStore

__all__ = ["AggregatesStage", "target_key"]


def target_key(w: FieldWrite) -> bytes:
    """The values topic's key of a field: its connector, object, record and field."""
    return "/".join((w.connector, w.object, w.record_id, w.field)).encode()


class AggregatesStage:
    def __init__(
        self,
        phase: AggregatePhase,
        planner: Planner,
        values: Any,
        dead_letter: DeadLetter,
    ) -> None:
        self.phase = phase
        self.planner = planner
        self.values = values  # the values topic
        self.dead_letter = dead_letter

    @property
    def engine(self) -> Engine:
        return self.phase.engine

    @property
    def store(self) -> GroupedStore:
        return self.phase.store

    async def apply(self, parts: Parts) -> None:
        """Values out (acknowledged), then the buckets."""
        now = int(time.time() * 1000)
        writes: list[FieldWrite] = []
        sent = []
        # records dated up to now are not future-dated; what came due is the tick's to report
        self.engine.advance(now, mark_due=False)
        for anchor, messages in parts:
            for message in messages:
                try:
                    self.phase.apply(message.value)
                except BadMessage as exc:
                    sent.append(await self.dead_letter(str(exc), message))
            # the groups of one partition: their reported values live in that partition
            writes.extend(self.planner.plan(self.phase.changes(now), now, self.engine))
            self.store.stage(anchor)
        for future in sent:
            await future
        await self.publish(writes)
        await self.store.commit()  # state durable before the offsets can move

    def rollback(self) -> None:
        # the engine's memory of moved buckets goes too: it may name groups of a partition
        # whose batch failed, and the next batch must not record them under its own partition
        self.store.rollback()
        self.engine.forget_changes()
        self.planner.forget_covered()  # the values it planned were not published

    async def publish(self, writes: Iterable[FieldWrite]) -> None:
        """Send field values to the values topic and wait for Kafka's acknowledgement."""
        sent = []
        for w in writes:
            body = json.dumps(
                {
                    "connector": w.connector,
                    "object": w.object,
                    "record_id": w.record_id,
                    "field": w.field,
                    "value": w.value,
                }
            )
            sent.append(await self.values.send(key=target_key(w), value=body.encode()))
        for future in sent:
            await future
