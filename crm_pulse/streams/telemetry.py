"""A small metrics registry rendered in the Prometheus text exposition format (0.0.4).

Why not ``prometheus_client``: we need counters, gauges and one latency histogram per registry
instance (tests and several runtimes in one process must not share a global registry), and the
text format is a few dozen lines. The API mirrors prometheus_client (``labels(...)``, ``inc``,
``set``, ``observe``) so switching later is mechanical.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

__all__ = [
    "LATENCY_BUCKETS",
    "Counter",
    "Gauge",
    "Histogram",
    "RateMeter",
    "Telemetry",
]

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
LabelValues = tuple[str, ...]


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str]) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labelnames:
            if not _LABEL.match(label) or label == "le":
                raise ValueError(f"invalid label name {label!r} in {name}")
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        return [f"# HELP {self.name} {text}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A value that only goes up (name it ``..._total``)."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[LabelValues, float] = {} if labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels_text(self.labelnames, k)} {_num(v)}" for k, v in items]


class Gauge(_Metric):
    """A value that goes up and down; or sampled at scrape time with ``set_function``."""

    kind = "gauge"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[LabelValues, float] = {} if labelnames else {(): 0.0}
        self._function: Callable[[], float] | None = None

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)

    def set_function(self, function: Callable[[], float]) -> None:
        """Read the value from ``function`` at each scrape (unlabelled gauges only)."""
        if self.labelnames:
            raise ValueError("set_function is for gauges without labels")
        self._function = function

    def value(self, **labels: str) -> float:
        if self._function is not None:
            return float(self._function())
        return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        if self._function is not None:
            return [f"{self.name} {_num(float(self._function()))}"]
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels_text(self.labelnames, k)} {_num(v)}" for k, v in items]


class Histogram(_Metric):
    """Observations counted in cumulative buckets (latencies, in seconds)."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        super().__init__(name, help, labelnames)
        if list(buckets) != sorted(buckets) or not buckets:
            raise ValueError("buckets must be a non-empty increasing sequence")
        self.buckets = tuple(float(b) for b in buckets if not math.isinf(b))
        self._data: dict[LabelValues, tuple[list[int], list[float]]] = {}
        if not labelnames:
            self._data[()] = ([0] * (len(self.buckets) + 1), [0.0])

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        i = 0
        for i, bound in enumerate(self.buckets):  # noqa: B007
            if value <= bound:
                break
        else:
            i = len(self.buckets)
        with self._lock:
            counts, total = self._data.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[i] += 1
            total[0] += value

    @contextmanager
    def time(self, **labels: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - start, **labels)

    def count(self, **labels: str) -> int:
        data = self._data.get(self._key(labels))
        return sum(data[0]) if data else 0

    def render(self) -> list[str]:
        lines = []
        with self._lock:
            items = sorted((k, (list(c), t[0])) for k, (c, t) in self._data.items())
        for key, (counts, total) in items:
            running = 0
            for bound, n in zip([*self.buckets, math.inf], counts, strict=True):
                running += n
                le = f'le="{_num(bound)}"'
                lines.append(
                    f"{self.name}_bucket{_labels_text(self.labelnames, key, le)} {running}"
                )
            lab = _labels_text(self.labelnames, key)
            lines.append(f"{self.name}_sum{lab} {_num(total)}")
            lines.append(f"{self.name}_count{lab} {running}")
        return lines


class RateMeter:
    """Events per second over the last ``window`` seconds (for ``/status``)."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._marks: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def mark(self, n: int = 1) -> None:
        with self._lock:
            self._marks.append((self._clock(), n))

    def rate(self) -> float:
        now = self._clock()
        with self._lock:
            while self._marks and self._marks[0][0] < now - self.window:
                self._marks.popleft()
            total = sum(n for _, n in self._marks)
        return total / self.window


class Telemetry:
    """A registry: create metrics once (by name), render them all for ``GET /metrics``."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def _get(
        self, cls: type[_Metric], name: str, help: str, labelnames: Sequence[str], **kw: object
    ) -> _Metric:
        with self._lock:
            found = self._metrics.get(name)
            if found is not None:
                if type(found) is not cls or found.labelnames != tuple(labelnames):
                    raise ValueError(
                        f"metric {name} already registered with another type or labels"
                    )
                return found
            metric = cls(name, help, labelnames, **kw)
            self._metrics[name] = metric
            return metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        metric = self._get(Counter, name, help, labelnames)
        assert isinstance(metric, Counter)
        return metric

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        metric = self._get(Gauge, name, help, labelnames)
        assert isinstance(metric, Gauge)
        return metric

    def histogram(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        metric = self._get(Histogram, name, help, labelnames, buckets=buckets)
        assert isinstance(metric, Histogram)
        return metric

    def render(self) -> str:
        """Every metric in the Prometheus text format (``text/plain; version=0.0.4``)."""
        with self._lock:
            metrics = sorted(self._metrics.values(), key=lambda m: m.name)
        lines: list[str] = []
        for metric in metrics:
            lines += metric.header()
            lines += metric.render()
        return "\n".join(lines) + "\n"
