"""The hot topics' messages handed to our agents a fetch at a time, not one by one.

Faust's consumer loop (``Consumer._drain_messages``) hands every fetched message to the
conductor on its own: two tasks and an ``asyncio.wait`` per message (racing the delivery with
flow control), then the topic's channel, the agent's stream buffer, ``take_events`` and an
acknowledgement per event. For the three topics our agents read (events, deltas, values) that
machinery was about 40 % of a busy worker's CPU (py-spy, docs/benchmarks.md), as much as the
whole embedded runtime spends on an event, and our agents did not need any of it: each keeps
its own input positions (:mod:`.order`) and processes batches.

:class:`BatchConsumer` is Faust's aiokafka consumer with that one loop replaced. It fetches with
Faust's own ``getmany`` (so Faust still decides which partitions are active: paused during table
recovery and rebalances, the generation checks, flow control), keeps Faust's read offsets and
gap bookkeeping and its commit every ``broker_commit_every`` acknowledgements, and routes every
other topic (the changelogs, Faust's own) through Faust's per-message path unchanged. The
messages of a hot topic fetched in one round go, in fetch order, as one chunk into that topic's
:class:`Inbox` (a queue under Faust's flow control: cleared at a rebalance, like an agent's
buffer). The agent's loop (:meth:`.FaustPipeline._consume`) takes chunks, applies them through
its :class:`~.stage.Stage` and, once the batch's state is committed, acknowledges every message
to Faust's consumer, which commits offsets only up to its first unacknowledged one. Each chunk's
last message per partition is tracked as in flight (``Consumer.track_message``), so a rebalance
(``stream_wait_empty``) and a stop still wait for a batch being applied, and a chunk cleared
from the queue is forgotten with it (Faust's set of unacknowledged messages holds them weakly).

What does not change: output before state, state before offsets, positions in our own tables
(:mod:`.order` reads back anything not delivered and drops anything delivered twice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer

__all__ = ["BatchConsumer", "Inbox", "install"]

log = logging.getLogger("crm_pulse.faust")

CHUNKS = 4
"""Chunks a topic's inbox holds before the consumer loop waits for the agent (back-pressure)."""


class Inbox:
    """One hot topic's fetched messages, a chunk (a list, in fetch order) per put."""

    def __init__(self, app: Any, topic: str, maxsize: int = CHUNKS) -> None:
        self.topic = topic
        self.queue: asyncio.Queue[list[Any]] = app.FlowControlQueue(
            maxsize=maxsize, clear_on_resume=True
        )

    async def put(self, chunk: list[Any]) -> None:
        await self.queue.put(chunk)

    async def take(self, limit: int, window: float = 0.0) -> list[Any]:
        """At least one chunk, then whatever else is queued, up to about ``limit`` messages;
        with a ``window``, waits up to that many seconds after the first chunk for more."""
        out = list(await self.queue.get())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window
        while len(out) < limit:
            try:
                out.extend(self.queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                out.extend(await asyncio.wait_for(self.queue.get(), left))
            except TimeoutError:
                break
        return out


class BatchConsumer(FaustConsumer):
    """Faust's aiokafka consumer whose loop hands the hot topics' messages over a fetch at a
    time (see the module's docstring). ``inboxes`` maps a topic name to its :class:`Inbox`
    (a class attribute: :func:`install` makes a subclass per app)."""

    inboxes: ClassVar[dict[str, Inbox]] = {}

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - needs Kafka
        # Faust 0.15.3's loop (transport/consumer.py), but a chunk per hot topic and fetch.
        try:
            while not (self.should_stop or fetcher.should_stop):
                self.diag.set_flag(CONSUMER_FETCHING)
                ait = self.getmany(timeout=1.0)
                await asyncio.sleep(0)
                if not self.should_stop:
                    # one round in a method of its own: once handed over (or dropped at a flow
                    # stop), nothing here references a chunk (Faust's set of in-flight messages
                    # is weak; a rebalance waits until it empties)
                    await self._round(ait)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _round(self, ait: Any) -> None:  # pragma: no cover - needs Kafka
        """One fetch: Faust's per-message path for other topics, a chunk per hot topic."""
        read_offset = self._read_offset
        commit_every = self.app.conf.broker_commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        inboxes = self.inboxes
        chunks: dict[str, list[Any]] = {}
        last: dict[Any, Any] = {}
        since_yield = 0
        async for tp, message in ait:
            offset = message.offset
            r_offset = read_offset[tp]
            if r_offset is not None and offset < r_offset:
                continue  # Faust drops these too (read already)
            gap = offset - (r_offset or 0)
            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            if tp.topic not in inboxes:  # Faust's own path, message by message
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                await self.wait_first(self.callback(message), self.suspend_flow.wait())
            else:
                chunks.setdefault(tp.topic, []).append(message)
                last[tp] = message
                since_yield += 1
                if since_yield > 1000:
                    await asyncio.sleep(0)
                    since_yield = 0
            read_offset[tp] = offset
        if chunks:
            for message in last.values():
                self.track_message(message)  # in flight until the agent acknowledges it
            for topic, chunk in chunks.items():
                await self.wait_first(inboxes[topic].put(chunk), self.suspend_flow.wait())
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()


def install(app: Any) -> Callable[[str], Inbox]:
    """Make ``app`` use a :class:`BatchConsumer` (call before its consumer exists: Faust
    creates it when the worker starts); returns a function that opens the inbox of a topic
    (its messages then reach that inbox, not a Faust agent)."""
    inboxes: dict[str, Inbox] = {}
    app.transport.Consumer = type("BatchConsumer", (BatchConsumer,), {"inboxes": inboxes})

    def inbox(topic: str) -> Inbox:
        box = inboxes[topic] = Inbox(app, topic)
        return box

    return inbox


def acknowledge(consumer: Any, messages: Sequence[Any]) -> None:
    """Tell Faust's consumer that ``messages`` (Faust's, as fetched) are done."""
    ack = consumer.ack
    for message in messages:
        ack(message)
