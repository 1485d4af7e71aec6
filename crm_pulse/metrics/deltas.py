"""Contribution deltas: what phase 1 (per record) hands to phase 2 (per metric group).

The engine runs in two phases that a distributed runtime partitions differently:

* phase 1, keyed by record (``source, object, id``), keeps each record's version, fields,
  tombstone and stage history and turns an event into :class:`Delta` values
  (:meth:`.Engine.deltas`);
* phase 2, keyed by metric group, adds deltas to window buckets and answers
  :meth:`.Engine.report` / :meth:`.Engine.changes` (:meth:`.Engine.apply_deltas`).

A metric's value for a group reads only the buckets of that same group, so routing every delta by
:attr:`Delta.group` (see :func:`partition_of`) lets each phase-2 partition compute its groups'
rows alone. Deltas are plain data; :meth:`Delta.to_wire` / :meth:`Delta.from_wire` turn them into
lists of JSON / msgpack scalars and back (tuples become lists, dates become ``{"date": iso}``).

Deltas are not idempotent: phase 2 must see each exactly once (the runtime dedupes, e.g. by a
sequence number per phase-1 partition).
"""

from __future__ import annotations

import json
import zlib
from datetime import date
from typing import Any, NamedTuple

from .measures import Group

__all__ = ["Delta", "group_key", "partition_of"]


class Delta(NamedTuple):
    """Add ``delta`` to one contribution of measure ``measure`` in ``group``.

    ``slot`` and ``value`` are the contribution's time placement and distinct value (see
    :mod:`.measures`); ``dn`` is +1 when the contribution appears, -1 when it disappears and 0 when
    only its weight changes (buckets count contributions to know when they are empty).

    Immutable and hashable; a named tuple rather than a frozen dataclass because phase 1 makes
    several per event and a tuple is four times cheaper to build.
    """

    measure: int
    group: Group
    slot: Any
    value: Any
    delta: int
    dn: int

    @property
    def key(self) -> str:
        """The partition key of phase 2: the group, as text (see :func:`group_key`)."""
        return group_key(self.group)

    def to_wire(self) -> list[Any]:
        """``[measure, group, slot, value, delta, dn]`` of JSON / msgpack scalars and lists."""
        return [
            self.measure,
            _encode(self.group),
            _encode(self.slot),
            _encode(self.value),
            self.delta,
            self.dn,
        ]

    @classmethod
    def from_wire(cls, data: list[Any]) -> Delta:
        """The inverse of :meth:`to_wire`; raises ``ValueError`` on a malformed message."""
        if type(data) not in (list, tuple) or len(data) != 6:
            raise ValueError(f"delta: expected a list of 6 items, got {_show(data)}")
        measure, group, slot, value, delta, dn = data
        if type(measure) is not int or type(delta) is not int or type(dn) is not int:
            raise ValueError(f"delta: measure, delta and dn must be integers in {_show(data)}")
        if type(group) not in (list, tuple):
            raise ValueError(f"delta: group must be a list in {_show(data)}")
        try:
            return cls(measure, _decode(group), _decode(slot), _decode(value), delta, dn)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"delta: malformed slot or value in {_show(data)}") from None


def group_key(group: Group) -> str:
    """A stable text key for a group (``[]``, ``["owner_id","u3"]``): Kafka message key."""
    return json.dumps([_encode(x) for x in group], separators=(",", ":"))


def partition_of(group: Group, partitions: int) -> int:
    """The phase-2 partition (of ``partitions``) holding ``group``: stable across processes."""
    return zlib.crc32(group_key(group).encode()) % partitions


def _encode(x: Any) -> Any:
    kind = type(x)
    if kind is str or kind is int or x is None:
        return x
    if isinstance(x, tuple):
        return [_encode(y) for y in x]
    if isinstance(x, date):
        return {"date": x.isoformat()}
    return x


def _decode(x: Any) -> Any:
    kind = type(x)
    if kind is str or kind is int or x is None:
        return x
    if isinstance(x, (list, tuple)):  # tuples: msgpack unpacked with use_list=False
        return tuple(_decode(y) for y in x)
    if isinstance(x, dict):
        return date.fromisoformat(x["date"])
    return x


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
