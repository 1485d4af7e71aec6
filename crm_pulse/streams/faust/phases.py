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
from collections.abc import Sequence
from typing import Any

from ...metrics.deltas import Delta
from ...metrics.engine import Engine
from ...metrics.events import Event
from ...metrics.report import MetricValue
from .stores import GroupedStore

__all__ = [
    "FIRST_READ",
    "AggregatePhase",
    "BadMessage",
    "RecordPhase",
    "first_read_marker",
    "read_marker",
]

FIRST_READ = b"\x00first-read"
"""The key of a first-read marker (the planner's first-read rule across Kafka).

The edge puts one in *every* events partition once a pulling source's first complete read has
been forwarded (after all of its events, so partition order puts it behind them); phase 1 passes
each on to every deltas partition, behind the deltas of the events before it; phase 2 writes a
deltas partition's groups only once it holds a marker from every events partition for every
pulling source, and then writes every rule's whole value for those groups at once."""


def first_read_marker(source: str, origin: int | None = None) -> bytes:
    """A marker's value: the source, and (in deltas) the events partition it came through."""
    return json.dumps({"first_read": source, "from": origin}).encode()


def read_marker(key: bytes | None, value: bytes | None) -> tuple[str, int] | None:
    """(source, events partition) of a marker message; None for any other message."""
    if key != FIRST_READ:
        return None
    try:
        payload: Any = json.loads(value or b"")
        return str(payload["first_read"]), int(payload.get("from") or 0)
    except (ValueError, TypeError, KeyError) as exc:
        raise BadMessage(f"not a first-read marker: {exc!r}") from exc


class BadMessage(ValueError):
    """A message that cannot be applied (it goes to the dead letters with this reason)."""


class RecordPhase:
    def __init__(self, engine: Engine, store: GroupedStore) -> None:
        self.engine = engine
        self.store = store

    def apply(self, value: bytes | None) -> list[tuple[bytes, bytes]]:
        """The (group key, delta message) pairs to send for one canonical event."""
        try:
            event = Event.model_validate_json(value or b"")
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise BadMessage(f"not a canonical event: {' '.join(str(exc).split())[:300]}") from exc
        try:
            deltas = self.engine.deltas(event)
        except Exception as exc:  # a poison event must not stop the agent: dead-letter it
            raise BadMessage(f"the engine failed on it: {type(exc).__name__}: {exc}"[:300]) from exc
        if not deltas:
            return []
        per_group: dict[str, list[Delta]] = {}
        for delta in deltas:
            per_group.setdefault(delta.key, []).append(delta)
        seq_key = ("q", *event.key)  # the same table entry as the record's state
        seq = (self.store.get(seq_key) or 0) + 1
        self.store.put(seq_key, seq)
        record = "/".join(event.key)
        return [
            (
                group.encode(),
                json.dumps(
                    {"record": record, "seq": seq, "deltas": [d.to_wire() for d in items]},
                    separators=(",", ":"),
                ).encode(),
            )
            for group, items in per_group.items()
        ]


class AggregatePhase:
    """Also says which values to publish: every value a message touched, changed or not.

    The agent publishes a batch's values *before* it commits the buckets, so a worker that dies
    in between has published values its successor cannot know about; comparing with the last
    recorded value would then miss a value that went back to what was recorded. The writer
    stage drops values equal to what it last wrote (kept in its own table), so repeats cost no
    CRM call.
    """

    def __init__(self, engine: Engine, store: GroupedStore) -> None:
        self.engine = engine
        self.store = store

    def apply(self, value: bytes | None) -> bool:
        """Add one delta message to its group's buckets; False if it was applied before."""
        try:
            payload: Any = json.loads(value or b"")
            record, seq = str(payload["record"]), int(payload["seq"])
            deltas = [Delta.from_wire(d) for d in payload["deltas"]]
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise BadMessage(f"not a delta message: {exc!r}") from exc
        if not deltas:
            return False
        unknown = [d.measure for d in deltas if d.measure not in self.engine.measures]
        if unknown:
            raise BadMessage(f"not a delta message: unknown measure {unknown[0]}")
        seen_key = ("s", 0, deltas[0].group, record)  # in the group's entry, with its buckets
        last = self.store.get(seen_key)
        if last is not None and seq <= last:
            return False
        self.engine.apply_deltas(deltas)
        self.store.put(seen_key, seq)
        return True

    def first_read(self, partition: int, source: str, origin: int) -> None:
        """Remember that ``source``'s first read came through events partition ``origin``."""
        self.store.put(("f", 0, f"\x00first-read/{partition}", source, origin), 1)

    def first_reads_done(self, partition: int, sources: Sequence[str], origins: int) -> bool:
        """Every source's marker arrived from every events partition: writes may begin."""
        entry = f"\x00first-read/{partition}"
        return all(
            self.store.get(("f", 0, entry, s, o)) is not None
            for s in sources
            for o in range(origins)
        )

    def changes(self, now: int) -> list[MetricValue]:
        """The values to publish for the messages applied since the last call."""
        return self.engine.changes(now, only_changed=False)
