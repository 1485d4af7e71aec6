"""The apply path: an event updates its record's state (phase 1, :meth:`Records.deltas`) and
its contribution changes go to buckets (phase 2, :mod:`.buckets`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..collector import collector_paused
from ..deltas import Delta
from ..events import Event, supersedes
from ..modifier import advance, effective
from ..plans import history_after
from ..state import Key
from .buckets import Buckets
from .core import Change


class Records(Buckets):
    """Applying events: phase 1 (record state and contribution changes) and both phases."""

    def apply(self, event: Event) -> bool:
        """Apply one event (both phases); True if it changed any record state."""
        return self.apply_counted(event) is not None

    def apply_counted(self, event: Event) -> bool | None:
        """Apply one event; True if it moved a metric's contributions, False if it changed the
        record's state only (a re-read of an unchanged record, our own write coming back, a
        field no metric reads), None if it changed nothing (stale, or no metric reads it)."""
        changes = self._record_changes(event)
        if changes is None:
            return None
        if changes:
            self._apply_changes(changes)
        return bool(changes)

    def deltas(self, event: Event) -> list[Delta] | None:
        """Phase 1: update the record's state only and return its contribution deltas.

        None when the event changed no record state (stale or for an object no measure reads);
        an empty list when the record changed but none of its contributions did.
        """
        changes = self._record_changes(event)
        if changes is None:
            return None
        return [Delta(k[0], k[1], k[2], k[3], delta, dn) for k, delta, dn in changes]

    def apply_deltas(self, deltas: Iterable[Delta]) -> None:
        """Phase 2: add deltas (from :meth:`deltas`, any engine with the same catalog) to buckets.

        Touches no record state. An engine that receives only the deltas of some groups reports
        and returns changes correctly for exactly those groups (see ``owns`` of :meth:`report`).
        """
        self._apply_changes(
            [((d.measure, d.group, d.slot, d.value), d.delta, d.dn) for d in deltas]
        )

    def _record_changes(self, event: Event) -> list[Change] | None:
        """Update the record's state; its contribution changes, None if the state did not change."""
        plan = self._plans.get(event.object)
        if plan is None:
            return None
        key: Key = ("r", event.source, event.object, event.id)
        state: Any = self._get(key)  # a MemoryStore's dict itself (see EngineCore)
        fresh = state is None
        if fresh:
            state = [None, None, None, None, None, None]
        elif len(state) < 6:  # written before ties were ordered, or before the register
            state = [*state, *([None] * (6 - len(state)))]
            fresh = True
        old_version, old_fields, max_delete, history, old_tie, register = state
        version = event.version
        op = event.op
        stays = plan.stays
        tie = event.canonical if op == "upsert" else None

        new_history = history
        if stays is not None:
            new_history = history_after(history, max_delete, event, stays.field, stays.entered)
        new_max_delete = max_delete
        if op == "delete" and (max_delete is None or version > max_delete):
            new_max_delete = version
        where = self._changed.get(event.object)
        new_register = register if where is None else advance(register, event, new_max_delete)
        stale = not supersedes(version, op, tie, old_version, old_fields is None, old_tie)
        keeps_deletes = stays is not None or where is not None
        if (
            stale
            and new_history is history
            and new_register is register
            and (not keeps_deletes or new_max_delete == max_delete)
        ):
            self.stale += 1
            return None

        new_values: dict[str, Any] | None = None  # the event's typed fields, when they apply
        if stale:
            new_version, new_fields, new_tie = old_version, old_fields, old_tie
        else:
            new_version, new_tie = version, tie
            if op == "upsert":
                new_values = event.values
                new_fields = tuple(map(new_values.get, plan.reads))
            else:
                new_fields = None
        if where is not None:  # the last change known, whichever upsert named it
            shown = effective(new_fields, where, new_register)
            if shown is not new_fields:
                new_fields, new_values = shown, None
        history_moved = new_history != history
        if old_fields is None or new_fields is None:
            measures = plan.measures if (old_fields is not new_fields or history_moved) else None
        elif new_fields != old_fields or history_moved:
            # only measures reading a field that changed (or the stage history) can change
            changed = {
                i
                for i, pair in enumerate(zip(old_fields, new_fields, strict=True))
                if pair[0] != pair[1]
            }
            measures = [
                item
                for item, deps, staying in plan.items
                if (staying and history_moved) or not changed.isdisjoint(deps)
            ]
        else:
            measures = None
        changes: list[Change] = []
        if measures:
            old_c = plan.contributions(measures, old_fields, history)
            new_c = plan.contributions(measures, new_fields, new_history, new_values)
            if not old_c:
                changes = [(ckey, weight, 1) for ckey, weight in new_c.items()]
            else:
                pop = old_c.pop
                for ckey, weight in new_c.items():
                    old = pop(ckey, None)
                    if old is None:
                        changes.append((ckey, weight, 1))
                    elif weight != old:
                        changes.append((ckey, weight - old, 0))
                changes.extend((ckey, -weight, -1) for ckey, weight in old_c.items())
        if self._live and not fresh:
            state[0] = new_version
            state[1] = new_fields
            state[2] = new_max_delete
            state[3] = new_history
            state[4] = new_tie
            state[5] = new_register
        else:
            self._put(
                key, [new_version, new_fields, new_max_delete, new_history, new_tie, new_register]
            )
        self.applied += 1
        return changes

    def apply_all(self, events: Iterable[Event]) -> int:
        """Apply events in order; returns how many changed a record. The cyclic garbage
        collector is paused meanwhile (see :mod:`.collector`)."""
        n = 0
        record_changes = self._record_changes
        apply_changes = self._apply_changes
        with collector_paused():
            for event in events:
                changes = record_changes(event)
                if changes is not None:
                    n += 1
                    if changes:
                        apply_changes(changes)
        return n

    def load_final_states(
        self, states: Iterable[tuple[Key, list[Any]]], *, keep: bool = True
    ) -> int:
        """The bulk path (:mod:`..bulk`): put the final state of records this engine holds
        nothing of yet and add each one's contributions once; returns how many records.
        ``keep=False``: add the contributions only, for an engine that is read and never
        applied to again (a replay's report reads buckets, never a record state)."""
        plans = self._plans
        put = self.store.put if keep else _drop
        apply_changes = self._apply_changes
        n = 0
        with collector_paused():
            for key, state in states:
                put(key, state)
                n += 1
                fields = state[1]
                if fields is None:
                    continue
                plan = plans[key[2]]
                new_c = plan.contributions(plan.measures, fields, state[3])
                if new_c:
                    apply_changes([(ckey, weight, 1) for ckey, weight in new_c.items()])
        self.applied += n
        return n


def _drop(_key: Key, _value: Any) -> None:
    """A put that keeps nothing."""
