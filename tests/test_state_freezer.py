"""crm_pulse.metrics.collector.StateFreezer: full collector passes skip a frozen state, and a
cycle that became garbage after it was frozen is still collected at the next thaw."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from crm_pulse.metrics.collector import StateFreezer


class Node:
    """A cyclic object (reference counting alone never frees a cycle)."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.collect()
    yield
    gc.unfreeze()
    gc.collect()


def test_a_freeze_keeps_the_state_out_of_collections() -> None:
    now = [0.0]
    freezer = StateFreezer(thaw_every=60.0, clock=lambda: now[0])
    state = [[i, 1] for i in range(1000)]
    freezer.freeze()
    assert gc.get_freeze_count() >= len(state)  # the state is in the permanent generation
    assert freezer.freezes == 1 and freezer.thaws == 0


def test_a_cycle_frozen_alive_is_collected_at_the_next_thaw() -> None:
    now = [0.0]
    freezer = StateFreezer(thaw_every=60.0, clock=lambda: now[0])
    node = Node()
    ref = weakref.ref(node)
    freezer.freeze()  # frozen while alive
    del node
    gc.collect()
    assert ref() is not None  # frozen: collections skip it
    now[0] += 30
    freezer.freeze()
    assert ref() is not None and freezer.thaws == 0
    now[0] += 31  # an hour in production; here a minute
    freezer.freeze()
    assert freezer.thaws == 1 and ref() is None
