"""The bulk path: a whole history applied at the engine's best rate (``crm-pulse replay``).

What a replay does not need from the incremental path, it does not do:

- no diff per event: the events are first folded into each record's final state
  (:class:`.bulk.FinalStates`), then each record's contributions are added to the buckets once
  (:meth:`.Engine.load_final_states`); a file's lines are read to their parts, without an
  event object per line;
- the file is parsed as it is read (:func:`replay_file`, one line at a time, with the fast
  decoder of :mod:`.decode`), never held whole;
- the horizon is set to the as-of time before anything is applied, so no contribution goes
  through the ledger of future-dated ones unless it is dated after the as-of time;
- nothing asks the engine what changed: the last reported value of each metric, group and
  window (what write-back compares with) is never evaluated nor kept; the report is computed
  once, at the end, from the buckets;
- Python's cyclic garbage collector is paused while the state is built: the state is millions
  of small lists and tuples that are never garbage, and every full collection walks all of
  them (at 10^5 deals it was half the time of a replay). Once built, the state is set aside
  for good (``gc.freeze``): otherwise the first collection after the pause walks every object
  made meanwhile (7 % of a 10^6-deal replay). Reference counting still frees it when the
  engine is dropped (nothing in it is cyclic; ``tests/test_bulk.py`` checks an engine goes).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .bulk import FinalStates
from .calendar import WindowSpec
from .catalog import Catalog
from .collector import collector_paused
from .engine import DEFAULT_WINDOWS, Engine
from .events import Event
from .jsonl import LineError

__all__ = ["collector_paused", "replay", "replay_file"]


def replay(
    catalog: Catalog,
    events: Iterable[Event],
    as_of: int,
    *,
    windows: Sequence[WindowSpec] = DEFAULT_WINDOWS,
    config_events: Iterable[Event] = (),
    records: bool = True,
) -> Engine:
    """An engine holding ``events`` applied in order, as seen at ``as_of``: its
    :meth:`~.Engine.report` or :meth:`~.Engine.iter_report` gives the rows.

    ``records=False``: the engine keeps no record state, only what reports read (buckets);
    it gives the same reports and must never be applied to (its records are unknown to it).
    ``crm-pulse replay`` reads it once."""
    with _building():
        final = FinalStates(catalog)
        final.add_all(config_events)
        final.add_all(events)
        return _load(catalog, final, as_of, windows, records)


def replay_file(
    catalog: Catalog,
    path: str | Path,
    as_of: int,
    *,
    windows: Sequence[WindowSpec] = DEFAULT_WINDOWS,
    config_events: Iterable[Event] = (),
    strict: bool = False,
    errors: list[LineError] | None = None,
    records: bool = True,
) -> Engine:
    """:func:`replay` of a JSONL file's events, read without building an event object per
    line; bad lines as :func:`.jsonl.read_events_file` reports them (``strict``: raise
    ``DataError`` at the first). ``records``: as for :func:`replay`."""
    with _building():
        final = FinalStates(catalog)
        final.add_all(config_events)
        final.add_file(path, strict=strict, errors=errors)
        return _load(catalog, final, as_of, windows, records)


def _load(
    catalog: Catalog,
    final: FinalStates,
    as_of: int,
    windows: Sequence[WindowSpec],
    records: bool,
) -> Engine:
    engine = Engine(catalog, windows=windows)
    engine.advance(as_of)  # records dated after the as-of time count nowhere yet
    engine.load_final_states(final.states(ties=records), keep=records)
    engine.forget_changes()  # nothing will ask what moved
    return engine


@contextmanager
def _building() -> Iterator[None]:
    """The collector paused while a replay's state is built, then that state set aside from
    its collections (see the module); on an error, only the pause ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    except BaseException:
        if was_enabled:
            gc.enable()
        raise
    if was_enabled:
        gc.freeze()
        gc.enable()
