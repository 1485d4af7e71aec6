"""monday webhooks: the URL challenge answered, the sender verified, then canonical events.

**Who may send.** Board webhooks created with a personal token carry no signature, so one of two
checks is required (without either, every webhook is refused):

* ``signing_secret`` (integration webhooks, created with an app's token): the ``Authorization``
  header holds a JWT signed (HS256) with the app's Signing Secret; its signature, its audience
  (``aud`` == ``webhook_url``) and its expiry (``exp``, required) are verified with PyJWT;
* ``webhook_token``: the webhook URL registered in monday carries ``?token=<secret>``, compared
  in constant time.

**The challenge.** When a webhook is created monday POSTs ``{"challenge": "..."}`` and expects the
same JSON back (:meth:`MondayReceiver.ack_response`). With ``webhook_token`` the challenge must
carry the token like any delivery; with ``signing_secret`` a challenge without an
``Authorization`` header is answered (monday's docs do not say that it carries the JWT), but
one with a header must verify. A challenge adds nothing to the pipeline.

**Bodies.** ``{"event": {...}}`` with ``boardId`` one of the configured boards and ``pulseId`` an
item id (digits): anything else is refused (400). The body is only a hint: the item is read
again by id (``items (ids: ...)``), so a delivery can never inject values. Deletes and archives
(``delete_pulse``, ``archive_pulse``) become delete events versioned by ``triggerTime``; a
restore (``restore_pulse``) re-reads the item with a version at least its ``triggerTime`` so it
wins over the earlier delete. Repeated deliveries (same ``triggerUuid``) are skipped. A change of
a column no canonical field reads (the numbers columns crm-pulse itself writes, say) or of an
item's name is dropped without reading anything: our own writes never feed back.
"""

from __future__ import annotations

import hmac
import json
import re
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from .. import DataError, Event, ReceiverBase, Unauthorized, WebhookRequest
from .client import MondayClient
from .mapping import DELETE_TIE, MondayMapper, to_ms
from .settings import BoardKind

__all__ = ["DELETES", "MondayReceiver"]

DELETES = frozenset({"delete_pulse", "archive_pulse", "item_deleted", "item_archived"})
RESTORES = frozenset({"restore_pulse", "item_restored"})
IGNORED = frozenset({"update_name", "change_name", "create_update", "edit_update"})
"""Events about what crm-pulse does not read (item names, updates' text)."""
_ID = re.compile(r"[0-9]{1,20}")
_LEEWAY = 30.0
"""Seconds of clock difference tolerated on ``exp``."""


