"""The two engine phases as the Faust agents run them, free of Kafka: one message in, state and
output messages out. The agents (:mod:`.app`) only add batching, sending and committing.

Idempotence, so that a message applied again after a worker died changes nothing:

* phase 1 (:class:`RecordPhase`) keeps each record's state and its *sequence number* in one
  table entry. An event already in the state changes nothing and sends nothing; an event that
  changes a contribution takes the next number, and its delta messages carry it. A worker that
  dies after sending but before its state was committed re-applies the same events to the same
  state and sends the same messages with the same numbers.
* phase 2 (:class:`AggregatePhase`) applies a delta message only if its number is above the
  last one applied for that (group, record), kept in the group's table entry with its buckets.
  Numbers rather than record versions: an older event that arrives late may still move the
  stage history (time in stage), and its deltas must count.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from ...metrics.deltas import Delta
from ...metrics.engine import Engine
from ...metrics.events import Event
from ...metrics.report import MetricValue
from .stores import GroupedStore

__all__ = ["AggregatePhase", "BadMessage", "RecordPhase", "pack"]

MESSAGE_ENTRIES = 200  # entries per delta message at most (Kafka refuses messages over 1 MB)


class BadMessage(ValueError):
    """A message that cannot be applied (it goes to the dead letters with this reason)."""


class RecordPhase:
    def __init__(self, engine: Engine, store: GroupedStore) -> None:
        self.engine = engine
        self.store = store

    def entries(self, value: bytes | None) -> list[tuple[bytes, dict[str, Any]]]:
        """The (group key, entry) pairs of one canonical event: per metric group, the record,
        its sequence number and its deltas. :func:`pack` puts a batch's entries into messages."""
        try:
            event = Event.model_validate_json(value or b"")
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise BadMessage(f"not a canonical event: {str(exc).splitlines()[0]}") from exc
        deltas = self.engine.deltas(event)
        if not deltas:
            return []
        per_group: dict[str, list[Any]] = {}
        for delta in deltas:
            per_group.setdefault(delta.key, []).append(delta.to_wire())
        seq_key = ("q", *event.key)  # the same table entry as the record's state
        seq = (self.store.get(seq_key) or 0) + 1
        self.store.put(seq_key, seq)
        record = "/".join(event.key)
        return [
            (group.encode(), {"record": record, "seq": seq, "deltas": items})
            for group, items in per_group.items()
        ]

    def apply(self, value: bytes | None) -> list[tuple[bytes, bytes]]:
        """The (group key, delta message) pairs to send for one canonical event."""
        return pack(self.entries(value))


def pack(
    entries: Iterable[tuple[bytes, dict[str, Any]]], most: int = MESSAGE_ENTRIES
) -> list[tuple[bytes, bytes]]:
    """One delta message per metric group (and per ``most`` entries) for a batch's entries, in
    their order: a batch of 500 events sends a few dozen messages instead of one per event
    and group, and Kafka's per-message cost was most of a worker's time. Phase 2 applies
    each entry once whichever message carries it, so a batch re-processed after a crash may
    group them differently."""
    per_key: dict[bytes, list[dict[str, Any]]] = {}
    out: list[tuple[bytes, bytes]] = []
    for key, entry in entries:
        items = per_key.setdefault(key, [])
        items.append(entry)
        if len(items) >= most:
            out.append((key, _dumps({"entries": items})))
            per_key[key] = []
    out.extend((key, _dumps({"entries": items})) for key, items in per_key.items() if items)
    return out


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class AggregatePhase:
    """Also says which values to publish: every value a message touched, changed or not.

    The agent publishes a batch's values *before* it commits the buckets, so a worker that dies
    in between has published values its successor cannot know about; comparing with the last
    recorded value would then miss a value that went back to what was recorded. The writer
    stage drops values equal to what it last wrote (kept in its own table), so repeats cost no
    CRM call.
    """

    def __init__(
        self,
        engine: Engine,
        store: GroupedStore,
        metrics: Mapping[str, Collection[tuple[str, ...]]] | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.metrics = metrics  # the metrics (and group fields) to publish; None: all

    def apply(self, value: bytes | None) -> bool:
        """Add one delta message's entries to their group's buckets, each entry once (a message
        holds one group's entries); False if every entry was applied before. A malformed message
        changes nothing."""
        try:
            payload: Any = json.loads(value or b"")
            # a list of entries, or one entry (a list payload has no .get: TypeError below)
            raw = payload["entries"] if "entries" in payload else [payload]  # noqa: SIM401
            entries = [
                (str(e["record"]), int(e["seq"]), [Delta.from_wire(d) for d in e["deltas"]])
                for e in raw
            ]
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise BadMessage(f"not a delta message: {exc!r}") from exc
        measures = self.engine.measures
        for _record, _seq, deltas in entries:
            unknown = [d.measure for d in deltas if d.measure not in measures]
            if unknown:
                raise BadMessage(f"not a delta message: unknown measure {unknown[0]}")
        applied = False
        for record, seq, deltas in entries:
            if not deltas:
                continue
            seen_key = ("s", 0, deltas[0].group, record)  # in the group's entry, with its buckets
            last = self.store.get(seen_key)
            if last is not None and seq <= last:
                continue
            self.engine.apply_deltas(deltas)
            self.store.put(seen_key, seq)
            applied = True
        return applied

    def changes(self, now: int) -> list[MetricValue]:
        """The values to publish for the messages applied since the last call."""
        return self.engine.changes(now, only_changed=False, metrics=self.metrics)
