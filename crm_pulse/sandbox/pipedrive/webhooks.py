"""Webhooks v2: deliveries built as Pipedrive sends them, and POSTed with its retry schedule."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from .model import _SINGULAR, _essential, _iso
from .state import _Account


class _Webhooks(_Account):
    """Webhooks v2 deliveries."""

    def webhook(
        self,
        action: str,
        entity: str,
        rid: str,
        *,
        user: str | None = None,
        password: str | None = None,
        event_id: str | None = None,
        with_data: bool = True,
        previous: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of a webhooks v2 delivery about one record (``data``: its
        essential fields only, as Pipedrive sends them)."""
        with self._lock:
            record = self.records[entity].get(rid)
            body = {
                "meta": {
                    "action": action,
                    "entity": _SINGULAR[entity],
                    "entity_id": rid,
                    "id": event_id or str(uuid.uuid4()),
                    "timestamp": _iso(int(self.clock()))
                    if action == "delete"
                    else (record or {}).get("update_time"),
                    "version": "2.0",
                    "change_source": "app",
                    "attempt": 1,
                    "company_id": 1,
                    "user_id": 1,
                },
                "data": _essential(entity, record)
                if (record is not None and with_data and action != "delete")
                else None,
                "previous": dict(previous) if previous is not None else None,
            }
        auth = base64.b64encode(
            f"{user or self.webhook_user}:{password or self.webhook_password}".encode()
        ).decode()
        return {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}, json.dumps(
            body
        ).encode()

    async def deliver(
        self,
        url: str,
        action: str,
        entity: str,
        rid: str,
        *,
        attempts: int = 4,
        sleep: Callable[[float], Any] | None = None,
        **options: Any,
    ) -> list[int]:
        """POST a webhooks v2 delivery to ``url`` the way Pipedrive does: HTTP Basic
        credentials, a 10 s timeout, and retries of the same delivery (same ``meta.id``, growing
        ``meta.attempt``) after 3, 30 and 150 s while the answer is not 2xx. ``sleep`` replaces
        the waits (tests pass a no-op). Returns the HTTP status of every attempt (0 for a
        timeout or a refused connection)."""
        headers, body = self.webhook(action, entity, rid, **options)
        payload = json.loads(body)
        waits = (3.0, 30.0, 150.0)
        statuses: list[int] = []
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for attempt in range(1, attempts + 1):
                payload["meta"]["attempt"] = attempt
                try:
                    async with session.post(
                        url, data=json.dumps(payload).encode(), headers=headers
                    ) as response:
                        statuses.append(response.status)
                except (aiohttp.ClientError, TimeoutError):
                    statuses.append(0)
                if 200 <= statuses[-1] < 300 or attempt > len(waits):
                    break
                wait = waits[attempt - 1]
                await (sleep(wait) if sleep is not None else asyncio.sleep(wait))
        return statuses
