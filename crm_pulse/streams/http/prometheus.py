"""``GET /metrics``: the runtime in Prometheus' exposition format, through prometheus-client.

* HTTP: ``crm_pulse_webhook_requests_total{connector,code}`` and the acknowledgement-latency
  histogram ``crm_pulse_ack_seconds``, counted as requests come;
* the runtime, read from its status at each scrape: the log (``crm_pulse_events_appended_total``,
  ``crm_pulse_events_applied_total``, ``crm_pulse_backlog_events``), per connector the events
  that changed a metric and those that changed nothing, polled events, fields written, write
  calls and poll lag, the outbox, inbox, dead letters and quarantined inputs
  (``crm_pulse_quarantined``), sources still on their first read;
* ``crm_pulse_metric_value{metric,window,group}``: one gauge per value the write-back rules
  write (so its number of series is bounded by the rules and their records);
* the process (CPU, memory, file descriptors, start time), the platform and the garbage
  collector, from prometheus-client's own collectors.

Counters end in ``_total``; nothing is an average since the start (rates are PromQL's job).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "HttpTelemetry", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class _Snapshot(Collector):
    """The runtime's numbers as of the scrape being rendered (set just before rendering)."""

    def __init__(self) -> None:
        self.status: Mapping[str, Any] = {}
        self.values: Iterable[Mapping[str, Any]] = ()

    def collect(self) -> Iterator[Metric]:
        s = self.status
        simple: list[tuple[str, str, str, bool]] = [
            ("crm_pulse_events_appended", "Events appended to the log.", "log_position", True),
            ("crm_pulse_events_applied", "Events the engine applied.", "consumed_position", True),
            ("crm_pulse_backlog_events", "Events in the log not applied yet.", "backlog", False),
            ("crm_pulse_outbox_writes", "Field writes waiting to be sent.", "outbox_depth", False),
            (
                "crm_pulse_inbox_requests",
                "Webhook requests stored, not parsed.",
                "inbox_depth",
                False,
            ),
            (
                "crm_pulse_dead_letters",
                "Writes that failed for good (still unresolved).",
                "dead_letters",
                False,
            ),
            (
                "crm_pulse_quarantined",
                "Inputs quarantined after acknowledgement (crm-pulse quarantine list).",
                "quarantined",
                False,
            ),
        ]
        for name, help_text, key, counter in simple:
            value = _number(s.get(key))
            if value is None:
                continue
            if counter:
                yield CounterMetricFamily(name, help_text, value=value)
            else:
                yield GaugeMetricFamily(name, help_text, value=value)
        pending = s.get("first_reads_pending")
        if isinstance(pending, list):
            yield GaugeMetricFamily(
                "crm_pulse_first_reads_pending",
                "Sources whose first complete read is not done (nothing is written until 0).",
                value=len(pending),
            )
        per: list[tuple[str, str, str, bool]] = [
            ("crm_pulse_events_changed", "Events that changed a metric.", "changed", True),
            (
                "crm_pulse_events_unchanged",
                "Events that changed nothing (re-reads, our own writes).",
                "unchanged",
                True,
            ),
            ("crm_pulse_polled_events", "Events pulled by polling.", "events", True),
            ("crm_pulse_fields_written", "Field values written.", "written", True),
            ("crm_pulse_write_calls", "Write API calls made.", "write_calls", True),
            (
                "crm_pulse_poll_lag_seconds",
                "Seconds since the last successful poll.",
                "lag_seconds",
                False,
            ),
        ]
        connectors = s.get("connectors")
        items = sorted(connectors.items()) if isinstance(connectors, Mapping) else []
        for name, help_text, key, counter in per:
            family: CounterMetricFamily | GaugeMetricFamily = (
                CounterMetricFamily(name, help_text, labels=["connector"])
                if counter
                else GaugeMetricFamily(name, help_text, labels=["connector"])
            )
            for connector, item in items:
                value = _number(item.get(key)) if isinstance(item, Mapping) else None
                if value is not None:
                    family.add_metric([str(connector)], value)
            yield family
        gauge = GaugeMetricFamily(
            "crm_pulse_metric_value",
            "A value the write-back rules write: metric, window and group (empty: company-wide).",
            labels=["metric", "window", "group"],
        )
        seen: set[tuple[str, str, str]] = set()
        for v in self.values:
            labels = (str(v["metric"]), str(v["window"]), str(v["group"]))
            value = _number(v.get("value"))
            if value is None or labels in seen:  # undefined, or the same value for two targets
                continue
            seen.add(labels)
            gauge.add_metric(list(labels), value)
        yield gauge


class HttpTelemetry:
    """The exporter's registry: HTTP counters as requests come, process metrics, and the
    runtime's numbers at each scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.requests = Counter(
            "crm_pulse_webhook_requests",
            "Webhook and ingress requests by connector and answer code.",
            ["connector", "code"],
            registry=self.registry,
        )
        self.ack = Histogram(
            "crm_pulse_ack_seconds",
            "Time from request to its 2xx (durable) answer.",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.snapshot = _Snapshot()
        self.registry.register(self.snapshot)

    def observe(self, connector: str, status: int, seconds: float) -> None:
        self.requests.labels(connector=connector, code=str(status)).inc()
        if 200 <= status < 300:
            self.ack.observe(seconds)


def render(
    status: Mapping[str, Any],
    telemetry: HttpTelemetry,
    values: Iterable[Mapping[str, Any]] = (),
) -> str:
    """Everything as Prometheus text (the snapshot is set and read without awaiting between)."""
    telemetry.snapshot.status = status
    telemetry.snapshot.values = list(values)
    try:
        return generate_latest(telemetry.registry).decode("utf-8")
    finally:
        telemetry.snapshot.status, telemetry.snapshot.values = {}, ()
