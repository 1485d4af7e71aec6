"""A whole history folded into each record's final state, before the engine sees it.

The incremental engine applies an event as a diff: the record's contributions before and after
it, and the difference added to every bucket they touch. A replay of a whole history does not
need the intermediate states: the final state of a record is fixed by its events whatever their
order (the tie rule of :func:`.events.supersedes`, the stage history of
:func:`.plans.history_after`, the change register of :func:`.modifier.advance` are all
order-free), and the buckets hold sums over the final states only. So :class:`FinalStates`
folds the events of each record first, and :meth:`.Engine.load_final_states` then puts each
record's state and adds its contributions once: a record with several versions costs one
contribution set instead of one retract-and-add per version.

What a fold keeps per record:

- most objects: the winning event (the tie rule) and the newest delete version; its typed
  values only, never an :class:`~.events.Event` object: lines are read straight to their
  parts (:func:`.decode.trusted_parts`) and the canonical JSON that breaks ties between equal
  versions is computed only when two upserts of one version meet, or once for the winner;
- objects with a stage history (``stays``) or a change register (``modified_by``): the same
  state the engine keeps, advanced event by event exactly as :meth:`.Engine.apply` does (both
  read every version, not only the winner).

The result equals applying the events one by one in any order (``tests/test_bulk.py``,
hypothesis: random histories with out-of-order versions, duplicates, deletes, re-creates and
stage changes, full catalog, byte-equal reports).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError
from .catalog import Catalog
from .decode import build_event, decode_json, trusted_parts
from .definitions import StaysSpec
from .events import Event, canonical_json, supersedes
from .jsonl import LineError, parse_line
from .modifier import Register, advance, effective, positions
from .plans import history_after
from .state import Key

__all__ = ["FinalStates"]

_DELETE = "delete"


class FinalStates:
    """Each record's final state, folded from its events in any order (see the module)."""

    def __init__(self, catalog: Catalog) -> None:
        self._reads = catalog.reads
        self._stays: dict[str, StaysSpec | None] = {
            obj: catalog.stays.get(obj) for obj in catalog.by_object
        }
        self._where = {obj: positions(reads) for obj, reads in catalog.reads.items()}
        # objects whose state reads every version (stage history, change register)
        self._full = frozenset(
            obj
            for obj in catalog.by_object
            if self._stays[obj] is not None or self._where.get(obj) is not None
        )
        # (source, object, id) -> [version, deleted, fields as received (or the JSONL line
        #                           they are in: a few hundred bytes less per record), the
        #                           typed values the
        #                           measures read (a tuple, as the engine keeps them: not the
        #                           typed dict, which holds every field), tie | None,
        #                           newest delete version | None]
        self._lean: dict[Key, list[Any]] = {}
        # (source, object, id) -> [winning event, newest delete, stage history, register]
        self._kept: dict[Key, list[Any]] = {}

    # ---------------------------------------------------------------- folding

    def add(self, event: Event) -> None:
        """Fold one event in."""
        obj = event.object
        if obj in self._full:
            self._add_full(event)
        elif obj in self._reads:
            deleted = event.op == _DELETE
            self._add_lean(
                (event.source, obj, event.id),
                event.version,
                deleted,
                event.fields,
                None if deleted else tuple(map(event.values.get, self._reads[obj])),
                None if deleted else event.canonical,
            )

    def add_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.add(event)

    def add_lines(
        self,
        lines: Iterable[str],
        *,
        strict: bool = False,
        errors: list[LineError] | None = None,
    ) -> None:
        """Fold the events of JSONL lines in: the same events and the same bad lines as
        :func:`.jsonl.read_events` (anything its fast decoder is unsure of is read by it)."""
        full = self._full
        reads = self._reads
        lean = self._lean
        get = lean.get
        for number, text in enumerate(lines, start=1):
            data = decode_json(text)
            parts = trusted_parts(data)
            if parts is None:
                if not text.strip():
                    continue
                try:
                    event = parse_line(text, number)
                except DataError as exc:
                    if strict:
                        raise
                    if errors is not None:
                        errors.append(LineError(number, exc.reason))
                    continue
                self.add(event)
                continue
            source, obj, rid, op, version, _fields, values = parts
            if obj in full:
                self._add_full(build_event(parts, data))
                continue
            names = reads.get(obj)
            if names is None:
                continue
            deleted = op == _DELETE
            row = None if deleted else tuple(map(values.get, names))
            key = (source, obj, rid)
            state = get(key)
            if state is None:  # the usual case, inline: a record's first event
                lean[key] = [version, deleted, text, row, None, version if deleted else None]
            else:
                self._fold_lean(state, version, deleted, text, row, None)

    def add_file(
        self, path: str | Path, *, strict: bool = False, errors: list[LineError] | None = None
    ) -> None:
        """:meth:`add_lines` of a JSONL file (errors as :func:`.jsonl.read_events_file`)."""
        try:
            handle = open(path, encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror}") from None
        with handle:
            self.add_lines(handle, strict=strict, errors=errors)

    def _add_lean(
        self,
        key: Key,
        version: int,
        deleted: bool,
        fields: dict[str, Any] | str,
        row: tuple[Any, ...] | None,
        tie: str | None,
    ) -> None:
        state = self._lean.get(key)
        if state is None:
            self._lean[key] = [version, deleted, fields, row, tie, version if deleted else None]
        else:
            self._fold_lean(state, version, deleted, fields, row, tie)

    @staticmethod
    def _fold_lean(
        state: list[Any],
        version: int,
        deleted: bool,
        fields: dict[str, Any] | str,
        row: tuple[Any, ...] | None,
        tie: str | None,
    ) -> None:
        """``state`` after one more event: the tie rule of :func:`.events.supersedes`."""
        if deleted and (state[5] is None or version > state[5]):
            state[5] = version
        old = state[0]
        if version < old or (version == old and (state[1] or not deleted)):
            if version < old or state[1]:
                return  # older, or the same version as a delete
            # two upserts of one version: the greater canonical JSON wins
            old_tie = state[4]
            if old_tie is None:
                old_tie = state[4] = _canonical(state[2])
            if tie is None:
                tie = _canonical(fields)
            if tie <= old_tie:
                return
        state[0] = version
        state[1] = deleted
        state[2] = fields
        state[3] = row
        state[4] = tie

    def _add_full(self, event: Event) -> None:
        """The state the engine keeps, advanced as :meth:`.Engine.apply` advances it."""
        key = (event.source, event.object, event.id)
        state = self._kept.get(key)
        if state is None:
            state = self._kept[key] = [None, None, None, None]
        winner: Event | None = state[0]
        max_delete: int | None = state[1]
        stays = self._stays[event.object]
        if stays is not None:
            state[2] = history_after(state[2], max_delete, event, stays.field, stays.entered)
        version = event.version
        if event.op == _DELETE and (max_delete is None or version > max_delete):
            state[1] = max_delete = version
        if self._where.get(event.object) is not None:
            state[3] = advance(state[3], event, max_delete)
        if winner is None or supersedes(
            version,
            event.op,
            event.canonical if event.op != _DELETE else None,
            winner.version,
            winner.op == _DELETE,
            winner.canonical if winner.op != _DELETE else None,
        ):
            state[0] = event

    # ---------------------------------------------------------------- the result

    def __len__(self) -> int:
        return len(self._lean) + len(self._kept)

    def states(self, *, ties: bool = True) -> Iterator[tuple[Key, list[Any]]]:
        """Each record's key and final state, as the engine stores it (``("r", source,
        object, id)`` -> [version, fields tuple | None, newest delete, stage history, canonical
        JSON of the applied upsert, change register]). The fold is emptied as it goes.

        ``ties=False``: leave the canonical JSON out where it was not needed yet (None), for
        an engine that keeps no record state (see :meth:`.Engine.load_final_states`)."""
        reads = self._reads
        lean = self._lean
        while lean:
            (source, obj, rid), s = lean.popitem()
            version, deleted, fields, row, tie, max_delete = s
            if deleted:
                yield ("r", source, obj, rid), [version, None, max_delete, None, None, None]
                continue
            if tie is None and ties:
                tie = _canonical(fields)
            yield ("r", source, obj, rid), [version, row, max_delete, None, tie, None]
        kept = self._kept
        while kept:
            (source, obj, rid), (winner, max_delete, history, register) = kept.popitem()
            yield (
                ("r", source, obj, rid),
                _full_state(
                    winner, max_delete, history, register, reads[obj], self._where.get(obj)
                ),
            )


def _canonical(fields: dict[str, Any] | str) -> str:
    """The canonical JSON of an upsert's fields, given as such or as the line they came in
    (read again: only for ties and the winners whose state is kept)."""
    if isinstance(fields, str):
        return canonical_json(decode_json(fields).get("fields") or {})
    return canonical_json(fields)


def _full_state(
    winner: Event,
    max_delete: int | None,
    history: Any,
    register: Register,
    reads: tuple[str, ...],
    where: tuple[int, int] | None,
) -> list[Any]:
    if winner.op == _DELETE:
        return [winner.version, None, max_delete, history, None, register]
    row: tuple[Any, ...] | None = tuple(map(winner.values.get, reads))
    if where is not None:
        row = effective(row, where, register)
    return [winner.version, row, max_delete, history, winner.canonical, register]
