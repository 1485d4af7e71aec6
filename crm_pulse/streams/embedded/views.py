"""What a running embedded runtime shows: ``/status`` and ``/healthz``, the status page's
overview, the write-back rules' values (``/metrics``), the pending writes and the report."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from ...config.models import Deployment
from ...connectors.protocols import Connector, FieldWrite
from ...metrics.calendar import CURRENT, Window, WindowSpec
from ...metrics.catalog import Catalog
from ...metrics.report import MetricValue, evaluate, json_number
from ..writeback import Planner, SQLiteOutbox, Writer
from .consumer import Consumer
from .database import Database
from .inbox import SQLiteInbox
from .intake import Intake
from .log import consumed_position, state_position


class _Views:
    """The runtime's read side (mixed into :class:`~.runtime.EmbeddedRuntime`, which sets these)."""

    deployment: Deployment
    clock: Callable[[], float]
    intake: Intake
    db: Database
    connectors: dict[str, Connector]
    inbox: SQLiteInbox
    catalog: Catalog
    planner: Planner
    outbox: SQLiteOutbox
    consumer: Consumer
    writers: dict[str, Writer]
    starting: dict[str, Any] | None
    tick_seconds: dict[str, float]
    consumed_events: int
    last_errors: list[str]

    def pending_writes(self) -> list[tuple[FieldWrite, float | int | None]]:
        """Pending writes with the last written value of each field (old -> new)."""
        return self.db.call(lambda: self.outbox.pending(self.db.conn))

    def report(self, as_of: int | None = None) -> list[MetricValue]:
        when = int(self.clock() * 1000) if as_of is None else as_of
        return self.db.call(lambda: self.consumer.report(when))

    async def overview(self) -> dict[str, Any]:
        """What the status page shows: status, company-wide metrics with six months of history,
        recent write-backs (names and numbers only)."""
        status = await self.status_async()
        now = int(self.clock() * 1000)
        if self.starting is not None:  # nothing loaded yet: no value to show (status says why)
            return {
                "status": status,
                "metrics": [],
                "writes": [],
                "rules": [],
                "now_ms": now,
                "timezone": self.deployment.timezone,
                "currency": self.deployment.metrics.currency,
            }
        metrics = await self.db.run(lambda: self._metric_overview(now))
        values = await self.metric_values()
        writes = [
            {"connector": name, **w}
            for name, writer in self.writers.items()
            for w in writer.stats.recent[-20:]
        ]
        writes.sort(key=lambda w: int(str(w.get("at_ms", 0))), reverse=True)
        units = {
            (r.target.connector, r.target.object, r.target.field): self.catalog.metrics[
                r.metric
            ].definition.unit
            for r in self.deployment.writeback
            if r.metric in self.catalog.metrics
        }
        for w in writes:
            w["unit"] = units.get((str(w["connector"]), str(w["object"]), str(w["field"])))
        return {
            "status": status,
            "metrics": metrics,
            "writes": writes[:20],
            "rules": values,
            "now_ms": now,
            "timezone": self.deployment.timezone,
            "currency": self.deployment.metrics.currency,
        }

    async def metric_values(self) -> list[dict[str, Any]]:
        """Every write-back rule's value per group now (``/metrics``, the status page); none
        while the state is still loading."""
        if self.starting is not None:
            return []
        now = int(self.clock() * 1000)
        return await self.db.run(lambda: self._rule_values(now))

    def _rule_values(self, now: int) -> list[dict[str, Any]]:
        out = []
        for v in self.planner.values(self.consumer.engine, now):
            rule = v.rule
            which = "previous " if rule.which == "previous" else ""
            group = "" if not rule.group else f"{rule.group[0]}={v.group[1]}"
            out.append(
                {
                    "rule": v.index,
                    "metric": rule.metric,
                    "unit": self.catalog.metrics[rule.metric].definition.unit,
                    "window": f"{which}{rule.window}",
                    "period": v.window.label,
                    "group": group,
                    "connector": rule.target.connector,
                    "object": rule.target.object,
                    "record": v.record,
                    "field": rule.target.field,
                    "value": v.value,
                }
            )
        return out

    def _metric_overview(self, now: int) -> list[dict[str, Any]]:
        engine = self.consumer.engine
        month = WindowSpec("month")
        index = engine.calendar.index_of("month", now)
        out = []
        for metric in self.catalog.metrics.values():
            if () not in metric.groups:
                continue
            if metric.is_current:
                windows = [Window(CURRENT)]
            elif metric.supports(month):
                windows = [Window(month, i) for i in range(index - 5, index + 1)]
            else:
                continue
            series = [
                json_number(evaluate(self.catalog, engine, metric, (), w, now)) for w in windows
            ]
            out.append(
                {
                    "metric": metric.name,
                    "window": windows[-1].label,
                    "category": metric.category,
                    "unit": metric.definition.unit,
                    "value": series[-1],
                    "series": series,
                }
            )
        return out

    def health(self) -> str | None:
        """None when healthy, else why not (for /healthz): see :meth:`.Intake.health`."""
        return self.intake.health()

    def status(self) -> dict[str, Any]:
        """Operational status (no secrets: names, counts, cursors and errors only)."""
        return self._status(self.db.call(lambda: self._read_status(self.db.conn)))

    async def status_async(self) -> dict[str, Any]:
        """:meth:`status` without blocking the event loop (for the HTTP server), from a
        read-only connection: it never waits for the database thread (a state loading, the
        first writes being planned, a long tick)."""
        return self._status(await self.db.read(self._read_status))

    def _read_status(self, conn: sqlite3.Connection) -> dict[str, Any]:
        return {
            **self.intake.read_status(conn),
            "consumed_position": consumed_position(conn),
            # the state in the file is the log's up to here (its last checkpoint)
            "checkpoint_position": state_position(conn),
            "outbox_depth": SQLiteOutbox.depth(conn),
            "dead_letters": SQLiteOutbox.dead_letter_count(conn),
            "recent_dead_letters": SQLiteOutbox.dead_letters(conn, 10),
        }

    def _status(self, db: dict[str, Any]) -> dict[str, Any]:
        uptime = self.intake.uptime()
        connectors: dict[str, Any] = {}
        for name in self.connectors:
            item: dict[str, Any] = {
                **self.intake.connector_status(name),
                "changed": self.consumer.changed.get(name, 0),
                "unchanged": self.consumer.unchanged.get(name, 0),
            }
            writer = self.writers.get(name)
            if writer is not None:
                ws = writer.stats
                item.update(
                    write_calls=ws.calls,
                    written=ws.written,
                    retried=ws.retried,
                    dead=ws.dead,
                    rate_limited=ws.rate_limited,
                    write_error=ws.last_error,
                    recent_writes=list(ws.recent[-10:]),
                )
            connectors[name] = item
        activity = self.consumer.activity
        return {
            "starting": None if self.starting is None else dict(self.starting),
            "activity": activity,
            # the last state checkpoints (.checkpoints): what each wrote and what it cost
            "checkpoints": [c.to_json() for c in list(self.consumer.checkpoints_done)],
            "first_writes_cpu_s": self.consumer.first_writes_cpu_s,
            "compactions": list(self.consumer.compactions_done),  # of the event log
            "tick_seconds": dict(self.tick_seconds),
            "connectors": connectors,
            "events_per_second": round(self.consumed_events / uptime, 3),
            "changes_per_second": round(sum(self.consumer.changed.values()) / uptime, 3),
            "first_reads_pending": sorted(self.planner.waiting_for),
            "backlog": db["log_position"] - db["consumed_position"],
            **db,
            **self.intake.inbox_status(),
            "last_errors": [e for e in (self.inbox.last_error,) if e] + self.last_errors[-10:],
        }
