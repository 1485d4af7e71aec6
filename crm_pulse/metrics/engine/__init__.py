"""The incremental engine: canonical events in, changed metric values out.

For every record the engine keeps its last applied version and the fields its measures read.
Applying an event recomputes that record's contributions (see :mod:`..measures`) before and
after, and adds the difference to per-window buckets, so the cost of an event does not depend on
how much history there is. Stale events (an older version, or an equal one that loses the tie:
see :func:`..events.supersedes`) change nothing; deletes leave a tombstone so a late, older
upsert cannot bring a record back. Time is an input: nothing here reads the clock.

The parts, one job each, composed into :class:`Engine`:

* :mod:`.core`: configuration, state access, bucket placement codes; the state layout.
* :mod:`.records`: the apply path, phase 1 (record state, contribution changes) and both phases.
* :mod:`.buckets`: phase 2, contribution changes added to the buckets of their windows.
* :mod:`.reads`: a measure's raw value in a window, and the groups with data.
* :mod:`.outputs`: report rows, and the values that moved since the last call.
* :mod:`.ticks`: time advance (what came due) and the marks of which buckets moved.
* :mod:`.indexes`: which groups have data (per report, or kept up to date).
"""

from __future__ import annotations

from .core import DEFAULT_WINDOWS, HOUR_MS
from .indexes import _LiveGroups, _StateIndex
from .outputs import Outputs
from .records import Records
from .ticks import Ticks

__all__ = ["DEFAULT_WINDOWS", "HOUR_MS", "Engine", "_LiveGroups", "_StateIndex"]


class Engine(Records, Ticks, Outputs):
    """Maintains every measure of a catalog incrementally in a state store."""
