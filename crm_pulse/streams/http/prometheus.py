"""Prometheus text exposition (format 0.0.4) of a few counters, gauges and one histogram.

Small enough to write here: the runtime's numbers already live in its status; this module only
counts HTTP requests and acknowledgement latency and renders everything as text.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping

__all__ = ["HttpTelemetry", "render"]

ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + inner + "}"


class HttpTelemetry:
    """Requests by connector and status code, and the acknowledgement-latency histogram."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.ack_counts = [0] * (len(ACK_BUCKETS) + 1)
        self.ack_sum = 0.0
        self.ack_total = 0

    def observe(self, connector: str, status: int, seconds: float) -> None:
        self.requests[(connector, status)] += 1
        if 200 <= status < 300:
            self.ack_counts[bisect_left(ACK_BUCKETS, seconds)] += 1
            self.ack_sum += seconds
            self.ack_total += 1

    def lines(self) -> Iterable[str]:
        yield "# HELP crm_pulse_webhook_requests_total Webhook and ingress requests by answer."
        yield "# TYPE crm_pulse_webhook_requests_total counter"
        for (connector, status), n in sorted(self.requests.items()):
            yield f"crm_pulse_webhook_requests_total{_labels({'connector': connector, 'code': str(status)})} {n}"
        yield "# HELP crm_pulse_ack_seconds Time from request to 2xx (durable) answer."
        yield "# TYPE crm_pulse_ack_seconds histogram"
        cumulative = 0
        for bound, n in zip(ACK_BUCKETS, self.ack_counts, strict=False):
            cumulative += n
            yield f'crm_pulse_ack_seconds_bucket{{le="{bound}"}} {cumulative}'
        yield f'crm_pulse_ack_seconds_bucket{{le="+Inf"}} {self.ack_total}'
        yield f"crm_pulse_ack_seconds_sum {self.ack_sum:.6f}"
        yield f"crm_pulse_ack_seconds_count {self.ack_total}"


def render(status: Mapping[str, object], telemetry: HttpTelemetry) -> str:
    """The runtime's status numbers and the HTTP telemetry as Prometheus text."""
    out: list[str] = []

    def gauge(name: str, help_text: str, value: object, kind: str = "gauge") -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.append(f"{name} {float(value) if isinstance(value, int | float) else 0.0}")

    gauge(
        "crm_pulse_log_position",
        "Events appended to the log.",
        status.get("log_position", 0),
        "counter",
    )
    gauge(
        "crm_pulse_consumed_position",
        "Log position the engine has applied.",
        status.get("consumed_position", 0),
        "counter",
    )
    gauge(
        "crm_pulse_backlog_events", "Events in the log not yet applied.", status.get("backlog", 0)
    )
    gauge(
        "crm_pulse_outbox_depth", "Field writes waiting to be sent.", status.get("outbox_depth", 0)
    )
    gauge(
        "crm_pulse_inbox_depth",
        "Stored webhook requests not yet parsed.",
        status.get("inbox_depth", 0),
    )
    gauge("crm_pulse_dead_letters", "Writes that failed for good.", status.get("dead_letters", 0))
    gauge(
        "crm_pulse_quarantined",
        "Inputs quarantined after acknowledgement (crm-pulse quarantine list).",
        status.get("quarantined", 0),
    )
    gauge(
        "crm_pulse_events_per_second",
        "Events applied per second since start.",
        status.get("events_per_second", 0),
    )
    connectors = status.get("connectors")
    per: list[tuple[str, str, str, object]] = [
        ("crm_pulse_written_total", "counter", "Field values written.", "written"),
        ("crm_pulse_write_calls_total", "counter", "Write API calls made.", "write_calls"),
        ("crm_pulse_polled_events_total", "counter", "Events pulled by polling.", "events"),
        (
            "crm_pulse_poll_lag_seconds",
            "gauge",
            "Seconds since the last successful poll.",
            "lag_seconds",
        ),
    ]
    if isinstance(connectors, Mapping):
        for name, kind, help_text, key in per:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            for connector, item in sorted(connectors.items()):
                if isinstance(item, Mapping) and isinstance(item.get(str(key)), int | float):
                    out.append(
                        f"{name}{_labels({'connector': str(connector)})} {float(item[str(key)])}"
                    )
    out.extend(telemetry.lines())
    return "\n".join(out) + "\n"
