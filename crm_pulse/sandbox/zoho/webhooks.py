"""Notifications: ``actions/watch`` channels, the callbacks Zoho sends to them, and API updates
notified like any change (our own writes come back)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from .model import _ID_BASE, MODULES, _error
from .state import _Org


class _Webhooks(_Org):
    """Watch channels and notification deliveries."""

    def notification(
        self, module: str, operation: str, ids: Sequence[str], *, token: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of the callback Zoho sends for a watched event."""
        with self._lock:
            channel = next(
                (c for c in self.channels.values() if self._watches(c, module, operation)), None
            )
            body = {
                "server_time": int(self.clock() * 1000),
                "query_params": {},
                "module": module,
                "resource_uri": f"https://www.zohoapis.com/crm/v8/{module}",
                "ids": list(ids),
                "affected_fields": [],
                "operation": operation,
                "channel_id": (channel or {}).get("channel_id", "0"),
                "token": token if token is not None else (channel or {}).get("token"),
            }
        return {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _watches(self, channel: Mapping[str, Any], module: str, operation: str) -> bool:
        if channel["expires_at"] <= self.clock():
            return False
        action = {"insert": "create", "update": "edit", "delete": "delete"}.get(operation)
        return f"{module}.all" in channel["events"] or f"{module}.{action}" in channel["events"]

    async def deliver(self, module: str, operation: str, ids: Sequence[str]) -> int | None:
        """POST the notification to the watching channel's notify_url (None: no open channel
        watches it, as Zoho sends nothing then). Returns the HTTP status."""
        with self._lock:
            channel = next(
                (c for c in self.channels.values() if self._watches(c, module, operation)), None
            )
        if channel is None:
            return None
        headers, body = self.notification(module, operation, ids)
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(channel["notify_url"], data=body, headers=headers) as response,
        ):
            with self._lock:
                self.delivered.append((module, operation, tuple(ids), response.status))
            return response.status

    def _notify_later(self, module: str, ids: Sequence[str]) -> None:
        """Zoho notifies watching channels of API updates too (our own writes included)."""

        async def send() -> None:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                await self.deliver(module, "update", ids)

        task = asyncio.get_running_loop().create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, request: web.Request) -> web.Response:
        body = await request.json()
        watch = body.get("watch") if isinstance(body, dict) else None
        if not isinstance(watch, list) or not 1 <= len(watch) <= 50:
            return _error(400, "INVALID_DATA", "watch must hold 1 to 50 channels")
        results = []
        for item in watch:
            token = item.get("token")
            if not item.get("notify_url") or not item.get("channel_id") or not item.get("events"):
                return _error(
                    400, "MANDATORY_NOT_FOUND", "notify_url, channel_id and events are required"
                )
            if token is not None and len(str(token)) > 50:
                return _error(
                    400, "INVALID_DATA", "token is longer than 50 characters", api_name="token"
                )
            for event in item["events"]:
                module, _, action = str(event).partition(".")
                if module not in MODULES or action not in ("all", "create", "edit", "delete"):
                    return _error(400, "INVALID_DATA", f"invalid event {event}", api_name="events")
            now = self.clock()
            expiry = item.get("channel_expiry")
            expires_at = now + 3600
            if expiry:
                wanted = datetime.fromisoformat(str(expiry)).timestamp()
                if now < wanted <= now + 7 * 86400:
                    expires_at = wanted
            channel_id = str(item["channel_id"])
            with self._lock:
                self.channels[channel_id] = {
                    "channel_id": channel_id,
                    "events": list(item["events"]),
                    "notify_url": str(item["notify_url"]),
                    "token": token,
                    "expires_at": expires_at,
                }
            results.append(
                {
                    "code": "SUCCESS",
                    "details": {
                        "events": [
                            {
                                "channel_expiry": self._time(expires_at),
                                "resource_uri": f"https://www.zohoapis.com/crm/v8/{e.split('.')[0]}",
                                "resource_id": str(_ID_BASE + n),
                                "resource_name": e.split(".")[0],
                                "channel_id": channel_id,
                            }
                            for n, e in enumerate(item["events"])
                        ]
                    },
                    "message": "Successfully subscribed for actions-watch of the given module",
                    "status": "success",
                }
            )
        return web.json_response({"watch": results}, status=201)
