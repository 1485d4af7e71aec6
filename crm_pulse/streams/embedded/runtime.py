"""The embedded runtime: one process, asyncio, everything durable in one SQLite file.

::

    sources ──poll──▶ log ◀── inbox ◀── HTTP (webhooks, ingress; 2xx after commit)
                       │
                  consumer (engine; state + offset + outbox in one transaction)
                       │
                    outbox ──▶ writers (per connector: batch, debounce, retry, DLQ) ──▶ CRMs

Tasks: one poller per source, the inbox processor, the consumer, one writer per sink, a ticker
for time (rollover, rolling windows) and the HTTP server. :meth:`EmbeddedRuntime.run` runs them
until ``stop`` is set, then drains: no new requests, stored webhooks parsed, the log consumed,
one last flush of the outbox, the database closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...config.models import Deployment
from ...connectors.protocols import Connector, Sink
from ...errors import FatalError
from ...metrics.events import Event
from ...metrics.report import MetricValue
from ..writeback import Backoff, Planner, SQLiteOutbox, Writer
from .checkpoints import Policy
from .consumer import BatchResult, Consumer
from .intake import STALL_INTERVALS, Intake, IntakeFront, build_connectors, cannot_listen
from .log import consumed_position
from .pollers import Cycle
from .views import _Views

__all__ = ["STALL_INTERVALS", "EmbeddedRuntime", "build_connectors", "cannot_listen"]

log = logging.getLogger("crm_pulse.runtime")

MAX_GROUP_VALUE = 1_000
"""Characters of a group value ``/explain`` accepts (a longer one is refused with a 400)."""


class EmbeddedRuntime(_Views, IntakeFront):
    """Runs one deployment in this process: an :class:`~.intake.Intake` (state file, inbox,
    pollers, log, quarantine) with the consumer, the outbox and the writers behind it."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        connectors: Mapping[str, Connector] | None = None,
        sinks: Mapping[str, Sink] | None = None,
        clock: Callable[[], float] = time.time,
        state_path: str | Path | None = None,
        defer_start: bool = False,
    ) -> None:
        """``defer_start``: load the state in :meth:`run`, after the HTTP server started, so
        ``/status`` and ``/healthz`` answer while it loads (``crm-pulse run``); otherwise it is
        loaded here (tests, tools)."""
        self.deployment = deployment
        self.settings = deployment.runtime
        self.clock = clock
        self._cycles: list[Cycle] = []  # finished reads, logged once the consumer applied them
        self.intake = Intake(
            deployment,
            connectors=connectors,
            clock=clock,
            state_path=state_path,
            on_cycle=self._cycles.append,
            # the checks that read the whole file wait for the start too (see _start)
            check=not defer_start,
        )
        intake = self.intake
        self.db = intake.db
        self.connectors = intake.connectors
        self.pollers = intake.pollers
        self.receivers = intake.receivers
        self.inbox = intake.inbox
        self.recent = intake.recent
        self.started_ms = intake.started_ms
        self.catalog = deployment.catalog()
        pulled = [n for n, c in self.connectors.items() if c.source is not None]
        self.planner = Planner(deployment.writeback, self.catalog, sources=pulled, by_time=True)
        self._reported: dict[str, tuple[int, int]] = {}
        self._said_ready = False
        self._position = self.db.call(lambda: consumed_position(self.db.conn))
        # before anything is planned: rows a killed process may have sent are never cancelled
        self.outbox = SQLiteOutbox(self.db)
        self.db.call(lambda: self.outbox.recover(self.db.conn))
        self.consumer = Consumer(
            self.db,
            self.catalog,
            deployment.window_specs(),
            self.planner,
            debounce=self.settings.debounce,
            clock=clock,
            on_changes=self._remember_changes,
            recent=self.recent,
            compact_every=(
                self.settings.event_log.compact_every
                if self.settings.event_log.keep == "latest"
                else None
            ),
            start=not defer_start,
            maybe_sent=self.outbox.maybe_sent,
            checkpoints=Policy(
                events=self.settings.checkpoint.events,
                interval=self.settings.checkpoint.interval,
                share=4,
            ),
        )
        self.starting: dict[str, Any] | None = (
            {"phase": "checking the state file", "since_ms": int(clock() * 1000)}
            if defer_start
            else None
        )
        """While :meth:`run` starts (deferred): what it is doing and how far, for /status."""
        self.tick_seconds: dict[str, float] = {}
        """Duration of the first, last and longest tick on the database thread (for /status;
        without the wait for a batch it was running)."""
        retry = self.settings.retry
        all_sinks = {n: c.sink for n, c in self.connectors.items() if c.sink is not None}
        all_sinks.update(sinks or {})
        self.writers = {
            name: Writer(
                name,
                sink,
                self.outbox,
                Backoff(retry.initial, retry.max, retry.attempts),
                clock=clock,
            )
            for name, sink in all_sinks.items()
        }
        self.recent_changes: list[MetricValue] = []
        self.changed_values = 0
        self.planned_writes = 0
        self.consumed_events = 0
        self.last_errors: list[str] = []

    # ------------------------------------------------------------ feeding
    def wake(self) -> None:
        """New events or requests are stored: let the consumer and inbox look now."""
        self.intake.wake()

    async def ingest(self, connector: str, events: Sequence[Event]) -> None:
        """Append events to the log durably (tests, imports, the config's quotas and spend)."""
        await self.intake.ingest(connector, events)

    async def load_config_events(self) -> None:
        """Quotas and spend from the deployment file (see :meth:`.Intake.load_config_events`)."""
        await self.intake.load_config_events()

    # ------------------------------------------------------------ consuming
    def _remember_changes(self, changes: list[MetricValue]) -> None:
        self.changed_values += len(changes)
        self.recent_changes.extend(changes)
        del self.recent_changes[:-200]

    async def consume(self) -> BatchResult:
        """One batch through the engine (one transaction)."""
        # a batch never crosses the end of a finished read, so its line counts exactly its events
        if self._cycles:
            self._log_cycles(self._position)  # reads that ended where the consumer stands
        ahead = [c.position - self._position for c in self._cycles if c.position > self._position]
        limit = min([self.settings.batch_size, *ahead])
        result = await self.db.run(lambda: self.consumer.step(limit))
        self._position = result.position
        if self._cycles:
            self._log_cycles(result.position)
        if self.planner.ready and not self._said_ready and self.pollers:
            self._said_ready = True
            log.info("every source finished its first complete read: writing values now")
        self.consumed_events += result.events
        self.planned_writes += result.planned
        self.intake.taken()
        if result.planned:
            for writer in self.writers.values():
                writer.wake()
        return result

    def _log_cycles(self, consumed: int) -> None:
        """One line per finished backfill or poll, once the consumer applied what it read:
        records read, and of the events applied since the last line for that source, how many
        moved a metric and how many changed nothing (re-reads, our own writes coming back)."""
        waiting = []
        for c in self._cycles:
            if c.position > consumed:
                waiting.append(c)
                continue
            changed = self.consumer.changed.get(c.connector, 0)
            unchanged = self.consumer.unchanged.get(c.connector, 0)
            was = self._reported.get(c.connector, (0, 0))
            self._reported[c.connector] = (changed, unchanged)
            log.info(
                "%s %s: %d record(s) read in %.1f s; %d changed a metric, %d unchanged%s",
                c.connector,
                c.kind,
                c.read,
                c.seconds,
                changed - was[0],
                unchanged - was[1],
                f"; {c.skipped} skipped (records that cannot be mapped)" if c.skipped else "",
            )
            if not self.planner.ready and c.connector not in self.planner.waiting_for:
                log.info(
                    "%s: first complete read applied; waiting for %s before writing",
                    c.connector,
                    ", ".join(sorted(self.planner.waiting_for)),
                )
        self._cycles[:] = waiting  # the pollers hold this very list

    def startup_summary(self) -> list[str]:
        """What ``run`` says when it starts (names, addresses and counts; no secret)."""
        targets: dict[str, int] = {}
        for rule in self.deployment.writeback:
            targets[rule.target.connector] = targets.get(rule.target.connector, 0) + 1
        rules = ", ".join(f"{n} {k}" for n, k in targets.items())
        lines = [
            *self.intake.startup_lines(),
            f"write-back rules: {len(self.deployment.writeback)}"
            + (f" ({rules})" if rules else ""),
            f"state file: {self.db.path}",
        ]
        if self.planner.waiting_for:
            lines.append(
                "nothing is written until these sources finished their first complete read: "
                + ", ".join(sorted(self.planner.waiting_for))
            )
        return lines

    async def consume_all(self) -> int:
        """Consume until the log has no backlog; returns the events consumed."""
        total = 0
        while True:
            result = await self.consume()
            total += result.events
            if result.backlog == 0:
                return total

    async def tick(self) -> int:
        spent: list[float] = []

        def timed() -> int:  # on the database thread: the tick's own time, not its wait
            began = time.perf_counter()
            try:
                return self.consumer.tick()
            finally:
                spent.append(time.perf_counter() - began)

        planned = await self.db.run(timed)
        took = round(spent[0], 4)
        ticks = self.tick_seconds
        ticks.setdefault("first", took)
        ticks["last"] = took
        ticks["max"] = max(ticks.get("max", 0.0), took)
        self.planned_writes += planned
        if planned:
            for writer in self.writers.values():
                writer.wake()
        return planned

    async def flush_writes(self, *, drain: bool = False) -> int:
        """Send everything due now through every writer; returns API calls made."""
        calls = 0
        for writer in self.writers.values():
            calls += await writer.flush(drain=drain)
        return calls

    # ------------------------------------------------------------ loops
    async def _consume_loop(self, stop: asyncio.Event) -> None:
        stored = self.intake.stored
        self.intake.reading = True
        try:
            while not stop.is_set():
                result = await self.consume()
                if result.backlog:
                    continue
                stored.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stored.wait(), timeout=1.0)
        finally:
            self.intake.reading = False
            self.intake.taken()

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.tick)

    async def run(
        self,
        stop: asyncio.Event,
        *,
        serve: Callable[[EmbeddedRuntime], Any] | None = None,
        backfill_first: bool = False,
    ) -> None:
        """Run every loop until ``stop`` is set, then drain and close.

        ``serve`` starts the HTTP server (it returns an object with ``async stop()``).
        """
        if self.starting is not None:  # HTTP first: /status and /healthz answer meanwhile
            server = await self._serve(serve)
            try:
                await self._start()
            except BaseException:
                if server is not None:
                    await server.stop()
                await self.close()
                raise
        else:
            await self.load_config_events()
            await self.consume_all()  # catch up first, so the first tick sees current values
            server = await self._serve(serve)
        for line in self.startup_summary():
            log.info(line)
        if backfill_first:
            await self.intake.backfill_first()
        inner = asyncio.Event()
        tasks = [
            asyncio.create_task(self._consume_loop(inner), name="consumer"),
            *self.intake.tasks(inner),
            asyncio.create_task(self._tick_loop(inner), name="ticker"),
            *(
                asyncio.create_task(w.run(inner), name=f"write:{n}")
                for n, w in self.writers.items()
            ),
        ]
        failure = await self.intake.supervise(stop, inner, tasks, server)
        if failure is None:
            log.info("stopping: finishing what was accepted (received webhooks, events, writes)")
            await self.intake.drain()
            await self.consume_all()
            await self.flush_writes(drain=True)
            left = len(self.pending_writes())
            log.info(
                "stopped: every accepted event applied and saved; %s",
                f"{left} field write(s) wait for the next start" if left else "no write pending",
            )
        await self.close()
        if failure is not None:
            raise failure

    async def _serve(self, serve: Callable[[EmbeddedRuntime], Any] | None) -> Any:
        try:
            return await serve(self) if serve is not None else None
        except OSError as exc:
            await self.close()
            raise cannot_listen(exc, "runtime.listen", self.settings.listen) from None
        except FatalError:  # the operations address (runtime.ops_listen) is taken
            await self.close()
            raise

    async def _start(self) -> None:
        """A deferred start: load the state on the database thread (reporting how far in
        :attr:`starting`), then catch up with the log, so the first tick sees current values."""
        starting = self.starting
        assert starting is not None

        def progress(done: int, total: int) -> None:
            starting.update(done=done, total=total)

        await self.db.run(self.db.check)
        starting.update(phase="loading state", since_ms=int(self.clock() * 1000))

        def phase(name: str, total: int) -> None:
            starting.clear()
            starting.update(phase=name, total=total, since_ms=int(self.clock() * 1000))

        await self.db.run(lambda: self.consumer.open(progress, phase))
        starting.clear()
        starting.update(phase="applying the log's backlog", since_ms=int(self.clock() * 1000))
        await self.load_config_events()
        await self.consume_all()
        self.starting = None

    async def close(self) -> None:
        """Checkpoint the engine state (:mod:`.checkpoints`), close connectors and the file."""
        try:
            if await self.db.run(self.consumer.checkpoint):
                done = self.consumer.checkpoints_done[-1]
                log.info(
                    "state checkpoint written at log position %d (%d entries changed since the "
                    "last one)",
                    done.position,
                    done.entries,
                )
        except Exception as exc:  # the next start re-applies the log after the last one
            log.warning("the state was not checkpointed at stop (%s)", str(exc)[:200])
        await self.intake.close()

    # ------------------------------------------------------------ looking (more in .views)
    async def explain(
        self, metric: str, window: str, group: Sequence[str], as_of: str | None = None
    ) -> dict[str, Any]:
        """The records that make one value now (the status page's drill-down); ``group`` as
        ``FIELD=VALUE`` items. Raises ``ValueError`` saying what is wrong with the question."""
        from ...metrics.events import parse_time
        from ...metrics.explain import parse_group
        from ..explain import explain_store

        try:
            when = int(self.clock() * 1000) if not as_of else parse_time(as_of)
        except ValueError as exc:
            raise ValueError(f"as_of: {str(exc)[:200]}") from None
        key = parse_group(group)
        for value in key[1::2]:
            if len(value) > MAX_GROUP_VALUE:
                raise ValueError(
                    f"group: a value of {len(value):,} characters (group values are ids and "
                    f"names: at most {MAX_GROUP_VALUE:,})"
                )

        def run() -> dict[str, Any]:
            # the group's records only, through the store's group index
            store = self.consumer.store
            assert store.index is not None
            found = explain_store(self.catalog, store, store.index, metric, window, key, when)
            return {
                **found.value_row(),
                "contributions": [c.to_json() for c in found.contributions],
            }

        return await self.db.run(run)
