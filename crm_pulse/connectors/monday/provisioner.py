"""Creating the numbers columns write-back needs (``create_column`` with ``column_type:
numbers``) on the board of each target object, and registering the board webhooks
(``create_webhook``; monday verifies the URL with its challenge before keeping one)."""

from __future__ import annotations

from collections.abc import Sequence

from .. import FatalError, FieldSpec
from .client import MondayClient
from .mapping import KIND_OF_OBJECT, BoardColumns
from .settings import BoardKind, MondaySettings

__all__ = ["WEBHOOK_EVENTS", "MondayProvisioner"]

WEBHOOK_EVENTS = (
    "change_column_value",
    "create_item",
    "item_deleted",
    "item_archived",
    "item_restored",
)
"""The board events crm-pulse listens to: column changes, creation, deletion, archive, restore."""


class MondayProvisioner:
    def __init__(self, client: MondayClient, columns: BoardColumns, settings: MondaySettings):
        self.client = client
        self.columns = columns
        self.boards: dict[BoardKind, str] = {k: b.id for k, b in settings.boards.configured()}

    def _board(self, spec: FieldSpec) -> str:
        kind = KIND_OF_OBJECT.get(spec.object) or KIND_OF_OBJECT.get(spec.object.rstrip("s"))
        board = self.boards.get(kind) if kind is not None else None
        if board is None:
            raise FatalError(
                f"write-back to monday object {spec.object!r}: the connector has no board for "
                f"it (boards: {', '.join(self.boards) or 'none'}; objects: deal, account, "
                "contact, activity)"
            )
        return board

    async def missing(self, fields: Sequence[FieldSpec]) -> list[FieldSpec]:
        out = []
        for f in fields:
            board = self._board(f)
            await self.columns.load(board, refresh=True)
            if self.columns.id(board, f.name) is None:
                out.append(f)
        return out

    async def create(self, fields: Sequence[FieldSpec]) -> list[str]:
        lines = []
        for f in fields:
            board = self._board(f)
            created = await self.client.create_column(board, f.name, "numbers", f.description)
            await self.columns.load(board, refresh=True)
            lines.append(
                f"created numbers column {f.name!r} on board {board} (id {created.get('id')})"
            )
        return lines

    async def register_webhooks(self, url: str) -> list[str]:
        """Create a webhook for every event of :data:`WEBHOOK_EVENTS` on every configured
        board, pointing at ``url`` (the runtime must be serving it: monday sends the challenge
        first). Returns one line per webhook."""
        lines = []
        for kind, board in self.boards.items():
            for event in WEBHOOK_EVENTS:
                wid = await self.client.create_webhook(board, url, event)
                lines.append(f"webhook {wid}: {event} on the {kind} board {board}")
        return lines
