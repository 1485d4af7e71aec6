"""Write-back, shared by both runtimes: plan field writes from changed metric values
(:class:`Planner`), keep them in an outbox that coalesces and remembers the last written value
(:class:`SQLiteOutbox`), and flush it through a connector's sink with batching, backoff,
Retry-After and dead letters (:class:`Writer`). Retry delays come from the one policy,
:class:`crm_pulse.retry.Backoff` (re-exported here)."""

from ...retry import Backoff
from .outbox import OutboxItem, Outcome, SQLiteOutbox
from .planner import Planner, field_value
from .writer import Writer, WriterStats

__all__ = [
    "Backoff",
    "OutboxItem",
    "Outcome",
    "Planner",
    "SQLiteOutbox",
    "Writer",
    "WriterStats",
    "field_value",
]
