"""The two engine phases as the Faust agents run them, free of Kafka: messages in, state and
output messages out. The agents (:mod:`.app`) only add batching, sending and committing.

Idempotence, so that a message applied again after a worker died changes nothing:

* phase 1 (:class:`RecordPhase`) keeps each record's state in one table entry and applies the
  events of each input partition once and in offset order (:mod:`.order`). An event already in
  the state changes nothing and sends nothing; an event that changes a contribution sends its
  deltas with its *source position* (the events partition and offset it was read from). A
  worker that dies after sending but before its state was committed re-applies the same events
  to the same state and sends the same deltas with the same positions.
* phase 2 (:class:`AggregatePhase`) keeps, per metric group and events partition, the offset of
  the last entry it applied (in the group's table entry, with its buckets) and applies an entry
  only if its offset is above. One events partition is processed by one worker at a time, in
  offset order, and its deltas for a group all go to that group's partition in the order sent,
  so a repeat is always at or below the mark. Positions rather than record versions: an older
  event that arrives late may still move the stage history (time in stage), and its deltas
  must count. The marks are a handful per group (one per events partition), so a group's table
  entry does not grow with the records that ever touched it: the company-wide group's entry,
  written at every batch, used to hold one mark per record.

Messages carry a batch's entries for one group (:func:`pack`): ``{"g": group, "entries":
[{"p": partition, "o": offset, "d": [[measure, slot, value, delta, dn], ...]}, ...]}``, the
group written once per message rather than in every delta (its encoding and decoding were the
largest single cost of phase 1 in py-spy). Entries of the former forms (``"deltas"``: full
six-item deltas, by position or by a record's own sequence number ``{"record", "seq",
"deltas"}``) are still applied, so a topic written by an older worker drains after an upgrade;
an older worker cannot read this form: upgrade every worker together.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import msgspec

from ...errors import DataError
from ...metrics.deltas import Delta, group_key
from ...metrics.engine import Engine
from ...metrics.jsonl import parse_line
from ...metrics.measures import Group
from ...metrics.report import MetricValue
from .stores import GroupedStore

__all__ = [
    "FIRST_READ",
    "AggregatePhase",
    "BadMessage",
    "Encoder",
    "RecordPhase",
    "decode",
    "first_read_marker",
    "pack",
    "read_marker",
]

MESSAGE_ENTRIES = 200  # entries per delta message at most (Kafka refuses messages over 1 MB)

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
        try:
            payload: Any = _read_json(value or b"")
        except msgspec.DecodeError:  # not JSON msgspec reads (NaN, lone surrogates...)
            payload = json.loads(value or b"")
        return str(payload["first_read"]), int(payload.get("from") or 0)
    except (ValueError, TypeError, KeyError) as exc:
        raise BadMessage(f"not a first-read marker: {exc!r}") from exc


class BadMessage(ValueError):
    """A message that cannot be applied (it goes to the dead letters with this reason)."""


class RecordPhase:
    def __init__(self, engine: Engine, store: GroupedStore) -> None:
        self.engine = engine
        self.store = store
        self._keys: dict[Group, bytes] = {}  # the message key of each group seen
        self.encoder = Encoder()

    def entries(
        self, value: bytes | None, partition: int, offset: int
    ) -> list[tuple[bytes, dict[str, Any]]]:
        """The (group key, entry) pairs of one canonical event read at ``offset`` of events
        ``partition``: per metric group, the source position and the deltas (without their
        group: the message names it once). :func:`pack` puts a batch's entries into messages."""
        try:  # the file sources' parser: a fast path for the usual event, pydantic otherwise
            event = parse_line((value or b"").decode("utf-8"), 1)
        except (DataError, UnicodeDecodeError) as exc:
            reason = exc.reason if isinstance(exc, DataError) else f"not UTF-8: {exc}"
            raise BadMessage(f"not a canonical event: {' '.join(reason.split())[:300]}") from exc
        try:
            deltas = self.engine.deltas(event)
        except Exception as exc:  # a poison event must not stop the agent: dead-letter it
            raise BadMessage(f"the engine failed on it: {type(exc).__name__}: {exc}"[:300]) from exc
        if not deltas:
            return []
        keys = self._keys
        out = []
        for group, items in self.encoder.by_group(deltas).items():
            key = keys.get(group)
            if key is None:
                key = keys[group] = group_key(group).encode()
            out.append((key, {"p": partition, "o": offset, "d": items}))
        return out

    def apply(self, value: bytes | None, partition: int, offset: int) -> list[tuple[bytes, bytes]]:
        """The (group key, delta message) pairs to send for one canonical event."""
        return pack(self.entries(value, partition, offset))


