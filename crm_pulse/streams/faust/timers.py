"""The worker's timers: ``time`` (values that move with no event) and ``holes`` (messages
Faust committed past without delivering them, see :mod:`.order`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from .order import Anchor

if TYPE_CHECKING:
    from .app import FaustPipeline

__all__ = ["Committed", "Timers"]

log = logging.getLogger("crm_pulse.faust")

Committed = Callable[[Sequence[Any]], Awaitable[Mapping[Any, int | None]]]
"""The consumer group's committed offset of each of these partitions (None: none)."""


class Timers:
    def __init__(self, pipeline: FaustPipeline, committed: Committed | None = None) -> None:
        self.pipeline = pipeline
        self.committed: Committed = committed or self._group_offsets
        """Where the hole check learns the group's committed offsets: the broker (public
        aiokafka API), not Faust's consumer (which keeps them in a private attribute)."""
        self._admin: Any = None
        self._ticked_generation = -1  # the consumer generation of the last time tick
        self._every_group = True
        """The next tick evaluates every group of every rule (a new generation, a failed tick)."""
        self._checked_generation = -1  # the consumer generation of the last hole check
        self._seen: dict[Any, int] = {}  # input partition -> its position at the last check

    def settled(self, generation: int) -> bool:
        """No rebalance started or under way since ``generation``, tables recovered, the
        worker not stopping (its tables close before its timers end: read then, they are
        empty, and every offset would look like a hole)."""
        app = self.pipeline.app
        return (
            not app.should_stop
            and not app.rebalancing
            and cast(Any, app.tables).recovery.completed.is_set()
            and app.consumer_generation_id == generation
        )

    async def tick(self) -> None:
        """Values that time moves (a window rolled over, a rolling window slid), for the groups
        whose deltas partitions this worker holds: the table may still hold groups of partitions
        that moved away, and their values are the new owner's to write.

        The planner indexes the groups by time (:mod:`crm_pulse.streams.writeback.time_index`):
        a tick evaluates the groups whose value can have moved since the last one (their time
        came, a batch touched them, the aggregates stage said which) and, at a calendar
        rollover, those with data in the windows it crosses. After a new consumer generation
        (partitions moved) it evaluates every group this worker holds once, which builds the
        index again."""
        p = self.pipeline
        generation = p.app.consumer_generation_id
        if not self.settled(generation):
            return
        if generation != self._ticked_generation:  # groups moved: write all values they own
            self._ticked_generation = generation
            p.planner.forget_windows()
            p.aggregates.engine.forget_due()  # and find their future-dated records again
            self._every_group = True
        topic = p.deltas.get_topic_name()
        mine = {tp.partition for tp in p.app.consumer.assignment() if tp.topic == topic}

        aggregates = p.aggregates
        async with p.aggregate_stage.lock:
            now = int(aggregates.clock() * 1000)
            # only partitions past the first-read rule (their first writes are the batch's)
            owns = aggregates.owned_by({q for q in mine if aggregates.first_reads_done(q)})
            engine = aggregates.engine
            try:
                came = engine.advance(now)  # future-dated records whose time came
                aggregates.touched()  # (their groups are evaluated now, with the groups due)
                writes = p.planner.due_by_time(engine, now, owns)  # reads only
                if came and not self._every_group:
                    changed = engine.changes(now, only_changed=False, metrics=p.planner.wanted)
                    owned = [v for v in changed if owns(v.group)]
                    writes.extend(p.planner.plan(owned, now, engine))
                elif came:  # every group's value of every rule was just evaluated, after them
                    engine.changes(now, metrics={})  # (what came due: nothing more to say)
                aggregates.store.rollback()  # drop what the evaluation cached
                await aggregates.publish(writes)
            except BaseException:
                # not published for sure: every value again at the next tick (the planner's
                # index says these groups were written)
                aggregates.store.rollback()
                p.planner.forget_windows()
                self._every_group = True
                raise
            self._every_group = False

    async def _group_offsets(self, tps: Sequence[Any]) -> Mapping[Any, int | None]:
        from aiokafka import TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        from .app import kafka_servers

        app = self.pipeline.app
        try:
            if self._admin is None:
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=kafka_servers(str(app.conf.broker[0]))
                )
                await admin.start()
                self._admin = admin
            found = await self._admin.list_consumer_group_offsets(
                app.conf.id, partitions=[TopicPartition(tp.topic, tp.partition) for tp in tps]
            )
        except Exception as exc:  # the broker did not answer: the stall check still runs
            log.debug("committed offsets unavailable: %s", exc)
            return {}
        out: dict[Any, int | None] = {}
        for tp in tps:
            meta = found.get(TopicPartition(tp.topic, tp.partition))
            out[tp] = None if meta is None or meta.offset < 0 else int(meta.offset)
        return out

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            await admin.close()

    async def holes(self) -> None:
        """Messages an agent should have applied and did not, read straight from Kafka:

        * behind Faust's committed offset: Faust committed past messages it never delivered
          (see :mod:`.order`);
        * up to the partition's end, when the stage's position did not move since the last
          check although messages wait: Faust stopped delivering a partition (seen after a
          take-over: the survivor sat idle with a dead worker's partitions unread while every
          check of its own offsets said nothing was missing).

        Reading a range Faust delivers later is harmless: its messages are below the position
        by then and dropped; the ones read here are acknowledged to Faust once committed, so
        its committed offset moves past them."""
        p = self.pipeline
        app = p.app
        consumer = app.consumer
        generation = app.consumer_generation_id
        if not self.settled(generation):
            return
        if generation != self._checked_generation:  # new partitions: watch them afresh
            self._checked_generation = generation
            self._seen.clear()
        stages = {
            stage.order.topic: stage
            for stage in (p.record_stage, p.aggregate_stage, p.writer_stage)
        }
        assigned = sorted(
            (tp for tp in consumer.assignment() if tp.topic in stages),
            key=lambda tp: (tp.topic, tp.partition),
        )
        if not assigned:
            return
        ends = await consumer.highwaters(*assigned)  # Kafka's end offsets (the next offset)
        committed = await self.committed(assigned)  # the group's, as the broker holds them
        for tp in assigned:
            stage = stages[tp.topic]
            async with stage.lock:
                if not self.settled(generation):
                    return  # it may have moved
                try:
                    target = committed.get(tp)
                    position = stage.order.store.position(tp.partition) or 0
                    end = ends.get(tp)
                    if end is not None and end > position:
                        if self._seen.get(tp) == position:  # no progress for a whole interval
                            log.warning(
                                "%s[%d]: %d messages wait at offset %d and none was delivered"
                                " since the last check; reading them from Kafka",
                                tp.topic,
                                tp.partition,
                                end - position,
                                position,
                            )
                            target = max(target or 0, end)
                        self._seen[tp] = position
                    else:
                        self._seen.pop(tp, None)
                    found = await stage.order.holes_behind(tp.partition, target)
                    if found is not None and self.settled(generation):
                        await stage.apply([(Anchor(tp.topic, tp.partition), found)])
                        p.acknowledge(found)  # committed: Faust may move past them
                finally:
                    stage.rollback()  # nothing staged outlives the check
