"""monday webhooks over real HTTP: the challenge, the JWT, bad bodies, deletes and restores."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from crm_pulse.connectors.protocols import WebhookRequest
from crm_pulse.errors import DataError, Unauthorized
from crm_pulse.sandbox.server import FakeServer
from crm_pulse.streams.http.app import build_app

from .harness import HOOK_URL, SIGNING_SECRET, make_harness

OTHER_SECRET = "not-the-signing-secret-0123456789abcdef"


class Inbox:
    def __init__(self) -> None:
        self.stored: list[WebhookRequest] = []

    async def accept(self, connector: str, request: WebhookRequest) -> None:
        self.stored.append(request)


async def _status() -> dict[str, Any]:
    return {}


async def test_create_webhook_answers_the_challenge_through_the_runtime_server() -> None:
    async with make_harness(webhook_token="url-token-0123456789", signing_secret=None) as h:
        inbox = Inbox()
        app = build_app({"monday": h.connector.receiver}, inbox, _status)
        with FakeServer(app) as server:
            # the token is part of the URL registered in monday: the challenge carries it too
            good = f"{server.url}/webhooks/monday?token=url-token-0123456789"
            wid = await h.connector.client.create_webhook(h.deals, good, "change_column_value")
            assert h.fake.webhooks[wid]["url"] == good
            # a URL without the token is not verified: monday keeps no webhook
            with pytest.raises(Exception) as info:
                await h.connector.client.create_webhook(
                    h.deals, f"{server.url}/webhooks/monday", "create_item"
                )
            assert "challenge" in str(info.value)
            # a delivery with the token is stored and answered at once; parsed later
            (deal,) = h.seed_deals(1)
            assert await h.fake.deliver(good, "create_pulse", deal) == 200
            assert await h.fake.deliver(good.replace("0123", "9999"), "create_pulse", deal) == 401
            stored = [r for r in inbox.stored if b'"event"' in r.body]
            assert len(stored) == 1
            (event,) = await h.connector.receiver.parse(stored[0])
            assert (event.object, event.id, event.op) == ("deal", deal, "upsert")
            # every board gets the five events crm-pulse listens to
            lines = await h.connector.provisioner.register_webhooks(good)
            assert len(lines) == 10 and "item_archived on the deals board" in "".join(lines)
            events = {(w["board_id"], w["event"]) for w in h.fake.webhooks.values()}
            assert (h.accounts, "item_deleted") in events


async def test_integration_webhooks_need_a_valid_jwt() -> None:
    async with make_harness() as h:
        inbox = Inbox()
        app = build_app({"monday": h.connector.receiver}, inbox, _status)
        (deal,) = h.seed_deals(1)
        with FakeServer(app) as server:
            url = f"{server.url}/webhooks/monday"
            # the JWT's audience is the public webhook_url, not the address we are reached at
            assert await h.fake.deliver(url, "create_pulse", deal, audience=HOOK_URL) == 200
            assert await h.fake.deliver(url, "create_pulse", deal) == 401
        receiver = h.connector.receiver

        def request(**options: Any) -> WebhookRequest:
            headers, body = h.fake.webhook("update_column_value", deal, url=HOOK_URL, **options)
            return WebhookRequest("POST", HOOK_URL, headers, body, int(time.time() * 1000))

        receiver.verify(request())
        cases = {
            "expired": request(expires_in=-120),
            "audience": request(audience="https://elsewhere.example/hook"),
            "signed with the signing secret": request(secret=OTHER_SECRET),
        }
        for reason, bad in cases.items():
            with pytest.raises(Unauthorized) as info:
                receiver.verify(bad)
            assert reason in info.value.reason
        headers, body = h.fake.webhook("create_pulse", deal, url=HOOK_URL)
        for auth in (None, "Bearer not-a-jwt"):
            without = {k: v for k, v in headers.items() if k != "Authorization"}
            if auth:
                without["Authorization"] = auth
            with pytest.raises(Unauthorized):
                receiver.verify(WebhookRequest("POST", HOOK_URL, without, body, 0))
        # the challenge itself may come without a JWT; it is echoed and adds nothing
        challenge = WebhookRequest("POST", HOOK_URL, {}, b'{"challenge": "abc123"}', 0)
        receiver.verify(challenge)
        assert await receiver.parse(challenge) == []
        assert json.loads(receiver.ack_response(challenge)[1]) == {"challenge": "abc123"}


async def test_bad_bodies_and_foreign_ids_are_refused() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        headers, good = h.fake.webhook("create_pulse", deal, url=HOOK_URL)
        event = json.loads(good)["event"]
        bodies = [
            b"not json",
            b"[1, 2]",
            b'{"challenge": 5}',
            b'{"challenge": "x", "more": 1}',
            json.dumps({"event": {**event, "boardId": 999}}).encode(),
            json.dumps({"event": {**event, "pulseId": "1; drop"}}).encode(),
            json.dumps({"event": {**event, "type": None}}).encode(),
            b'{"something": "else"}',
        ]
        for body in bodies:
            with pytest.raises(DataError):
                h.connector.receiver.verify(WebhookRequest("POST", HOOK_URL, headers, body, 0))


async def test_deletes_archives_restores_and_repeats() -> None:
    async with make_harness() as h:
        a, b = h.seed_deals(2)
        receiver = h.connector.receiver

        async def parse(kind: str, rid: str, **options: Any) -> list[Any]:
            headers, body = h.fake.webhook(kind, rid, url=HOOK_URL, **options)
            request = WebhookRequest("POST", HOOK_URL, headers, body, int(time.time() * 1000))
            receiver.verify(request)
            return await receiver.parse(request)

        h.fake.delete_item(a)
        (deleted,) = await parse("delete_pulse", a)
        assert (deleted.op, deleted.id) == ("delete", a)
        h.fake.set_state(b, "archived")
        (archived,) = await parse("archive_pulse", b, trigger_uuid="same-delivery")
        assert archived.op == "delete"
        assert await parse("archive_pulse", b, trigger_uuid="same-delivery") == []
        h.fake.set_state(b, "active")
        (restored,) = await parse("restore_pulse", b)
        assert restored.op == "upsert" and restored.version > archived.version
        # our own write-back's column changes are dropped without an API call
        calls = len(h.fake.calls)
        assert await parse("update_column_value", b, column_title="Win rate") == []
        assert await parse("update_name", b) == []
        assert len(h.fake.calls) == calls
        # a change announced for an item deleted since: the re-read says it is gone
        (gone,) = await parse("update_column_value", a, column_title="Deal value")
        assert gone.op == "delete"


async def test_without_a_secret_or_token_every_webhook_is_refused() -> None:
    async with make_harness(signing_secret=None, webhook_url=None) as h:
        (deal,) = h.seed_deals(1)
        headers, body = h.fake.webhook("create_pulse", deal, url=HOOK_URL, secret=SIGNING_SECRET)
        with pytest.raises(Unauthorized) as info:
            h.connector.receiver.verify(WebhookRequest("POST", HOOK_URL, headers, body, 0))
        assert "refused" in info.value.reason


async def test_the_endpoint_answers_bad_requests_with_4xx_never_5xx() -> None:
    import aiohttp

    async with make_harness() as h:
        inbox = Inbox()
        app = build_app({"monday": h.connector.receiver}, inbox, _status)
        (deal,) = h.seed_deals(1)
        headers, body = h.fake.webhook("create_pulse", deal, url=HOOK_URL)
        with FakeServer(app) as server:
            url = f"{server.url}/webhooks/monday"
            attempts = [
                ({}, b"\xff\xfe not json"),
                (headers, b"{}"),
                (headers, b'{"event": {"boardId": "1000001", "pulseId": "x", "type": "a"}}'),
                ({}, body),
                ({"Authorization": "Bearer " + "a" * 5000}, body),
                (headers, b"x" * (300 * 1024)),
            ]
            statuses = []
            async with aiohttp.ClientSession() as session:
                for hdrs, data in attempts:
                    async with session.post(url, data=data, headers=hdrs) as response:
                        statuses.append(response.status)
                        assert "Traceback" not in await response.text()
            assert statuses == [400, 400, 400, 401, 401, 413]
            assert inbox.stored == []