class Encoder:
    """Deltas in the wire form of a delta message's entries: per group, ``[measure, slot,
    value, delta, dn]`` (the group is written once, as the message's ``"g"``); slots and values
    as :meth:`Delta.to_wire` writes them, dates (most slots) encoded once each."""

    def __init__(self) -> None:
        self.dates: dict[date, Any] = {}

    def by_group(self, deltas: Iterable[Delta]) -> dict[Group, list[list[Any]]]:
        per_group: dict[Group, list[list[Any]]] = {}
        wire = self.wire
        for d in deltas:
            items = per_group.get(d.group)
            if items is None:
                items = per_group[d.group] = []
            slot, value = d.slot, d.value
            kind = type(slot)
            if not (kind is str or kind is int or slot is None):
                slot = wire(slot)
            kind = type(value)
            if kind is float:
                if value - value != 0.0:  # NaN or an infinity (see _wire_json)
                    value = _nonfinite(value)
            elif not (kind is str or kind is int or value is None):
                value = wire(value)
            items.append([d.measure, slot, value, d.delta, d.dn])
        return per_group

    def wire(self, x: Any) -> Any:
        """``x`` as :meth:`Delta.to_wire` writes a slot or value."""
        if type(x) is date:
            found = self.dates.get(x)
            if found is None:
                if len(self.dates) > 10_000:
                    self.dates.clear()
                found = self.dates[x] = Delta(0, (), x, None, 0, 0).to_wire()[2]
            return found
        return _finite_json(Delta(0, (), x, None, 0, 0).to_wire()[2])


def pack(
    entries: Iterable[tuple[bytes, dict[str, Any]]], most: int = MESSAGE_ENTRIES
) -> list[tuple[bytes, bytes]]:
    """One delta message per metric group (and per ``most`` entries) for a batch's entries, in
    their order: a batch of 500 events sends a few dozen messages instead of one per event
    and group, and Kafka's per-message cost was most of a worker's time. Phase 2 applies
    each entry once whichever message carries it, so a batch re-processed after a crash may
    group them differently. The key is the group's JSON (:func:`group_key`); the message
    names the group once (``"g"``) for its entries' deltas."""
    per_key: dict[bytes, list[dict[str, Any]]] = {}
    out: list[tuple[bytes, bytes]] = []
    for key, entry in entries:
        items = per_key.setdefault(key, [])
        items.append(entry)
        if len(items) >= most:
            out.append((key, _message(key, items)))
            per_key[key] = []
    out.extend((key, _message(key, items)) for key, items in per_key.items() if items)
    return out


def _message(key: bytes, items: list[dict[str, Any]]) -> bytes:
    return b'{"g":' + key + b',"entries":' + _dumps(items) + b"}"


def _dumps(payload: Any) -> bytes:
    return _wire_json(payload)


_wire_json = msgspec.json.Encoder().encode
"""JSON of a delta message's entries: msgspec, the same JSON values ``json.dumps`` with compact
separators writes for these shapes (lists, dicts of str, str, int, float, None; a float may be
spelt otherwise, ``1e16`` for ``1e+16``), about 10x faster (the standard library's encoder was
5 % of a busy worker's CPU). Except for NaN and the
infinities, which msgspec writes as ``null``: :class:`Encoder` hands those over as
:func:`_nonfinite` (``NaN``, ``Infinity``, as the standard library writes them; no event
gives one, amounts are checked finite when parsed)."""

_read_json = msgspec.json.Decoder().decode


def _nonfinite(x: float) -> msgspec.Raw:
    return msgspec.Raw(json.dumps(x).encode())


def _finite_json(x: Any) -> Any:
    """``x`` (a slot's or value's wire form) with NaN and infinities as :func:`_nonfinite`."""
    if type(x) is float and not math.isfinite(x):
        return _nonfinite(x)
    if type(x) is list:
        return [_finite_json(y) for y in x]
    return x


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
        entries = decode(value)
        measures = self.engine.measures
        for _source, _number, deltas in entries:
            unknown = [d.measure for d in deltas if d.measure not in measures]
            if unknown:
                raise BadMessage(f"not a delta message: unknown measure {unknown[0]}")
        applied = False
        for source, number, deltas in entries:
            if not deltas:
                continue
            mark = ("s", 0, deltas[0].group, source)  # in the group's entry, with its buckets
            last = self.store.get(mark)
            if last is not None and number <= last:
                continue
            try:
                self.engine.apply_deltas(deltas)
            except Exception as exc:  # a poison message must not stop the agent: dead-letter it
                raise BadMessage(
                    f"the engine failed on it: {type(exc).__name__}: {exc}"[:300]
                ) from exc
            self.store.put(mark, number)
            applied = True
        return applied

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
        return self.engine.changes(now, only_changed=False, metrics=self.metrics)


