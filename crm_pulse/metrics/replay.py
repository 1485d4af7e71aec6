"""The bulk path: a whole history applied at the engine's best rate (``crm-pulse replay``).

What a replay does not need from the incremental path, it does not do:

- the file is parsed as it is read (:func:`~.jsonl.read_events_file`, one line at a time, with
  the fast decoder of :mod:`.decode`), never held whole;
- the horizon is set to the as-of time before anything is applied, so no contribution goes
  through the ledger of future-dated ones unless it is dated after the as-of time;
- nothing asks the engine what changed: the last reported value of each metric, group and
  window (what write-back compares with) is never evaluated nor kept; the report is computed
  once, at the end, from the buckets;
- Python's cyclic garbage collector is paused while the state is built: the state is millions
  of small lists and tuples that are never garbage, and every full collection walks all of
  them (at 10^5 deals it was half the time of a replay).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .calendar import WindowSpec
from .catalog import Catalog
from .collector import collector_paused
from .engine import DEFAULT_WINDOWS, Engine
from .events import Event

__all__ = ["collector_paused", "replay"]


def replay(
    catalog: Catalog,
    events: Iterable[Event],
    as_of: int,
    *,
    windows: Sequence[WindowSpec] = DEFAULT_WINDOWS,
    config_events: Iterable[Event] = (),
) -> Engine:
    """An engine holding ``events`` applied in order, as seen at ``as_of``: its
    :meth:`~.Engine.report` or :meth:`~.Engine.iter_report` gives the rows."""
    engine = Engine(catalog, windows=windows)
    engine.advance(as_of)  # records dated after the as-of time count nowhere yet
    with collector_paused():
        engine.apply_all(config_events)
        engine.apply_all(events)
        engine.forget_changes()  # nothing will ask what moved
    return engine
