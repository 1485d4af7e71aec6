"""A small typed async client for monday's GraphQL API v2 (httpx).

Every call is one ``POST`` of ``{"query", "variables"}`` to ``base_url`` with the token in
``Authorization`` and the pinned ``API-Version`` header. Values always travel as GraphQL
variables, never spliced into the query text. Errors are translated once, in :mod:`.errors`.

Retries follow the one policy of the kit (:func:`crm_pulse.retry.retrying` with a
:class:`~crm_pulse.retry.Backoff`): reads (``retry=True``) are retried on retriable errors with
exponential backoff and full jitter, and on rate-limit errors after monday's
``retry_in_seconds`` (or ``Retry-After``) when that is at most ``max_wait``; writes
(``retry=False``) raise :class:`~crm_pulse.errors.RateLimited` at once so the write-back outbox
schedules them. An expired ``items_page`` cursor is never retried here: the source restarts
from its ``updated_at`` mark.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx

from .. import Backoff, CrmPulseError, RetriableError, retrying
from .errors import CursorExpired, translate, translate_answer
from .settings import MondaySettings

__all__ = ["ITEM_FIELDS", "MondayClient"]

ITEM_FIELDS = (
    "id name state created_at updated_at board { id } column_values { id type text value }"
)
"""What is read of an item: the raw JSON ``value`` of each column is parsed in :mod:`.mapping`."""

_ITEMS_PAGE = (
    "query ($board: [ID!], $limit: Int!, $query: ItemsQuery) { boards (ids: $board) { "
    "items_page (limit: $limit, query_params: $query) { cursor items { %s } } } }"
)
_NEXT_PAGE = (
    "query ($cursor: String!, $limit: Int!) { next_items_page (cursor: $cursor, limit: $limit) "
    "{ cursor items { %s } } }"
)
_ITEMS = "query ($ids: [ID!]) { items (ids: $ids, limit: 100) { %s } }"
_COLUMNS = "query ($board: [ID!]) { boards (ids: $board) { id name columns { id title type } } }"
_CHANGE = (
    "mutation ($board: ID!, $item: ID!, $values: JSON!) { change_multiple_column_values "
    "(board_id: $board, item_id: $item, column_values: $values) { id } }"
)
_CREATE_COLUMN = (
    "mutation ($board: ID!, $title: String!, $type: ColumnType!, $description: String) { "
    "create_column (board_id: $board, title: $title, column_type: $type, "
    "description: $description) { id title type } }"
)
_CREATE_WEBHOOK = (
    "mutation ($board: ID!, $url: String!, $event: WebhookEventType!) { "
    "create_webhook (board_id: $board, url: $url, event: $event) { id board_id } }"
)


class MondayClient:
    def __init__(
        self,
        settings: MondaySettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(settings.ca_cert))
            if settings.ca_cert is not None
            else True
        )
        self.url = str(settings.base_url)
        self.http = httpx.AsyncClient(
            headers={
                "Authorization": settings.api_token.get_secret_value(),
                "API-Version": settings.api_version,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            timeout=settings.timeout,
            verify=verify,
            transport=transport,
            trust_env=False,
        )
        self.backoff = backoff or Backoff(
            initial=0.5, maximum=30.0, attempts=4, max_wait=settings.max_wait
        )
        self.sleep = sleep
        self.calls = 0

    # ------------------------------------------------------------------ transport
    async def _once(self, query: str, variables: dict[str, Any], what: str) -> dict[str, Any]:
        self.calls += 1
        try:
            response = await self.http.post(
                self.url, content=json.dumps({"query": query, "variables": variables})
            )
            try:
                data: Any = response.json()
            except ValueError:
                data = None
            error = translate_answer(response.status_code, response.headers, data, what)
        except Exception as exc:  # translated: the one place for vendor errors
            raise translate(exc, what) from None
        if error is not None:
            raise error
        if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
            raise RetriableError(f"monday answered {what} without data")
        return dict(data["data"])

    async def graphql(
        self, query: str, variables: dict[str, Any], what: str, *, retry: bool = True
    ) -> dict[str, Any]:
        """The ``data`` of one GraphQL operation; crm-pulse errors only."""

        def worth_retrying(error: CrmPulseError) -> bool:
            return (
                retry and isinstance(error, RetriableError) and not isinstance(error, CursorExpired)
            )

        return await retrying(
            f"monday {what}",
            lambda: self._once(query, variables, what),
            self.backoff,
            retry_on=worth_retrying,
            sleep=self.sleep,
        )

    # ------------------------------------------------------------------ reads
    async def columns(self, board: str) -> list[dict[str, Any]]:
        data = await self.graphql(_COLUMNS, {"board": [board]}, f"columns of board {board}")
        boards = data.get("boards") or []
        if not boards:
            raise RetriableError(f"monday board {board} not found (or not visible to the token)")
        return list(boards[0].get("columns") or [])

    async def items_page(
        self, board: str, limit: int, query_params: dict[str, Any] | None
    ) -> tuple[str | None, list[dict[str, Any]]]:
        data = await self.graphql(
            _ITEMS_PAGE % ITEM_FIELDS,
            {"board": [board], "limit": limit, "query": query_params},
            f"items_page of board {board}",
        )
        boards = data.get("boards") or []
        if not boards:
            raise RetriableError(f"monday board {board} not found (or not visible to the token)")
        page = boards[0].get("items_page") or {}
        return page.get("cursor"), list(page.get("items") or [])

    async def next_items_page(
        self, cursor: str, limit: int
    ) -> tuple[str | None, list[dict[str, Any]]]:
        data = await self.graphql(
            _NEXT_PAGE % ITEM_FIELDS, {"cursor": cursor, "limit": limit}, "next_items_page"
        )
        page = data.get("next_items_page") or {}
        return page.get("cursor"), list(page.get("items") or [])

    async def pages(
        self, board: str, limit: int, query_params: dict[str, Any] | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a board's items (an expired cursor raises CursorExpired)."""
        cursor, items = await self.items_page(board, limit, query_params)
        yield items
        while cursor:
            cursor, items = await self.next_items_page(cursor, limit)
            yield items

    async def item_ids(self, board: str) -> list[str]:
        """Every active item id of a board (a cheap query: ids only)."""
        ids: list[str] = []
        query = _ITEMS_PAGE % "id"
        data = await self.graphql(
            query, {"board": [board], "limit": 500, "query": None}, f"ids of board {board}"
        )
        boards = data.get("boards") or []
        if not boards:
            raise RetriableError(f"monday board {board} not found (or not visible to the token)")
        page = boards[0].get("items_page") or {}
        ids.extend(str(i["id"]) for i in page.get("items") or [])
        cursor = page.get("cursor")
        while cursor:
            data = await self.graphql(
                _NEXT_PAGE % "id", {"cursor": cursor, "limit": 500}, f"ids of board {board}"
            )
            page = data.get("next_items_page") or {}
            ids.extend(str(i["id"]) for i in page.get("items") or [])
            cursor = page.get("cursor")
        return ids

    async def items(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Items by id, 100 per call; ids monday does not know are simply absent."""
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), 100):
            chunk = list(ids[start : start + 100])
            data = await self.graphql(_ITEMS % ITEM_FIELDS, {"ids": chunk}, "items by id")
            out.extend(data.get("items") or [])
        return out

    # ------------------------------------------------------------------ writes
    async def change_multiple_column_values(
        self, board: str, item: str, values: dict[str, Any]
    ) -> None:
        await self.graphql(
            _CHANGE,
            {"board": board, "item": item, "values": json.dumps(values)},
            f"change_multiple_column_values of item {item}",
            retry=False,
        )

    async def create_column(
        self, board: str, title: str, column_type: str, description: str = ""
    ) -> dict[str, Any]:
        data = await self.graphql(
            _CREATE_COLUMN,
            {"board": board, "title": title, "type": column_type, "description": description},
            f"create_column {title!r} on board {board}",
        )
        return dict(data.get("create_column") or {})

    async def create_webhook(self, board: str, url: str, event: str) -> str:
        data = await self.graphql(
            _CREATE_WEBHOOK,
            {"board": board, "url": url, "event": event},
            f"create_webhook {event} on board {board}",
        )
        return str((data.get("create_webhook") or {}).get("id") or "")

    async def aclose(self) -> None:
        await self.http.aclose()
