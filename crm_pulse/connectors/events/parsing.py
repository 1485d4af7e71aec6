"""Reading the ingress body: one JSON object, a JSON array of them, or JSON lines.

Every bad item is reported, each with its index (0-based position in the request), its line
for JSON lines, and the field at fault, so a sender can fix a whole batch from one answer.
Wording follows :mod:`crm_pulse.metrics.jsonl`, which reads the same events from files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import ValidationError

from ...errors import DataError
from ...metrics.events import Event
from .. import MAX_JSON_DEPTH, json_depth

__all__ = ["InvalidEvents", "Item", "ItemProblem", "decode_items", "parse_events", "validate_items"]

JSONL_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)


@dataclass(frozen=True)
class ItemProblem:
    """One thing wrong with one item of the request."""

    index: int
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"[{self.index}]" + (f" (line {self.line})" if self.line is not None else "")
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "field": self.field, "message": self.message}
        if self.line is not None:
            out["line"] = self.line
        return out


class InvalidEvents(DataError):
    """Some items of the request are not canonical events; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[ItemProblem], total: int) -> None:
        self.problems = list(problems)
        self.total = total
        text = "; ".join(str(p) for p in self.problems)
        super().__init__(f"{len(self.problems)} bad event(s) of {total}: {text}")

    def item_problems(self) -> list[dict[str, object]]:
        return [p.as_dict() for p in self.problems]


class Item(NamedTuple):
    """One item of the body: its JSON value, or why it could not be read (a NamedTuple: one is
    made per event on the hot path)."""

    position: int
    line: int | None
    data: Any
    error: str = ""


def _content_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def decode_items(body: bytes, content_type: str | None = None) -> list[Item]:
    """The body's items; a body that is not JSON at all raises :class:`DataError`."""
    if not body.strip():
        raise DataError("no events in the body: expected a JSON object, an array or JSON lines")
    _check_depth(body)
    if _content_type(content_type) not in JSONL_TYPES:
        try:
            doc = json.loads(body)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":
                raise DataError(
                    f"not JSON, a JSON array or JSON lines: {exc.msg} at line {exc.lineno} "
                    f"column {exc.colno}"
                ) from None
        except UnicodeDecodeError:
            raise DataError("the body is not UTF-8 text") from None
        except ValueError as exc:  # an integer of more digits than Python converts
            raise DataError(f"a number is too long: {str(exc)[:80]}") from None
        else:
            if isinstance(doc, list):
                items = [Item(i, None, v) for i, v in enumerate(doc)]
            elif isinstance(doc, dict):
                items = [Item(0, None, doc)]
            else:
                raise DataError(
                    f"expected a JSON object or an array of objects, got {type(doc).__name__}"
                )
            if not items:
                raise DataError("no events in the body")
            return items
    items = []
    for number, raw in enumerate(body.split(b"\n"), start=1):
        if not raw.strip():
            continue
        index = len(items)
        try:
            items.append(Item(index, number, json.loads(raw)))
        except json.JSONDecodeError as exc:
            items.append(Item(index, number, None, f"not JSON: {exc.msg} at column {exc.colno}"))
        except UnicodeDecodeError:
            items.append(Item(index, number, None, "not UTF-8 text"))
        except ValueError:
            items.append(Item(index, number, None, "a number is too long"))
    return items


def _check_depth(body: bytes) -> None:
    deepest = json_depth(body)
    if deepest > MAX_JSON_DEPTH:
        raise DataError(f"JSON nested {deepest} deep; at most {MAX_JSON_DEPTH} accepted")


def _problems(item: Item, exc: ValidationError) -> list[ItemProblem]:
    out = []
    for err in exc.errors():
        field = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "missing"
        elif err["type"] == "literal_error":
            msg = f"expected 'upsert' or 'delete', got {err.get('input')!r}"[:120]
        elif not field and msg.startswith("fields."):
            field, _, msg = msg.partition(": ")
        out.append(ItemProblem(item.position, field, msg, item.line))
    return out


def validate_items(items: Sequence[Item]) -> list[Event]:
    """Events of every item; :class:`InvalidEvents` lists every bad one."""
    events: list[Event] = []
    problems: list[ItemProblem] = []
    for item in items:
        if item.error:
            problems.append(ItemProblem(item.position, "", item.error, item.line))
            continue
        if not isinstance(item.data, dict):
            problems.append(
                ItemProblem(
                    item.position,
                    "",
                    f"expected a JSON object, got {type(item.data).__name__}",
                    item.line,
                )
            )
            continue
        try:
            events.append(Event.model_validate(item.data))
        except ValidationError as exc:
            problems.extend(_problems(item, exc))
    if problems:
        raise InvalidEvents(problems, len(items))
    return events


def parse_events(body: bytes, content_type: str | None = None) -> list[Event]:
    """The events of a body; :class:`InvalidEvents` (or :class:`DataError`) lists every problem.

    The common case, a JSON array (or object) of valid events, is validated directly; the
    per-item bookkeeping is done only when something is wrong.
    """
    _check_depth(body)
    if _content_type(content_type) not in JSONL_TYPES:
        try:
            doc = json.loads(body)
        except ValueError:  # not JSON, not UTF-8, a number too long: reported item by item
            pass
        else:
            if isinstance(doc, dict):
                doc = [doc]
            if isinstance(doc, list) and doc:
                try:
                    return [Event.model_validate(item) for item in doc]
                except ValidationError:
                    pass
    return validate_items(decode_items(body, content_type))
