"""GraphQL queries: ``boards``, ``items_page``, ``next_items_page`` (cursors that expire),
``items``, ``complexity``, and items and column values as monday shows them."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from ..graphql import GraphQLError
from .errors import _cursor_expired, _Refusal
from .model import (
    CURSOR_TTL,
)
from .state import _Account


class _Queries(_Account):
    """The query fields."""

    # ------------------------------------------------------------ queries
    def _query(self, name: str, args: dict[str, Any]) -> Any:
        if name == "boards":
            self._charge(100)
            ids = [str(i) for i in args.get("ids") or self.boards]
            return [self._board(self.boards[i]) for i in ids if i in self.boards]
        if name == "next_items_page":
            return self._next_page(args)
        if name == "items":
            ids = [str(i) for i in args.get("ids") or []]
            self._charge(10 * len(ids) + 10)
            return [self._item(self.items[i]) for i in ids if i in self.items]
        if name == "complexity":
            used = sum(c for t, c in self._spent if t > self.clock() - 60)
            return {
                "before": self.budget - used,
                "after": self.budget - used,
                "query": 0,
                "reset_in_x_seconds": 60,
            }
        raise GraphQLError(f"Field '{name}' doesn't exist on type 'Query'")

    def _board(self, board: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": board["id"],
            "name": board["name"],
            "columns": [
                {
                    "id": c["id"],
                    "title": c["title"],
                    "type": c["type"],
                    "settings_str": json.dumps(c["settings"]),
                }
                for c in board["columns"]
            ],
            "items_page": lambda args: self._items_page(board, args),
        }

    def _limit(self, args: Mapping[str, Any]) -> int:
        limit = args.get("limit", 25)
        if not isinstance(limit, int) or not 1 <= limit <= 500:
            raise GraphQLError("limit must be between 1 and 500")
        return limit

    def _items_page(self, board: dict[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
        limit = self._limit(args)
        self._charge(1000 + 20 * limit)
        if args.get("cursor"):
            return self._next_page({"cursor": args["cursor"], "limit": limit})
        rows = [self.items[i] for i in board["items"] if self.items[i]["state"] == "active"]
        params = args.get("query_params") or {}
        for rule in params.get("rules") or []:
            rows = self._filter(rows, rule)
        for order in reversed(params.get("order_by") or []):
            if order.get("column_id") not in ("__last_updated__", "__creation_log__", "name"):
                raise GraphQLError(f"cannot order by {order.get('column_id')!r}")
            key = {"__last_updated__": "updated_at", "__creation_log__": "created_at"}.get(
                order["column_id"], "name"
            )
            rows.sort(
                key=lambda r: (r[key], int(r["id"])), reverse=order.get("direction") == "desc"
            )
        ids = [r["id"] for r in rows]
        token = hashlib.sha256(f"{uuid.uuid4()}".encode()).hexdigest()[:40]
        self._cursors[token] = (ids, 0, self.clock())
        return self._serve(token, limit)

    def _filter(self, rows: list[dict[str, Any]], rule: Mapping[str, Any]) -> list[dict[str, Any]]:
        if (
            rule.get("column_id") != "__last_updated__"
            or rule.get("compare_attribute") != "UPDATED_AT"
        ):
            raise GraphQLError(f"the fake filters only on __last_updated__ (got {rule})")
        value = rule.get("compare_value")
        if not (isinstance(value, list) and len(value) == 2 and value[0] == "EXACT"):
            raise GraphQLError("compare_value must be ['EXACT', 'YYYY-MM-DD']")
        day = str(value[1])[:10]
        op = rule.get("operator")
        if op == "greater_than_or_equals":
            return [r for r in rows if r["updated_at"][:10] >= day]
        if op == "lower_than_or_equal":
            return [r for r in rows if r["updated_at"][:10] <= day]
        raise GraphQLError(f"unsupported operator {op!r}")

    def _next_page(self, args: Mapping[str, Any]) -> dict[str, Any]:
        limit = self._limit(args)
        self._charge(1000 + 20 * limit)
        token = str(args.get("cursor") or "")
        if token not in self._cursors:
            raise GraphQLError("invalid cursor")
        _, _, issued = self._cursors[token]
        if self.clock() - issued > CURSOR_TTL:
            raise _Refusal(200, _cursor_expired())
        return self._serve(token, limit)

    def _serve(self, token: str, limit: int) -> dict[str, Any]:
        ids, offset, issued = self._cursors[token]
        page = [self.items[i] for i in ids[offset : offset + limit]]
        more = offset + limit < len(ids)
        if more:
            self._cursors[token] = (ids, offset + limit, issued)
        else:
            del self._cursors[token]
        return {"cursor": token if more else None, "items": [self._item(i) for i in page]}

    def _item(self, item: dict[str, Any]) -> dict[str, Any]:
        board = self.boards[item["board"]]
        values = []
        for c in board["columns"]:
            raw = item["values"].get(c["id"])
            values.append(
                {
                    "id": c["id"],
                    "type": c["type"],
                    "text": self._text(c, raw),
                    "value": None if raw is None else json.dumps(raw),
                    "column": {"id": c["id"], "title": c["title"], "type": c["type"]},
                }
            )
        return {
            "id": item["id"],
            "name": item["name"],
            "state": item["state"],
            "created_at": item["created_at"],
            "updated_at": item["updated_at"],
            "board": {"id": item["board"], "name": board["name"]},
            "column_values": values,
        }

    def _text(self, column: dict[str, Any], raw: Any) -> str | None:
        if raw is None:  # empty: status text is null, board_relation's always, others ""
            return None if column["type"] in ("status", "board_relation") else ""
        kind = column["type"]
        if kind == "status":
            return str(column["settings"]["labels"].get(str(raw["index"])))
        if kind == "people":
            return ", ".join(f"user {p['id']}" for p in raw["personsAndTeams"])
        if kind == "date":
            return f"{raw['date']} {raw['time'] or ''}".strip()
        if kind == "board_relation":
            # column values v2: connect boards (and mirror, dependency) text is always null
            # (changelog, 2023-10 hotfix "returns "" instead of null for most empty values")
            return None
        if kind == "email":
            return str(raw["email"])
        return str(raw)
