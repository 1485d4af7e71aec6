"""The embedded runtime: one process, asyncio, one SQLite file (docs/runtime.md).

- ``intake``: :class:`~.intake.Intake`, the durable front both runtimes share: the state file,
  the connectors, the webhook inbox, the pollers with their cursors, the event log and the
  quarantine (no engine, no metric state);
- ``runtime``: :class:`~.runtime.EmbeddedRuntime`, an intake with the consumer, the outbox,
  the writers and the ticker behind it;
- ``database``: the state file (event log, inbox, engine state, cursors, outbox), one
  connection on one thread; ``state``: the engine's state in it; ``log``: the event log;
  ``retention``: what the file keeps (event-log compaction, last reported values);
- ``pollers`` and ``inbox``: what sources and webhooks store before anything acknowledges it;
- ``consumer``: the log applied to the engine, one transaction per batch;
- ``quarantine``: inputs that failed after they were accepted, with their reasons;
- ``commands``: what ``crm-pulse run``, ``backfill``, ``report``, ``events`` and ``provision``
  do; ``demo``: ``crm-pulse demo``.

The Faust runtime's edge process (webhooks and polling into Kafka) is an :class:`Intake` with a
forwarder behind it instead of the consumer; it uses only what this module exports.
"""

from .database import Database
from .intake import (
    STALL_INTERVALS,
    Intake,
    IntakeFront,
    LogBatch,
    build_connectors,
    cannot_listen,
)
from .log import last_position

__all__ = [
    "STALL_INTERVALS",
    "Database",
    "Intake",
    "IntakeFront",
    "LogBatch",
    "build_connectors",
    "cannot_listen",
    "last_position",
]