class _Decoder:
    """:meth:`Delta.from_wire` for the deltas of one message, with what repeats decoded once:
    a message holds one group's entries (the group list is the same in every delta) and a few
    distinct time slots. Anything off the common shapes goes through ``Delta.from_wire`` (same
    checks, same errors). Decoding was 70 % of the aggregates agent's py-spy samples."""

    def __init__(self) -> None:
        self.group_wire: Any = None
        self.group: Any = None
        self.dates: dict[str, date] = {}
        self.named: Any = None
        self.named_wire: Any = _OFF

    def deltas(self, raw: Any) -> list[Delta]:
        if type(raw) is not list:
            raise TypeError(f"deltas must be a list, got {type(raw).__name__}")
        out = []
        new = tuple.__new__
        for d in raw:
            if type(d) is list and len(d) == 6:
                measure, group, slot, value, delta, dn = d
                if (
                    type(measure) is int
                    and type(delta) is int
                    and type(dn) is int
                    and group == self.group_wire
                    and type(group) is list
                ):
                    slot = self._scalar(slot)
                    value = self._scalar(value)
                    if slot is not _OFF and value is not _OFF:
                        out.append(new(Delta, (measure, self.group, slot, value, delta, dn)))
                        continue
            decoded = Delta.from_wire(d)  # the checks, and the shapes the fast path skips
            if type(d[1]) is list and self.group_wire is None:
                self.group_wire, self.group = d[1], decoded.group
            out.append(decoded)
        return out

    def name_group(self, wire: Any) -> None:
        """The message's group (``"g"``), for the deltas of its entries, checked and decoded
        once."""
        self.named = Delta.from_wire([0, wire, None, None, 0, 0]).group
        self.named_wire = wire
        if type(wire) is list:
            self.group_wire, self.group = wire, self.named

    def compact(self, raw: Any) -> list[Delta]:
        """Deltas written without their group, ``[measure, slot, value, delta, dn]``."""
        if type(raw) is not list:
            raise TypeError(f"deltas must be a list, got {type(raw).__name__}")
        if self.named_wire is _OFF:
            raise KeyError("g")  # entries without their group need the message's
        out = []
        new = tuple.__new__
        group = self.named
        for d in raw:
            if type(d) is not list or len(d) != 5:
                raise ValueError(f"delta: expected a list of 5 items, got {d!r}"[:120])
            measure, slot, value, delta, dn = d
            if type(measure) is int and type(delta) is int and type(dn) is int:
                slot = self._scalar(slot)
                value = self._scalar(value)
                if slot is not _OFF and value is not _OFF:
                    out.append(new(Delta, (measure, group, slot, value, delta, dn)))
                    continue
            out.append(Delta.from_wire([measure, self.named_wire, *d[1:]]))
        return out

    def _scalar(self, x: Any) -> Any:
        kind = type(x)
        if kind is str or kind is int or x is None:
            return x
        if kind is dict and len(x) == 1:
            iso = x.get("date")
            if type(iso) is str:
                found = self.dates.get(iso)
                if found is None:
                    try:
                        found = self.dates[iso] = date.fromisoformat(iso)
                    except ValueError:
                        return _OFF
                return found
        return _OFF


_OFF = object()  # not a shape the decoder's fast path knows


def decode(value: bytes | None) -> list[tuple[int | str, int, list[Delta]]]:
    """(source, number, deltas) of each entry of a delta message; :class:`BadMessage` (with the
    reason) when it is not one."""
    try:
        try:
            payload: Any = _read_json(value or b"")
        except msgspec.DecodeError:  # not JSON msgspec reads (NaN, lone surrogates...)
            payload = json.loads(value or b"")
        # a list of entries, or one entry (a list payload has no .get: TypeError below)
        raw = payload["entries"] if "entries" in payload else [payload]  # noqa: SIM401
        decoder = _Decoder()
        if "g" in payload:
            decoder.name_group(payload["g"])
        return [_entry(e, decoder) for e in raw]
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise BadMessage(f"not a delta message: {exc!r}") from exc


def _entry(
    e: dict[str, Any], decoder: _Decoder | None = None
) -> tuple[int | str, int, list[Delta]]:
    """(source, number, deltas) of one entry: source is the events partition and number the
    offset, or for an entry of the former form the record and its sequence number."""
    decoder = decoder or _Decoder()
    deltas = decoder.compact(e["d"]) if "d" in e else decoder.deltas(e["deltas"])
    if "o" in e:
        partition = e["p"]
        if type(partition) is not int:
            raise TypeError(f"partition must be an integer, got {partition!r}")
        return partition, int(e["o"]), deltas
    return str(e["record"]), int(e["seq"]), deltas
