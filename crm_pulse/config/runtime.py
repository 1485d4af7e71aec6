"""The ``runtime`` section: embedded (SQLite) or Faust, addresses, batching, retries, logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
)

from .base import ConfigModel, FilePath
from .durations import Duration, format_duration
from .secrets import Secret

__all__ = [
    "CheckpointSettings",
    "EventLogSettings",
    "FaustSettings",
    "RetrySettings",
    "RuntimeSection",
]


def _listen(value: Any) -> Any:
    text = value if isinstance(value, str) else ""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port like 127.0.0.1:8080, got {value!r}")
    return text


def _broker(value: str) -> str:
    for url in value.split(";"):
        parts = urlsplit(url.strip())
        if parts.scheme not in ("kafka", "aiokafka", "confluent") or not parts.hostname:
            raise ValueError(f"expected a broker URL like kafka://127.0.0.1:9092, got {url!r}")
    return value


class RetrySettings(ConfigModel):
    """How failed writes are retried: exponential backoff with jitter, then dead letters."""

    initial: Annotated[Duration, Field(gt=0)] = Field(default=1.0, description="First delay.")
    max: Annotated[Duration, Field(gt=0)] = Field(default=300.0, description="Longest delay.")
    attempts: int = Field(
        default=10, ge=1, description="Attempts before a write goes to the dead letters."
    )


class EventLogSettings(ConfigModel):
    """What the embedded runtime's event log keeps (docs/runtime.md, "Event log retention")."""

    keep: Literal["latest", "all"] = Field(
        default="latest",
        description="latest: once applied, only the event that decides each record's final "
        "state is kept (every event of objects a stage-history measure reads), so "
        "`crm-pulse events export | crm-pulse replay` still equals `crm-pulse report`; "
        "all: every event, forever.",
    )
    compact_every: int = Field(
        default=100_000,
        ge=1,
        description="keep: latest compacts the log once this many events were applied since "
        "the last compaction, and at least as many as that compaction kept.",
    )


class CheckpointSettings(ConfigModel):
    """When the embedded runtime writes its engine state to the state file (docs/runtime.md,
    "State checkpoints"). Each batch commits its events' position and its planned writes; the
    engine state follows at checkpoints, and a start re-applies the log after the last one."""

    events: int = Field(
        default=10_000,
        ge=1,
        description="While the consumer has a backlog, a checkpoint once this many events were "
        "applied since the last one, and at least a quarter of all events applied (so its cost "
        "per event stays flat as the state grows); at most that many events are re-applied "
        "after a crash.",
    )
    interval: Annotated[Duration, Field(gt=0)] = Field(
        default=10.0,
        description="Once the consumer has caught up (a batch that found no new event, or a "
        "tick with no backlog), a checkpoint this long after the last one; also one at every "
        "clean stop.",
    )


def _at_least_once(value: str) -> str:
    if value == "exactly_once":
        raise ValueError(
            "exactly_once is not supported: faust-streaming 0.15.3 failed with it here "
            "(IllegalOperation errors), and transaction markers would leave gaps in the offsets "
            "the runtime checks; keep at_least_once, with which every stage is idempotent and "
            "each event counts exactly once (docs/faust.md)"
        )
    return value


def _session_timeout(value: float) -> float:
    if not 1.0 <= value <= 300.0:
        raise ValueError(
            f"expected between 1s and 5m, got {format_duration(value)}: heartbeats go every "
            "fifth of it, and a worker silent that long is put out of the group"
        )
    return value


