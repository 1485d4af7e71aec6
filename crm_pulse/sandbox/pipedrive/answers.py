"""Request parameters and answers every API family shares: ``limit``, cursors, errors."""

from __future__ import annotations

import base64

from aiohttp import web


def _limit(request: web.Request, default: int = 100) -> int | web.Response:
    try:
        limit = int(request.query.get("limit", str(default)))
    except ValueError:
        limit = -1
    if not 1 <= limit <= 500:
        return _bad("limit must be between 1 and 500")
    return limit


def _offset(request: web.Request) -> int | web.Response:
    cursor = request.query.get("cursor")
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("o:"))
    except (ValueError, UnicodeDecodeError):
        return _bad("invalid cursor")


def _cursor(offset: int, total: int) -> str | None:
    """The opaque next-page cursor (base64url), or None on the last page."""
    if offset >= total:
        return None
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _bad(message: str) -> web.Response:
    return web.json_response({"success": False, "error": message, "errorCode": 400}, status=400)


def _not_found() -> web.Response:
    return web.json_response({"success": False, "error": "not found", "errorCode": 404}, status=404)
