"""Webhooks v2 delivered by the fake over real HTTP, and coalesced write-back per record."""

from __future__ import annotations

import time

from aiohttp import web

from crm_pulse.connectors.protocols import FieldWrite, WebhookRequest
from crm_pulse.errors import Unauthorized
from crm_pulse.sandbox.server import FakeServer

from .harness import FIELD, make_harness


class Endpoint:
    """What the HTTP server does with a webhook: verify, store the raw request, answer at
    once (parse runs later from the stored copy). ``fail_first`` answers 503 that many times."""

    def __init__(self, receiver: object, fail_first: int = 0) -> None:
        self.receiver = receiver
        self.fail_first = fail_first
        self.stored: list[WebhookRequest] = []

    async def handle(self, request: web.Request) -> web.Response:
        req = WebhookRequest(
            request.method,
            str(request.url),
            dict(request.headers),
            await request.read(),
            int(time.time() * 1000),
        )
        try:
            self.receiver.verify(req)  # type: ignore[attr-defined]
        except Unauthorized as exc:
            return web.Response(status=401, text=exc.reason)
        if self.fail_first:
            self.fail_first -= 1
            return web.Response(status=503)
        self.stored.append(req)
        return web.Response(status=200)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webhooks/pipedrive", self.handle)
        return app


async def test_delivered_webhooks_are_verified_retried_and_parsed_once() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        endpoint = Endpoint(h.connector.receiver, fail_first=1)
        waits: list[float] = []

        async def no_wait(seconds: float) -> None:
            waits.append(seconds)

        with FakeServer(endpoint.app()) as server:
            url = f"{server.url}/webhooks/pipedrive"
            # the first attempt meets a 503: Pipedrive retries the same delivery after 3 s
            assert await h.fake.deliver(url, "change", "deals", deal, sleep=no_wait) == [503, 200]
            assert waits == [3.0]
            # wrong credentials: refused every time, the retry schedule runs out
            waits.clear()
            statuses = await h.fake.deliver(
                url, "change", "deals", deal, password="guessed", sleep=no_wait
            )
            assert statuses == [401, 401, 401, 401] and waits == [3.0, 30.0, 150.0]
            # a retry of an accepted delivery (same meta.id, next attempt) is stored again
            again = await h.fake.deliver(
                url, "change", "deals", deal, event_id="evt-7", sleep=no_wait
            )
            again2 = await h.fake.deliver(
                url, "change", "deals", deal, event_id="evt-7", sleep=no_wait
            )
            assert again == again2 == [200]
        assert len(endpoint.stored) == 3
        parsed = [await h.connector.receiver.parse(r) for r in endpoint.stored]
        assert [[(e.id, e.op) for e in events] for events in parsed] == [
            [(deal, "upsert")],
            [(deal, "upsert")],
            [],  # evt-7 the second time: a duplicate, skipped
        ]


async def test_several_fields_of_one_record_are_one_patch() -> None:
    async with make_harness() as h:
        other = "Quota attainment"
        h.fake.add_field("deals", other)
        a, b, c = h.seed_deals(3)
        writes = [
            FieldWrite("pipedrive", "deal", a, FIELD, 1.0),
            FieldWrite("pipedrive", "deal", b, FIELD, 2.0),
            FieldWrite("pipedrive", "deal", a, other, 3.0),
            FieldWrite("pipedrive", "deal", c, other, 4.0),
            FieldWrite("pipedrive", "deal", a, FIELD, 5.0),  # later value of the same field
        ]
        before = h.write_calls()
        results = await h.connector.sink.write(writes)
        assert [r.write for r in results] == writes and all(r.ok for r in results)
        assert h.write_calls() - before == 3  # one PATCH per distinct record
        assert h.fake.custom_value("deals", a, FIELD) == 5.0
        assert h.fake.custom_value("deals", a, other) == 3.0
        assert h.fake.custom_value("deals", b, FIELD) == 2.0
        assert h.fake.custom_value("deals", c, other) == 4.0


async def test_a_field_provisioned_by_another_process_is_found_without_a_restart() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        now = [0.0]
        h.connector.keys.clock = lambda: now[0]
        (first,) = await h.connector.sink.write([FieldWrite("pipedrive", "deal", deal, FIELD, 1.0)])
        assert first.ok  # the field definitions are now cached
        h.fake.add_field("deals", "Pipeline velocity")  # `crm-pulse provision` elsewhere
        write = FieldWrite("pipedrive", "deal", deal, "Pipeline velocity", 2.0)
        (soon,) = await h.connector.sink.write([write])
        # definitions are read again at most every 30 s; meanwhile the write is retried later
        assert not soon.ok and soon.retriable and "crm-pulse provision" in soon.reason
        now[0] += 31
        (later,) = await h.connector.sink.write([write])
        assert later.ok
        assert h.fake.custom_value("deals", deal, "Pipeline velocity") == 2.0


async def test_a_deal_moved_between_organizations_restates_both_and_a_value_change_neither() -> (
    None
):
    async with make_harness() as h:
        a = h.fake.create("organizations", {"name": "A"})
        b = h.fake.create("organizations", {"name": "B"})
        deal = h.fake.create(
            "deals",
            {"value": 10, "status": "won", "won_time": "2026-04-01 08:00:00", "org_id": int(a)},
        )
        h.fake.update("deals", deal, {"org_id": int(b)})
        headers, body = h.fake.webhook("change", "deals", deal, previous={"org_id": int(a)})
        request = WebhookRequest("POST", "http://x/webhooks/pipedrive", headers, body, 0)
        h.connector.receiver.verify(request)
        events = await h.connector.receiver.parse(request)
        accounts = {e.id: e.fields["customer_since"] for e in events if e.object == "account"}
        assert accounts == {b: "2026-04-01T08:00:00Z", a: None}
        # a change of the amount alone cannot change a customer status: no organization read
        h.fake.update("deals", deal, {"value": 11})
        before = len(h.fake.calls)
        headers, body = h.fake.webhook("change", "deals", deal, previous={"value": 10})
        events = await h.connector.receiver.parse(WebhookRequest("POST", "u", headers, body, 0))
        assert [(e.object, e.fields["amount"]) for e in events] == [("deal", "11")]
        # webhooks v2 carry essential fields only: the deal itself is read, no organization
        assert h.fake.calls[before:] == [("GET", f"/api/v2/deals/{deal}")]
