"""The runtimes that keep the metrics live, and what they share.

- ``embedded``: one process, asyncio, one SQLite file (log, state, outbox): the default;
- ``faust``: Faust workers on Apache Kafka, for scale;
- ``writeback``: planning field writes from metric values, the outbox, the writers;
- ``http``: the HTTP server (webhooks, signed ingress, status page, ``/metrics``);
- tools both use: ``doctor`` (connectivity and permissions), ``audit`` (written fields read
  back), ``explain`` (the records behind a value), ``logs`` (logging set-up).

The public API is imported on first use, so a Faust worker does not load the embedded runtime::

    from crm_pulse.streams import EmbeddedRuntime, run, report_rows
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EmbeddedRuntime": "crm_pulse.streams.embedded.runtime",
    "Intake": "crm_pulse.streams.embedded",
    "build_connectors": "crm_pulse.streams.embedded.runtime",
    "Database": "crm_pulse.streams.embedded.database",
    "StateError": "crm_pulse.streams.embedded.database",
    "SQLiteStore": "crm_pulse.streams.embedded.state",
    "backfill": "crm_pulse.streams.embedded.commands",
    "compact_events": "crm_pulse.streams.embedded.commands",
    "dry_run": "crm_pulse.streams.embedded.commands",
    "provision": "crm_pulse.streams.embedded.commands",
    "report": "crm_pulse.streams.embedded.commands",
    "report_rows": "crm_pulse.streams.embedded.commands",
    "run": "crm_pulse.streams.embedded.commands",
    "Planner": "crm_pulse.streams.writeback",
    "SQLiteOutbox": "crm_pulse.streams.writeback",
    "Writer": "crm_pulse.streams.writeback",
    "serve_runtime": "crm_pulse.streams.http",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'crm_pulse.streams' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