class MondayReceiver(ReceiverBase):
    max_body_bytes: int | None = 256 * 1024

    def __init__(
        self,
        client: MondayClient,
        mapper: MondayMapper,
        *,
        signing_secret: str | None,
        audience: str | None,
        token: str | None,
        path: str = "/webhooks/monday",
    ) -> None:
        self.client = client
        self.mapper = mapper
        self._secret = signing_secret
        self._audience = audience
        self._token = token
        self.path = path
        self._seen: OrderedDict[str, None] = OrderedDict()

    # ------------------------------------------------------------------ verify
    def _jwt(self, header: str) -> None:
        assert self._secret is not None
        scheme, _, rest = header.partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" and rest else header.strip()
        try:
            jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=self._audience,
                leeway=_LEEWAY,
                options={"require": ["exp", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the JWT in Authorization has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("the JWT's audience is not this endpoint's webhook_url") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"the JWT has no {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("the JWT is not signed with the signing secret") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the Authorization header is not a valid JWT ({exc})") from None

    def verify(self, request: WebhookRequest) -> None:
        body = self._body(request)
        header = request.header("Authorization")
        if self._secret is not None:
            if header:
                self._jwt(header)
            elif "challenge" not in body:
                raise Unauthorized("no JWT in Authorization (signing_secret is configured)")
        elif self._token is not None:
            given = (parse_qs(urlsplit(request.url).query).get("token") or [""])[0]
            if not hmac.compare_digest(given.encode(), self._token.encode()):
                raise Unauthorized("wrong or missing ?token= in the webhook URL")
        else:
            raise Unauthorized(
                "no signing_secret or webhook_token configured: webhooks are refused"
            )

    def _body(self, request: WebhookRequest) -> dict[str, Any]:
        try:
            data = json.loads(request.body)
        except ValueError:
            raise DataError("monday webhook body is not JSON") from None
        if not isinstance(data, dict):
            raise DataError("monday webhook body is not a JSON object")
        if "challenge" in data:
            challenge = data["challenge"]
            if not isinstance(challenge, str) or not 0 < len(challenge) <= 512 or len(data) > 1:
                raise DataError("a challenge is {'challenge': '<text of at most 512 chars>'}")
            return data
        event = data.get("event")
        if not isinstance(event, dict):
            raise DataError("not a monday webhook (no 'event' object and no 'challenge')")
        board, item = str(event.get("boardId", "")), str(event.get("pulseId", ""))
        if not _ID.fullmatch(board) or board not in self.mapper.kind_of_board:
            raise DataError(f"event.boardId {board[:24]!r} is not a configured board")
        if not _ID.fullmatch(item):
            raise DataError(f"event.pulseId {item[:24]!r} is not an item id")
        if not isinstance(event.get("type"), str):
            raise DataError("event.type is missing")
        return data

    def ack_response(self, request: WebhookRequest) -> tuple[str, bytes] | None:
        """The answer monday expects to its URL challenge: the same JSON back (None for a
        delivery: the default acknowledgement)."""
        try:
            data = json.loads(request.body)
        except ValueError:
            return None
        if isinstance(data, dict) and isinstance(data.get("challenge"), str):
            return "application/json", json.dumps({"challenge": data["challenge"]}).encode()
        return None

    async def _unmapped(self, kind: BoardKind, column: str) -> bool:
        """True when ``column`` is a column of the board that no canonical field reads."""
        if not column:
            return False
        board = self.mapper.boards[kind].id
        await self.mapper.columns.load(board)
        known = column in self.mapper.columns.types.get(board, {})
        return known and column not in self.mapper.column_ids(kind).values()

    # ------------------------------------------------------------------ parse
    async def parse(self, request: WebhookRequest) -> list[Event]:
        data = self._body(request)
        if "challenge" in data:
            return []
        event = data["event"]
        uuid = str(event.get("triggerUuid") or "")
        if uuid and uuid in self._seen:
            return []
        kind = self.mapper.kind_of_board[str(event["boardId"])]
        rid = str(event["pulseId"])
        at = to_ms(event.get("triggerTime")) or request.received_at_ms
        kind_of_event = str(event["type"])
        if kind_of_event in DELETES:
            events = [self.mapper.delete(kind, rid, at + DELETE_TIE)]
        elif kind_of_event in IGNORED or (
            kind_of_event == "update_column_value"
            and await self._unmapped(kind, str(event.get("columnId") or ""))
        ):
            events = []  # a column crm-pulse does not read (its own write-back, say)
        else:
            await self.mapper.columns.load(self.mapper.boards[kind].id)
            found = await self.client.items([rid])
            item = next((i for i in found if str(i.get("id")) == rid), None)
            if item is None:
                events = []  # gone since: a delete webhook or the reconciliation says so
            elif str((item.get("board") or {}).get("id") or event["boardId"]) != str(
                event["boardId"]
            ):
                raise DataError(f"item {rid} is not on board {event['boardId']}")
            else:
                version = self.mapper.version(item)
                if kind_of_event in RESTORES:
                    version = max(version, at + 2 * DELETE_TIE)
                events = [self.mapper.event(kind, item, version=version)]
        if uuid:
            self._seen[uuid] = None
            while len(self._seen) > 10_000:
                self._seen.popitem(last=False)
        return events
