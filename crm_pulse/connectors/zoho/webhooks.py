"""Zoho CRM notifications (Notification API callbacks): the channel token, then re-reads.

Zoho POSTs a JSON body naming the ``module``, the ``operation`` (insert, update, delete), the
record ``ids``, the ``channel_id`` and the channel's ``token``; it carries no record data.
``verify`` checks the token in constant time and the channel id, and refuses bodies whose ids
are not Zoho's numeric ids (nothing else may reach a URL); the request is then stored and
acknowledged at once. ``parse`` re-reads inserted and updated records (Get Records with
``ids``, 100 a call) and turns deletes into delete events versioned by the notification's
``server_time``. Repeats and reordering are harmless: versions are ``Modified_Time``.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from ...errors import DataError, Unauthorized
from ...metrics.events import Event
from ..protocols import ReceiverBase, WebhookRequest
from .client import ZohoClient, check_id
from .mapping import CANONICAL, DELETE_TIE, ZohoMapper

__all__ = ["ZohoReceiver"]

log = logging.getLogger("crm_pulse.zoho")

_OPERATIONS = frozenset({"insert", "update", "delete", "create", "edit"})


class ZohoReceiver(ReceiverBase):
    max_body_bytes: int | None = 1024 * 1024

    def __init__(
        self,
        client: ZohoClient,
        mapper: ZohoMapper,
        token: str | None,
        channel_id: int,
        modules: set[str],
        *,
        path: str = "/webhooks/zoho",
    ) -> None:
        self.client = client
        self.mapper = mapper
        self._token = token.encode() if token is not None else None
        self.channel_id = str(channel_id)
        self.modules = modules
        self.path = path

    def __repr__(self) -> str:
        return f"ZohoReceiver(path={self.path!r}, channel_id={self.channel_id})"

    def verify(self, request: WebhookRequest) -> None:
        if self._token is None:
            raise Unauthorized("no notify_url/channel_token configured: notifications are refused")
        body = self._body(request)
        given = body.get("token")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self._token):
            raise Unauthorized("wrong or missing channel token")
        if str(body.get("channel_id")) != self.channel_id:
            raise Unauthorized("notification of another channel")

    @staticmethod
    def _body(request: WebhookRequest) -> dict[str, Any]:
        try:
            data = json.loads(request.body)
        except ValueError:
            raise DataError("Zoho notification body is not JSON") from None
        if not isinstance(data, dict):
            raise DataError("Zoho notification body is not a JSON object")
        if not isinstance(data.get("module"), str):
            raise DataError("Zoho notification names no module")
        if str(data.get("operation")) not in _OPERATIONS:
            raise DataError(f"unknown Zoho operation {str(data.get('operation'))[:20]!r}")
        ids = data.get("ids")
        if not isinstance(ids, list) or not ids:
            raise DataError("Zoho notification names no record ids")
        for rid in ids:
            check_id(rid)
        return data

    async def parse(self, request: WebhookRequest) -> list[Event]:
        body = self._body(request)
        module = str(body["module"])
        if module not in self.modules:
            return []  # a module crm-pulse does not read
        ids = [check_id(i) for i in body["ids"]]
        if body["operation"] == "delete":
            try:
                at = int(body.get("server_time") or 0)
            except (TypeError, ValueError):
                at = 0
            version = (at or request.received_at_ms) + DELETE_TIE
            return [
                Event(
                    source=self.mapper.source,
                    object=CANONICAL[module],
                    id=rid,
                    op="delete",
                    version=version,
                )
                for rid in dict.fromkeys(ids)
            ]
        if self.mapper.own_user is None:  # once: which user crm-pulse writes as
            self.mapper.learn_own_user(await self.client.current_user_id())
        records = await self.client.get_many(module, ids, self.mapper.api_fields(module))
        if module == "Deals" and self.mapper.unknown_stages(records):
            await self.mapper.catalog.reread("Deals")  # a stage added since: its metadata
        events = []
        for r in records:
            try:
                events.append(self.mapper.event(module, r))
            except DataError as exc:
                # the other records of the notification go on; polling reads this one again
                # and reports it as a bad record (quarantined with its reason)
                log.warning("Zoho record not mapped", extra={"reason": str(exc)})
        return events
