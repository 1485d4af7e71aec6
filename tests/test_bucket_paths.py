"""The engine's inline bucket paths (counts and sums by month, percentiles' counts and
multisets, snapshot counts and sums: ``Buckets._apply_changes``) leave exactly the state the
general per-contribution path (``Buckets._apply_delta``) leaves, on random histories with
deletes, duplicates, ties and any arrival order, with and without future-dated contributions,
day and week windows and rolling windows."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_pulse.metrics import Engine, WindowSpec, build_catalog
from crm_pulse.metrics.engine.core import _MONTHLY, Change

from .test_property import DAY, T0, WINDOWS, history, shuffled


class General(Engine):
    """Every change that is not a month count or sum goes through ``_apply_delta``."""

    def _apply_changes(self, changes: list[Change]) -> None:
        for change in changes:
            if self._place[change[0][0]] == _MONTHLY:
                super()._apply_changes([change])
            else:
                self._apply_delta(*change)


def _state(engine: Engine) -> dict[Any, Any]:
    return dict(engine.store.items())


FINE = (*WINDOWS, WindowSpec("day"), WindowSpec("week"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    order=st.integers(0, 10**6),
    now_day=st.one_of(st.none(), st.integers(0, 130)),
    fine=st.booleans(),
)
def test_inline_paths_leave_the_state_the_general_path_leaves(
    seed: int, order: int, now_day: int | None, fine: bool
) -> None:
    catalog = build_catalog()
    events = shuffled(history(seed), order)
    windows = FINE if fine else WINDOWS
    engines = (Engine(catalog, windows=windows), General(catalog, windows=windows))
    for engine in engines:
        if now_day is not None:  # contributions dated after it also go to the ledger
            engine.advance(T0 + now_day * DAY)
        engine.apply_all(events[: len(events) // 2])
        for event in events[len(events) // 2 :]:
            engine.apply(event)
    inline, general = engines
    assert _state(inline) == _state(general)
    assert inline._dirty == general._dirty
