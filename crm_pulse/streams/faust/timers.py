"""The worker's timers: ``time`` (values that move with no event) and ``holes`` (messages
Faust committed past without delivering them, see :mod:`.order`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from .order import Anchor

if TYPE_CHECKING:
    from .app import FaustPipeline

__all__ = ["Timers"]


class Timers:
    def __init__(self, pipeline: FaustPipeline) -> None:
        self.pipeline = pipeline
        self._ticked_generation = -1  # the consumer generation of the last time tick

    def settled(self, generation: int) -> bool:
        """No rebalance started or under way since ``generation``, tables recovered."""
        app = self.pipeline.app
        return (
            not app.rebalancing
            and cast(Any, app.tables).recovery.completed.is_set()
            and app.consumer_generation_id == generation
        )

    async def tick(self) -> None:
        """Values that time moves (a window rolled over, a rolling window slid), for the groups
        whose deltas partitions this worker holds: the table may still hold groups of partitions
        that moved away, and their values are the new owner's to write."""
        p = self.pipeline
        generation = p.app.consumer_generation_id
        if not self.settled(generation):
            return
        if generation != self._ticked_generation:  # groups moved: write all values they own
            self._ticked_generation = generation
            p.planner.forget_windows()
            p.aggregates.engine.forget_due()  # and find their future-dated records again
        topic = p.deltas.get_topic_name()
        mine = {tp.partition for tp in p.app.consumer.assignment() if tp.topic == topic}

        aggregates = p.aggregates
        async with p.aggregate_stage.lock:
            now = int(time.time() * 1000)
            # only partitions past the first-read rule (their first writes are the batch's)
            owns = aggregates.owned_by({q for q in mine if aggregates.first_reads_done(q)})
            engine = aggregates.engine
            writes = p.planner.due_by_time(engine, now, owns)  # reads only
            if engine.advance(now):  # future-dated records whose time came
                came = engine.changes(now, only_changed=False, metrics=p.planner.wanted)
                writes.extend(p.planner.plan([v for v in came if owns(v.group)], now, engine))
            aggregates.store.rollback()  # drop what the evaluation cached
            await aggregates.publish(writes)

    async def holes(self) -> None:
        """Messages Faust committed past without delivering them (see :mod:`.order`)."""
        p = self.pipeline
        app = p.app
        consumer = app.consumer
        committed = getattr(consumer, "_committed_offset", None)  # Faust keeps no public view
        if committed is None:
            return
        generation = app.consumer_generation_id
        for stage in (p.record_stage, p.aggregate_stage, p.writer_stage):
            for tp in consumer.assignment():
                if tp.topic != stage.order.topic or not self.settled(generation):
                    continue
                async with stage.lock:
                    try:
                        found = await stage.order.holes_behind(tp.partition, committed.get(tp))
                        if found is not None and self.settled(generation):  # it may have moved
                            await stage.apply([(Anchor(tp.topic, tp.partition), found)])
                    finally:
                        stage.rollback()  # nothing staged outlives the check
