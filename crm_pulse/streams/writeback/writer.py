"""The writer: flushes one connector's outbox through its sink.

Every round takes the rows that are due, sends them in batches of the sink's ``max_batch`` and
settles each one (up to ``sink.rounds_in_flight`` rounds out at once, settled in order, a field
in one of them at most: :meth:`Writer.flush`):

* written -> remembered as the field's last written value;
* a per-record retriable failure -> tried again after a backoff with jitter (or the vendor's
  Retry-After), and moved to the dead letters once the attempts are used up;
* a per-record permanent failure -> dead letters at once, with the vendor's reason;
* the whole call refused for rate (:class:`~crm_pulse.errors.RateLimited`) -> every row waits
  for Retry-After without using up an attempt, and the writer pauses until then;
* other retriable errors (timeouts, 5xx) -> backoff for the whole batch;
* a :class:`~crm_pulse.errors.FatalError` (bad credentials) propagates: the runtime stops.

Dead letters of transient failures (an outage outlasted the retries) come back by themselves:
after a round that wrote something, the writer re-queues them (capped; see
:meth:`SQLiteOutbox.requeue_dead`), since the CRM evidently answers again.

The clock is an input (``clock``), so tests drive time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ...connectors.protocols import Sink, WriteResult
from ...errors import FatalError, RateLimited, RetriableError, SkippableError
from ...retry import Backoff
from .outbox import OutboxItem, Outcome, SQLiteOutbox

__all__ = ["Writer", "WriterStats"]

log = logging.getLogger("crm_pulse.writeback")


def _field(item: OutboxItem) -> tuple[str, str, str, str]:
    w = item.write
    return (w.connector, w.object, w.record_id, w.field)


@dataclass
class WriterStats:
    calls: int = 0
    written: int = 0
    retried: int = 0
    dead: int = 0
    rate_limited: int = 0
    requeued: int = 0
    last_error: str = ""
    paused_until: float = 0.0
    recent: list[dict[str, object]] = field(default_factory=list)


class Writer:
    """Writes one connector's due outbox rows through its sink."""

    def __init__(
        self,
        connector: str,
        sink: Sink,
        outbox: SQLiteOutbox,
        backoff: Backoff,
        *,
        clock: Callable[[], float] = time.time,
        keep_recent: int = 50,
    ) -> None:
        self.connector = connector
        self.sink = sink
        self.outbox = outbox
        self.backoff = backoff
        self.clock = clock
        self.stats = WriterStats()
        self._keep_recent = keep_recent
        self._wake = asyncio.Event()
        self._maybe_dead = True  # dead letters of an earlier run may be waiting
        self._sending: set[tuple[str, str, str, str]] = set()
        """Fields in the rounds out (of every flush running): no other round takes them."""

    def wake(self) -> None:
        """Something was planned: look at the outbox now."""
        self._wake.set()

    async def flush(self, *, drain: bool = False) -> int:
        """Send everything due now (``drain``: also what waits for its debounce); returns the
        number of API calls made (rounds handed to the sink).

        Up to ``sink.rounds_in_flight`` rounds are out at once: the next round is handed over
        while earlier ones are still on their way, so a vendor that takes several calls at a
        time is kept busy while a round ends and settles. A field in a round in flight is in no
        other round (a newer value waits for the older one's settle, so values reach the CRM
        in order and a later one is never overwritten by an earlier one); rounds are settled in
        the order they were handed over. After a rate limit no round is handed over until the
        pause ends (those already out are settled). Leaving early (an error, cancellation)
        cancels the rounds still out: their rows stay pending, as after a kill."""
        calls = 0
        depth = max(1, self.sink.rounds_in_flight)
        limit = max(1, self.sink.max_batch)
        rounds: deque[tuple[list[OutboxItem], asyncio.Task[list[Outcome]]]] = deque()
        sending = self._sending
        more = True  # rows may be due (cleared when none was, set again after a settle)
        try:
            while True:
                while more and len(rounds) < depth:
                    now = self.clock()
                    if now < self.stats.paused_until:
                        break
                    batch = await self.outbox.due(
                        self.connector,
                        now,
                        limit,
                        debounced_too=drain,
                        exclude=frozenset(sending),
                    )
                    if not batch:
                        more = False
                        break
                    calls += 1
                    self.stats.calls += 1
                    sending.update(_field(item) for item in batch)
                    rounds.append((batch, asyncio.create_task(self._send(batch))))
                if not rounds:
                    return calls
                batch, sent = rounds[0]
                outcomes = await sent
                rounds.popleft()
                try:
                    await self.outbox.settle(outcomes, int(self.clock() * 1000))
                finally:  # settled, or left pending by a failed settle: free to go again
                    sending.difference_update(_field(item) for item in batch)
                more = True
                if any(o.kind == "dead" and o.transient for o in outcomes):
                    self._maybe_dead = True
                elif self._maybe_dead and any(o.kind == "written" for o in outcomes):
                    back = await self.outbox.requeue_dead(self.connector, self.clock())
                    self._maybe_dead = back > 0
                    if back:
                        self.stats.requeued += back
                        log.info(
                            "dead letters re-queued: the CRM answers again",
                            extra={"connector": self.connector, "requeued": back},
                        )
                if any(o.kind == "retry" and not o.counts_attempt for o in outcomes):
                    more = False  # rate limited: paused; the rounds out are settled, no more
        finally:
            for _batch, task in rounds:
                task.cancel()
            if rounds:
                await asyncio.gather(*(task for _b, task in rounds), return_exceptions=True)
                for batch, _task in rounds:  # unsettled: pending (and maybe sent) in the outbox
                    sending.difference_update(_field(item) for item in batch)

    async def _send(self, batch: Sequence[OutboxItem]) -> list[Outcome]:
        now = self.clock()
        try:
            results = await self.sink.write([item.write for item in batch])
        except RateLimited as exc:
            wait = self.backoff.delay(1, exc.retry_after)
            self.stats.rate_limited += 1
            self.stats.paused_until = now + wait
            self.stats.last_error = f"rate limited: {exc}"
            log.warning(
                "write-back paused by the vendor's rate limit",
                extra={"connector": self.connector, "retry_after": wait},
            )
            return [
                Outcome(item, "retry", retry_at=now + wait, reason=str(exc), counts_attempt=False)
                for item in batch
            ]
        except FatalError:
            raise
        except RetriableError as exc:
            return [self._retry(item, str(exc), None, now) for item in batch]
        except OSError as exc:  # a connection the sink did not translate: an outage too
            return [self._retry(item, f"{type(exc).__name__}: {exc}", None, now) for item in batch]
        except SkippableError as exc:
            return [self._dead(item, str(exc)) for item in batch]
        if len(results) != len(batch):
            raise FatalError(
                f"connector {self.connector!r}: its sink returned {len(results)} results "
                f"for {len(batch)} writes"
            )
        return [
            self._outcome(item, result, now) for item, result in zip(batch, results, strict=True)
        ]

    def _outcome(self, item: OutboxItem, result: WriteResult, now: float) -> Outcome:
        if result.ok:
            self.stats.written += 1
            self._remember(item, "written", "")
            return Outcome(item, "written")
        if result.retriable:
            return self._retry(item, result.reason, result.retry_after, now)
        return self._dead(item, result.reason or "refused by the CRM")

    def _retry(
        self, item: OutboxItem, reason: str, retry_after: float | None, now: float
    ) -> Outcome:
        attempt = item.attempts + 1
        if self.backoff.exhausted(attempt):
            return self._dead(item, f"gave up after {attempt} attempts: {reason}", transient=True)
        self.stats.retried += 1
        self.stats.last_error = reason
        return Outcome(
            item, "retry", retry_at=now + self.backoff.delay(attempt, retry_after), reason=reason
        )

    def _dead(self, item: OutboxItem, reason: str, *, transient: bool = False) -> Outcome:
        self.stats.dead += 1
        self.stats.last_error = reason
        self._remember(item, "dead letter", reason)
        log.warning(
            "%s %s %s.%s: write moved to the dead letters: %s",
            self.connector,
            item.write.object,
            item.write.record_id,
            item.write.field,
            reason,
            extra={
                "connector": self.connector,
                "object": item.write.object,
                "record_id": item.write.record_id,
                "field": item.write.field,
                "reason": reason,
            },
        )
        return Outcome(item, "dead", reason=reason, transient=transient)

    def _remember(self, item: OutboxItem, what: str, reason: str) -> None:
        w = item.write
        self.stats.recent.append(
            {
                "at_ms": int(self.clock() * 1000),
                "what": what,
                "object": w.object,
                "record_id": w.record_id,
                "field": w.field,
                "value": w.value,
                "reason": reason,
            }
        )
        del self.stats.recent[: -self._keep_recent]

    async def run(self, stop: asyncio.Event, poll: float = 1.0) -> None:
        """Flush whenever woken or something falls due, until ``stop`` is set."""
        while not stop.is_set():
            await self.flush()
            nxt = await self.outbox.next_due(self.connector)
            now = self.clock()
            wait = poll if nxt is None else max(0.0, min(poll, nxt - now))
            if self.stats.paused_until > now:
                wait = max(wait, min(poll, self.stats.paused_until - now))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait if wait > 0 else 0.01)