class FaustSettings(ConfigModel):
    """The Faust runtime (``runtime.kind: faust``)."""

    app_id: str = Field(
        default="crm-pulse", min_length=1, description="Faust app id: consumer group, topics."
    )
    broker: Annotated[str, AfterValidator(_broker)] = Field(
        default="kafka://127.0.0.1:9092",
        description="Kafka broker URL(s), ';'-separated: kafka://, aiokafka:// or confluent://.",
    )
    partitions: int = Field(default=8, ge=1, description="Partitions of the topics created.")
    store: Literal["memory", "rocksdb"] = Field(
        default="memory",
        description="Table store: memory (rebuilt from the changelog at start) or rocksdb.",
    )
    standby_replicas: int = Field(default=1, ge=0, description="Standby copies of each table.")
    data_dir: FilePath = Field(
        default=Path("crm-pulse-data"),
        validate_default=True,
        description="Where workers keep their tables on disk (store: rocksdb); relative to the "
        "deployment file's directory. Each worker process takes a directory of its own under "
        "<data_dir>/<app_id> (worker-0, worker-1, ..., locked while it runs), so several "
        "workers can start from one directory and a restarted one finds its tables again.",
    )
    static_membership: bool = Field(
        default=True,
        description="Each worker joins the consumer group with a group.instance.id of its own, "
        "kept in its data directory (KIP-345): a worker restarted within session_timeout "
        "(after a crash, a SIGKILL, a deploy) takes its partitions back at once, with its own "
        "tables, and no rebalance. A stopped worker does not leave the group: its partitions "
        "move to the others only after session_timeout (docs/faust.md). false: a stop leaves "
        "at once; every restart is two rebalances.",
    )
    session_timeout: Annotated[Duration, AfterValidator(_session_timeout)] = Field(
        default=10.0,
        description="How long the broker waits for a silent worker before its partitions move "
        "to the others (heartbeats every fifth of it, at most 1s). Shorter: faster fail-over, "
        "but a worker whose event loop is blocked longer is put out of the group. Below 6s the "
        "broker must allow it (group.min.session.timeout.ms).",
    )
    processing_guarantee: Annotated[
        Literal["at_least_once", "exactly_once"], AfterValidator(_at_least_once)
    ] = Field(
        default="at_least_once",
        description="at_least_once: the runtime makes every stage idempotent, which gives an "
        "exactly-once effect (docs/faust.md). exactly_once (Kafka transactions) is refused.",
    )


class RuntimeSection(ConfigModel):
    """How crm-pulse runs."""

    kind: Literal["embedded", "faust"] = Field(
        default="embedded",
        description="embedded: one process, state in SQLite; faust: Kafka workers.",
    )
    state_path: FilePath = Field(
        default=Path("crm-pulse.sqlite"),
        validate_default=True,
        description="SQLite file of the embedded runtime (log, state, outbox); relative to the "
        "deployment file's directory.",
    )
    listen: Annotated[str, BeforeValidator(_listen)] = Field(
        default="127.0.0.1:8080", description="host:port of the HTTP server (webhooks, status)."
    )
    ops_listen: Annotated[str, BeforeValidator(_listen)] | None = Field(
        default=None,
        description="host:port serving the operations endpoints (/, /status, /metrics, "
        "/overview) apart from the webhooks; default: on `listen` with them.",
    )
    ops_token: Secret | None = Field(
        default=None,
        description="Bearer token (${ENV}) the operations endpoints require; /healthz stays open.",
    )
    batch_size: int = Field(
        default=500, ge=1, le=100_000, description="Events the engine takes per transaction."
    )
    debounce: Duration = Field(
        default=2.0,
        description="Write-back waits this long after a change so a burst becomes one write.",
    )
    tick: Annotated[Duration, Field(gt=0)] = Field(
        default=60.0,
        description="How often time alone is checked: calendar rollover and rolling windows.",
    )
    retry: RetrySettings = Field(
        default_factory=RetrySettings, description="Retries of failed writes."
    )
    event_log: EventLogSettings = Field(
        default_factory=EventLogSettings,
        description="Retention of the embedded runtime's event log.",
    )
    checkpoint: CheckpointSettings = Field(
        default_factory=CheckpointSettings,
        description="When the embedded runtime writes its engine state to the state file.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level logged."
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one object per line; text: for people."
    )
    faust: FaustSettings = Field(
        default_factory=FaustSettings, description="Faust settings (kind: faust)."
    )

    @property
    def host(self) -> str:
        host = self.listen.rpartition(":")[0]
        return host[1:-1] if host.startswith("[") else host

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])
