"""Metrics: canonical events in, metric values out. Pure: no I/O, no asyncio, no clock.

The public API::

    from crm_pulse.metrics import Engine, Event, build_catalog, read_events_file

    engine = Engine(build_catalog())
    engine.apply_all(read_events_file("events.jsonl"))
    rows = engine.report(as_of=parse_time("2026-03-31T00:00:00Z"))

Partitioned runtimes split the engine in two phases (``docs/engine-phases.md``):
``Engine.deltas(event)`` (keyed by record) returns :class:`Delta` values that
``Engine.apply_deltas`` (keyed by ``Delta.group``, see :func:`partition_of`) adds to buckets.
"""

from .calendar import CALENDAR_KINDS, CURRENT, Calendar, Window, WindowSpec, parse_window_spec
from .catalog import (
    Catalog,
    CompiledMetric,
    build_catalog,
    builtin_definitions,
    definitions_from_mapping,
)
from .decode import decode_event
from .definitions import CATEGORIES, Definitions, GoalDef, MeasureDef, MetricDef
from .deltas import Delta, group_key, partition_of
from .engine import DEFAULT_WINDOWS, Engine
from .events import BUILTIN_OBJECTS, Event, RecordKey, parse_amount, parse_date, parse_time
from .formats import write_rows
from .jsonl import LineError, parse_line, read_events, read_events_file
from .reference import Reference, reference_report
from .report import MetricValue
from .state import MemoryStore, StateStore

__all__ = [
    "BUILTIN_OBJECTS",
    "CALENDAR_KINDS",
    "CATEGORIES",
    "CURRENT",
    "DEFAULT_WINDOWS",
    "Calendar",
    "Catalog",
    "CompiledMetric",
    "Definitions",
    "Delta",
    "Engine",
    "Event",
    "GoalDef",
    "LineError",
    "MeasureDef",
    "MemoryStore",
    "MetricDef",
    "MetricValue",
    "RecordKey",
    "Reference",
    "StateStore",
    "Window",
    "WindowSpec",
    "build_catalog",
    "builtin_definitions",
    "decode_event",
    "definitions_from_mapping",
    "group_key",
    "parse_amount",
    "parse_date",
    "parse_line",
    "parse_time",
    "parse_window_spec",
    "partition_of",
    "read_events",
    "read_events_file",
    "reference_report",
    "write_rows",
]
