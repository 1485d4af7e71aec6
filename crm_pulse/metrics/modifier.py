"""Who changed a record last: the one pair of fields an upsert does not simply replace.

``modified_by`` / ``modified_at`` say which user changed a record last, and when (CRM
adoption). A connector leaves them null for a change made by crm-pulse itself (a write-back),
or when the vendor does not say; such an upsert keeps the last change known, so an echo of our
own write moves no metric. The rule, order-free like every version comparison: a record's
``modified_by`` / ``modified_at`` are those of its newest upsert, after its newest delete, whose
``modified_by`` is set (ties between upserts broken as for record versions: the greater
canonical JSON); none if there is no such upsert.

The engine keeps that upsert as a *register* ``[version, canonical JSON, modified_by,
modified_at]`` beside the record's state (see :func:`advance`); the reference evaluator picks
it from all events (see :func:`newest_change`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .events import Event

__all__ = [
    "CHANGED_AT",
    "CHANGED_BY",
    "Register",
    "advance",
    "effective",
    "newest_change",
    "positions",
]

CHANGED_BY = "modified_by"
CHANGED_AT = "modified_at"

Register = list[Any] | None
"""[version, canonical JSON, modified_by, modified_at] of the upsert that names the last change."""


def _beats(version: int, tie: str, register: Sequence[Any]) -> bool:
    return (version, tie) > (register[0], register[1])


def advance(register: Register, event: Event, max_delete: int | None) -> Register:
    """The register after ``event``; ``max_delete``: the record's newest delete version,
    this event included. Returns the same object when nothing moved."""
    if register is not None and max_delete is not None and register[0] <= max_delete:
        register = None  # a delete at or after it: that change went with the record
    if event.op != "upsert" or (max_delete is not None and event.version <= max_delete):
        return register
    by = event.values.get(CHANGED_BY)
    if by is None:
        return register
    if register is None or _beats(event.version, event.canonical, register):
        return [event.version, event.canonical, by, event.values.get(CHANGED_AT)]
    return register


def effective(
    fields: tuple[Any, ...] | None, positions: tuple[int, int] | None, register: Register
) -> tuple[Any, ...] | None:
    """A record's field tuple with its last known change in the register's place."""
    if fields is None or positions is None:
        return fields
    by, at = (None, None) if register is None else (register[2], register[3])
    by_pos, at_pos = positions
    if fields[by_pos] == by and (at_pos < 0 or fields[at_pos] == at):
        return fields
    out = list(fields)
    out[by_pos] = by
    if at_pos >= 0:
        out[at_pos] = at
    return tuple(out)


def positions(reads: Sequence[str]) -> tuple[int, int] | None:
    """Where ``modified_by`` (and ``modified_at``, -1 if unread) sit in a plan's fields."""
    if CHANGED_BY not in reads:
        return None
    at = reads.index(CHANGED_AT) if CHANGED_AT in reads else -1
    return reads.index(CHANGED_BY), at


def newest_change(upserts: Iterable[Event], floor: int | None) -> tuple[Any, Any]:
    """(modified_by, modified_at) of a record from all its upserts (the reference's way)."""
    best: Event | None = None
    for e in upserts:
        if floor is not None and e.version <= floor:
            continue
        if e.values.get(CHANGED_BY) is None:
            continue
        if best is None or (e.version, e.canonical) > (best.version, best.canonical):
            best = e
    if best is None:
        return None, None
    return best.values.get(CHANGED_BY), best.values.get(CHANGED_AT)
