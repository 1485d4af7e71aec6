"""The embedded runtime: one process, asyncio, one SQLite file (docs/runtime.md).

- ``runtime``: :class:`~.runtime.EmbeddedRuntime`, its tasks (pollers, inbox, consumer,
  writers, ticker) and the connectors it builds;
- ``database``: the state file (event log, inbox, engine state, cursors, outbox), one
  connection on one thread; ``state``: the engine's state in it; ``log``: the event log;
  ``retention``: what the file keeps (event-log compaction, last reported values);
- ``pollers`` and ``inbox``: what sources and webhooks store before anything acknowledges it;
- ``consumer``: the log applied to the engine, one transaction per batch;
- ``quarantine``: inputs that failed after they were accepted, with their reasons;
- ``commands``: what ``crm-pulse run``, ``backfill``, ``report``, ``events`` and ``provision``
  do; ``demo``: ``crm-pulse demo``.

The Faust runtime's edge process (webhooks and polling into Kafka) is built on ``runtime``,
``database``, ``log`` and ``pollers``; everything else here is this runtime's own.
"""
