"""Writing metric values into numbers columns: one ``change_multiple_column_values`` per item.

All writes to one item in a batch are coalesced into one mutation on its board (monday has no
multi-item update); columns are named by title and resolved to ids through
:class:`~.mapping.BoardColumns`. A rate-limit or complexity-budget refusal raises RateLimited
(the outbox retries after ``retry_in_seconds``); an item that is gone fails permanently (dead
letter); an unknown column title fails as retriable (``crm-pulse provision`` may be creating
it in another process; the board's columns are read again) with a message naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from .. import (
    FieldKey,
    FieldWrite,
    RateLimited,
    RetriableError,
    SkippableError,
    WriteResult,
    held_value,
)
from .client import MondayClient
from .mapping import KIND_OF_OBJECT, BoardColumns
from .settings import BoardKind, MondaySettings

__all__ = ["MondayReader", "MondaySink", "number_text"]


def number_text(value: float | int | None) -> str:
    """A numbers column's value as monday takes it: digits, no exponent ("" clears it)."""
    if value is None:
        return ""
    text = format(Decimal(str(value)).normalize(), "f")
    return text


class MondaySink:
    max_batch = 50  # writes per round; one mutation per distinct item in it
    rounds_in_flight = 1  # monday asks for mutations one after the other

    def __init__(self, client: MondayClient, columns: BoardColumns, settings: MondaySettings):
        self.client = client
        self.columns = columns
        self.boards: dict[BoardKind, str] = {k: b.id for k, b in settings.boards.configured()}

    async def write(self, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        groups: dict[tuple[str, str], dict[str, str]] = {}
        where: dict[int, tuple[str, str]] = {}
        problems: dict[int, str] = {}
        unknown: set[int] = set()
        for i, w in enumerate(writes):
            kind = KIND_OF_OBJECT.get(w.object) or KIND_OF_OBJECT.get(w.object.rstrip("s"))
            board = self.boards.get(kind) if kind is not None else None
            if board is None:
                problems[i] = (
                    f"monday object {w.object!r} has no board in this connector's settings "
                    f"(boards: {', '.join(self.boards) or 'none'})"
                )
                continue
            if not w.record_id.isdigit():
                problems[i] = f"{w.record_id!r} is not a monday item id"
                continue
            column = await self.columns.resolve(board, w.field)
            if column is None:
                problems[i] = (
                    f"no column titled {w.field!r} on board {board}: run `crm-pulse provision`"
                )
                unknown.add(i)
                continue
            groups.setdefault((board, w.record_id), {})[column] = number_text(w.value)
            where[i] = (board, w.record_id)
        failed: dict[tuple[str, str], tuple[str, bool]] = {}
        for (board, item), values in groups.items():
            try:
                await self.client.change_multiple_column_values(board, item, values)
            except RateLimited:
                raise
            except RetriableError as exc:
                failed[(board, item)] = (str(exc), True)
            except SkippableError as exc:
                failed[(board, item)] = (str(exc), False)
        results = []
        for i, w in enumerate(writes):
            if i in problems:
                results.append(WriteResult(w, ok=False, retriable=i in unknown, reason=problems[i]))
                continue
            failure = failed.get(where[i])
            results.append(
                WriteResult(w, ok=True)
                if failure is None
                else WriteResult(w, ok=False, retriable=failure[1], reason=failure[0])
            )
        return results


class MondayReader:
    """Reads written numbers columns back for ``crm-pulse audit``: items by id (100 a call),
    each column's text; an item, board or column monday does not have is left out."""

    def __init__(self, client: MondayClient, columns: BoardColumns, settings: MondaySettings):
        self.client = client
        self.columns = columns
        self.boards: dict[BoardKind, str] = {k: b.id for k, b in settings.boards.configured()}

    async def read(self, fields: Sequence[FieldKey]) -> dict[FieldKey, float | int | str | None]:
        wanted: dict[str, list[tuple[str, str, str]]] = {}  # item -> (object, field, column id)
        for obj, rid, name in fields:
            kind = KIND_OF_OBJECT.get(obj) or KIND_OF_OBJECT.get(obj.rstrip("s"))
            board = self.boards.get(kind) if kind is not None else None
            if board is None or not rid.isdigit():
                continue
            column = await self.columns.resolve(board, name)
            if column is not None:
                wanted.setdefault(rid, []).append((obj, name, column))
        out: dict[FieldKey, float | int | str | None] = {}
        for item in await self.client.items(sorted(wanted)):
            rid = str(item.get("id"))
            texts = {str(c.get("id")): c.get("text") for c in item.get("column_values") or []}
            for obj, name, column in wanted.get(rid, ()):
                if column in texts:
                    out[(obj, rid, name)] = held_value(texts[column])
        return out
