"""Python's cyclic garbage collector, paused while engine state is built.

The engine's state is millions of small lists, tuples and dicts that are never garbage
(reference counting frees what an update replaces; nothing the engine builds is cyclic). With
the collector on, every 700 allocations start a collection of the youngest objects, and every
hundred of those a full one that walks the whole state: 15-25 % of applying an event at 10^4
records, half of a replay at 10^5 deals. A batch of events is therefore applied with the
collector paused; it runs again, as it was, when the batch is done, and collects then whatever
cyclic garbage (an exception's traceback) the batch left.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["StateFreezer", "collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (reference counting still frees memory); it runs
    again, as it was, on exit. Nested or concurrent uses leave it on when the outermost ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class StateFreezer:
    """Keeps the collector's full passes off a long-lived state (a runtime's engine state).

    Paused per batch, the collector still runs between batches, and its full passes walk every
    object alive: a pass every time the heap grew by a quarter, each longer than the last (at
    2 million state entries a fifth of the embedded runtime's CPU went to them). :meth:`freeze`
    (after a state is loaded, and at each checkpoint) moves everything alive to the permanent
    generation (``gc.freeze``, which costs nothing per object), which collections skip: a pass
    then costs what was allocated since, not the whole state.

    Frozen objects are still freed by reference counting (the state is acyclic); only a cycle
    that was not collected yet when it was frozen, or that became garbage after (an object of
    the event loop's: a few), would stay. So every ``thaw_every`` seconds everything is thawed
    and collected once (``gc.unfreeze``): one full pass an hour. (A collection before each
    freeze would walk everything the batches since the last one allocated: 2 CPU s at a
    checkpoint of 100,000 events; ``gc.get_freeze_count`` walks the frozen objects; a thaw
    whenever the state doubled put a full pass of seconds into a load every time it did.)"""

    def __init__(
        self, *, thaw_every: float = 3600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.thaw_every = thaw_every
        self.clock = clock
        self._thawed_at = clock()
        self.freezes = 0
        self.thaws = 0

    def freeze(self) -> None:
        """Freeze everything alive, after a thaw and a full pass when one is due (see the class
        docstring)."""
        if self.clock() - self._thawed_at >= self.thaw_every:
            gc.unfreeze()
            gc.collect()
            self._thawed_at = self.clock()
            self.thaws += 1
        gc.freeze()
        self.freezes += 1
