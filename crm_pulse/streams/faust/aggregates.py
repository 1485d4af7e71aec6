"""The ``aggregates`` agent's stage: delta messages in, each metric group's buckets in the
``aggregates`` table, the field values the write-back rules call for out (phase 2,
:class:`~.phases.AggregatePhase`, and the shared :class:`~crm_pulse.streams.writeback.Planner`).

The first-read rule: a deltas partition's groups are written only once the partition holds a
first-read marker from every events partition for every pulling source; the batch that
completes them writes every rule's whole value for the partition's groups (a second planner,
the sweeper, so the first writes of one partition do not reset the main planner's windows).

The time tick (:mod:`.timers`) costs the groups whose value can have moved: each batch tells the
planner which groups it touched (:meth:`AggregatesStage.touched`, the planner's index by time),
and a partition whose first writes were just made has its groups indexed at the next tick."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence

from aiokafka.partitioner import DefaultPartitioner

from ...connectors.protocols import FieldWrite
from ...metrics.deltas import group_key
from ...metrics.engine import Engine
from ...metrics.measures import Group
from ..writeback import Planner
from .phases import AggregatePhase, BadMessage, read_marker
from .stage import DeadLetter, Outgoing, Output, Parts
from .stores import GroupedStore

__all__ = ["AggregatesStage", "owned_by", "target_key"]


def target_key(w: FieldWrite) -> bytes:
    """The values topic's key of a field: its connector, object, record and field."""
    return "/".join((w.connector, w.object, w.record_id, w.field)).encode()


def owned_by(partitions: set[int], count: int) -> Callable[[Group], bool]:
    """Whether a group's deltas go to one of ``partitions`` of ``count`` (as the producer places
    them)."""
    every = list(range(count))
    partitioner = DefaultPartitioner()

    def owns(group: Group) -> bool:
        return partitioner(group_key(group).encode(), every, every) in partitions

    return owns


class AggregatesStage:
    def __init__(
        self,
        phase: AggregatePhase,
        planner: Planner,
        values: Output,
        dead_letter: DeadLetter,
        *,
        sweeper: Planner | None = None,
        pulled: Sequence[str] = (),
        partitions: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.phase = phase
        self.planner = planner
        self.sweeper = sweeper or planner  # first writes per partition (a planner of its own)
        self.values = values  # the values topic (see .bulk.BulkTopic)
        self.dead_letter = dead_letter
        self.pulled = list(pulled)
        """Pulling sources: a deltas partition writes once each finished its first read."""
        self.partitions = partitions  # of the events and deltas topics
        self.clock = clock
        """Seconds since the epoch: what "now" is for the values (the time tick's too)."""

    @property
    def engine(self) -> Engine:
        return self.phase.engine

    @property
    def store(self) -> GroupedStore:
        return self.phase.store

    async def apply(self, parts: Parts) -> None:
        """Values out (acknowledged), then the buckets."""
        now = int(self.clock() * 1000)
        writes: list[FieldWrite] = []
        sent = []
        # records dated up to now are not future-dated; what came due is the tick's to report
        self.engine.advance(now, mark_due=False)
        for anchor, messages in parts:
            partition = anchor.message.partition
            was_ready = self.first_reads_done(partition)
            for message in messages:
                try:
                    marker = read_marker(message.key, message.value)
                    if marker is not None:
                        self.phase.first_read(partition, *marker)
                        continue
                    self.phase.apply(message.value)
                except BadMessage as exc:
                    sent.append(await self.dead_letter(str(exc), message))
            self.touched()
            # the groups of one partition: their reported values live in that partition
            changes = self.phase.changes(now)
            if was_ready:
                writes.extend(self.planner.plan(changes, now, self.engine))
            elif self.first_reads_done(partition):  # the first writes: whole values
                # read from the table as it is: it may have changed under the engine's index of
                # groups with data (a partition recovered since the last tick)
                self.engine.forget_changes()
                self.sweeper.forget_windows()
                owns = self.owned_by({partition})
                writes.extend(self.sweeper.due_by_time(self.engine, now, owns))
                self.planner.forget_time_index()  # the next tick indexes its groups too
            self.store.stage(anchor)
        for future in sent:
            await future
        await self.publish(writes)
        await self.store.commit()  # state durable before the offsets can move

    def touched(self) -> None:
        """Tell the planner which groups moved since the engine's last ``changes`` (its index of
        groups by time: a tick evaluates those, and those whose time came)."""
        if self.planner.time_measures:
            self.planner.touched(self.engine.touched(self.planner.time_measures))

    def first_reads_done(self, partition: int) -> bool:
        """The planner's first-read rule for one deltas partition."""
        if not self.pulled:
            return True
        return self.phase.first_reads_done(partition, self.pulled, self.partitions)

    def owned_by(self, partitions: set[int]) -> Callable[[Group], bool]:
        """Whether a group's deltas go to one of ``partitions``."""
        return owned_by(partitions, self.partitions)

    def rollback(self) -> None:
        # the engine's memory of moved buckets goes too: it may name groups of a partition
        # whose batch failed, and the next batch must not record them under its own partition
        self.store.rollback()
        self.engine.forget_changes()
        self.planner.forget_covered()  # the values it planned were not published

    async def publish(self, writes: Iterable[FieldWrite]) -> None:
        """Send field values to the values topic and wait for Kafka's acknowledgement."""
        out: list[Outgoing] = []
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
            out.append((target_key(w), body.encode(), None))
        await self.values.send_all(out)
