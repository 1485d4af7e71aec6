"""Webhooks: deliveries with monday's event envelope (JWT-signed when the account has a
signing secret), and the URL challenge ``create_webhook`` makes first."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jwt

from .state import _Account


class _Webhooks(_Account):
    """Webhook deliveries and the URL challenge."""

    # ------------------------------------------------------------ webhooks
    def webhook(
        self,
        event_type: str,
        rid: str,
        *,
        url: str,
        secret: str | None = None,
        column_title: str | None = None,
        trigger_uuid: str | None = None,
        expires_in: float = 300.0,
        audience: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of one delivery about an item (``create_pulse``,
        ``update_column_value``, ``delete_pulse``, ``archive_pulse``, ``restore_pulse``...)."""
        with self._lock:
            item = self.items.get(rid)
            board = item["board"] if item else next(iter(self.boards), "0")
            event: dict[str, Any] = {
                "app": "monday",
                "type": event_type,
                "triggerTime": datetime.fromtimestamp(self.clock(), UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "subscriptionId": 1,
                "userId": 1,
                "originalTriggerUuid": None,
                "boardId": int(board),
                "pulseId": int(rid),
                "pulseName": item["name"] if item else "",
                "triggerUuid": trigger_uuid or uuid.uuid4().hex,
            }
            if column_title is not None and item is not None:
                column = self.column(board, column_title)
                event.update(
                    columnId=column["id"],
                    columnType=column["type"],
                    columnTitle=column["title"],
                    value=item["values"].get(column["id"]),
                )
        headers = {"Content-Type": "application/json", "User-Agent": "monday-webhooks"}
        key = secret if secret is not None else self.signing_secret
        if key is not None:
            now = int(self.clock())
            claims = {
                "accountId": self.account_id,
                "userId": 1,
                "aud": audience or url,
                "exp": now + int(expires_in),
                "iat": now,
                "shortLivedToken": "short-lived",
            }
            headers["Authorization"] = jwt.encode(claims, key, algorithm="HS256")
        return headers, json.dumps({"event": event}).encode()

    async def deliver(self, url: str, event_type: str, rid: str, **options: Any) -> int:
        """POST one delivery to ``url``; the HTTP status (0 if unreachable)."""
        headers, body = self.webhook(event_type, rid, url=url, **options)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    return response.status
            except (aiohttp.ClientError, TimeoutError):
                return 0

    async def _challenge(self, url: str) -> bool:
        token = base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            try:
                async with session.post(url, json={"challenge": token}) as response:
                    answer = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return False
        return isinstance(answer, dict) and answer.get("challenge") == token
