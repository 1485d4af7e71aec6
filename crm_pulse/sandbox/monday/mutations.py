"""GraphQL mutations: ``change_multiple_column_values``, ``create_column``, ``create_webhook``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..graphql import GraphQLError
from .errors import _error, _Refusal
from .queries import _Queries
from .webhooks import _Webhooks


class _Mutations(_Queries, _Webhooks):
    """The mutation fields (a change answers the item as a query would)."""

    # ------------------------------------------------------------ mutations
    async def _mutation(self, name: str, args: dict[str, Any]) -> Any:
        if name == "change_multiple_column_values":
            with self._lock:
                self._charge(1000)
                return self._change(args)
        if name == "create_column":
            with self._lock:
                self._charge(1000)
                board = str(args.get("board_id"))
                if board not in self.boards:
                    raise GraphQLError("Board not found")
                if not args.get("title") or not args.get("column_type"):
                    raise GraphQLError("title and column_type are required")
                cid = self.add_column(board, str(args["title"]), str(args["column_type"]))
                return {k: v for k, v in self.column(board, cid).items() if k != "settings"}
        if name == "create_webhook":
            board, url = str(args.get("board_id")), str(args.get("url") or "")
            with self._lock:
                self._charge(1000)
                if board not in self.boards:
                    raise _Refusal(200, _error("Board not found", "InvalidArgumentException"))
            if not await self._challenge(url):
                raise _Refusal(
                    200,
                    _error(
                        "Failed to verify the webhook URL (challenge)", "InvalidArgumentException"
                    ),
                )
            with self._lock:
                wid = self._id()
                self.webhooks[wid] = {
                    "id": wid,
                    "board_id": board,
                    "url": url,
                    "event": str(args.get("event")),
                }
                return dict(self.webhooks[wid])
        raise GraphQLError(f"Field '{name}' doesn't exist on type 'Mutation'")

    def _change(self, args: Mapping[str, Any]) -> dict[str, Any]:
        board, rid = str(args.get("board_id")), str(args.get("item_id"))
        item = self.items.get(rid)
        if item is None or item["state"] == "deleted" or item["board"] != board:
            raise _Refusal(200, _error(f"Item {rid} not found in board", "InvalidItemIdException"))
        raw = args.get("column_values")
        try:
            values = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise _Refusal(
                200, _error("column_values is not JSON", "InvalidArgumentException")
            ) from None
        if not isinstance(values, dict):
            raise _Refusal(
                200, _error("column_values must be an object", "InvalidArgumentException")
            )
        columns = {c["id"]: c for c in self.boards[board]["columns"]}
        for cid, value in values.items():
            column = columns.get(cid)
            if column is None:
                raise _Refusal(
                    200,
                    _error(
                        f"This column ID doesn't exist for the board: {cid}",
                        "InvalidColumnIdException",
                    ),
                )
            if column["type"] == "numbers" and value not in ("", None):
                try:
                    float(str(value))
                except ValueError:
                    raise _Refusal(
                        200,
                        _error(f"invalid value for numbers column {cid}", "ColumnValueException"),
                    ) from None
        self._stamp(item, None)
        for cid, value in values.items():
            item["values"][cid] = (
                None
                if value in ("", None)
                else (str(value) if columns[cid]["type"] == "numbers" else value)
            )
        return self._item(item)
