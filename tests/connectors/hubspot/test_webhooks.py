"""HubSpot webhooks: signatures (replay, future, proxy), formats, merges, bursts over HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from crm_pulse.connectors.protocols import WebhookRequest
from crm_pulse.errors import Unauthorized
from crm_pulse.streams.http import HttpServer, build_app

from .harness import APP_SECRET, HubSpotHarness, make_harness
from .signing import headers_v3, hubspot_uri, sign_v3


def signed(
    h: HubSpotHarness, events: list[dict[str, Any]], *, url: str | None = None, age_ms: int = 0
) -> WebhookRequest:
    """A webhook request as HubSpot sends it, signed by the tests' own signer."""
    url = url or f"{h.server.url}/webhooks/hubspot"
    ts = int(time.time() * 1000) - age_ms
    _, body = h.fake.webhook(url, events, timestamp_ms=ts)
    return WebhookRequest(
        "POST", url, headers_v3(APP_SECRET, "POST", url, body, ts), body, int(time.time() * 1000)
    )


async def test_a_repeated_request_verifies_the_inbox_answers_it_as_a_duplicate() -> None:
    # replays are recognised durably by the inbox (tests/server/test_edge_hardening.py)
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        request = signed(h, [h.fake.change_event("deals", deal)])
        h.connector.receiver.verify(request)
        h.connector.receiver.verify(request)


async def test_timestamps_far_in_the_future_are_refused() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        request = signed(h, [h.fake.change_event("deals", deal)], age_ms=-6 * 60 * 1000)
        with pytest.raises(Unauthorized, match="future"):
            h.connector.receiver.verify(request)


async def test_a_tls_proxy_in_front_still_verifies() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        public = "https://hooks.example.com/webhooks/hubspot"
        headers, body = h.fake.webhook(public, [h.fake.change_event("deals", deal)])
        # the proxy forwards over plain HTTP to the runtime, saying where the request came to
        seen = "http://10.0.0.5:8080/webhooks/hubspot"
        forwarded = {
            **headers,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "hooks.example.com",
        }
        h.connector.receiver.verify(WebhookRequest("POST", seen, forwarded, body, 0))
        with pytest.raises(Unauthorized, match="does not match"):  # not without the headers
            h.connector.receiver.verify(WebhookRequest("POST", seen, headers, body, 0))


async def test_webhooks_before_any_poll_map_deal_status_from_the_pipelines() -> None:
    async with make_harness() as h:
        won = h.fake.create(
            "deals",
            {
                "amount": "10",
                "dealstage": "closedwon",
                "pipeline": "default",
                "closedate": "2026-11-01T00:00:00Z",
            },
        )
        request = signed(h, [h.fake.change_event("deals", won, kind="creation")])
        h.connector.receiver.verify(request)
        (event,) = await h.connector.receiver.parse(request)
        assert event.fields["status"] == "won"
        assert event.fields["stage_entered_at"] is not None
        assert event.fields["closed_at"] == "2026-11-01T00:00:00.000Z"


async def test_generic_object_events_and_engagements() -> None:
    async with make_harness(objects=["deals", "calls"]) as h:
        (deal,) = h.seed_deals(1)
        call = h.fake.create(
            "calls", {"hs_timestamp": "2026-11-20T10:00:00Z", "hubspot_owner_id": "7"}
        )
        task = h.fake.create("tasks", {"hs_timestamp": "2026-11-20T10:00:00Z"})
        company = h.fake.create("companies", {"domain": "acme.test"})
        h.fake.associate("calls", call, "companies", company)
        request = signed(
            h,
            [
                h.fake.change_event("deals", deal, generic=True),
                h.fake.change_event("calls", call, kind="creation"),
                h.fake.change_event("tasks", task, kind="creation"),  # tasks not configured
            ],
        )
        assert '"objectTypeId": "0-3"' in request.body.decode()
        events = await h.connector.receiver.parse(request)
        assert sorted((e.object, e.id) for e in events) == sorted(
            [("deal", deal), ("activity", call)]
        )
        (activity,) = [e for e in events if e.object == "activity"]
        assert activity.fields == {
            "type": "call",
            "owner_id": "7",
            "occurred_at": "2026-11-20T10:00:00.000Z",
            "account_id": company,  # engagements name their company through associations
            "modified_by": None,  # created through the API: no user changed it
            "modified_at": None,
        }


async def test_a_merge_deletes_the_merged_record_and_reads_the_survivor() -> None:
    async with make_harness() as h:
        keep, gone = h.seed_deals(2)
        event = h.fake.merge("deals", keep, gone)
        events = await h.connector.receiver.parse(signed(h, [event]))
        assert sorted((e.id, e.op) for e in events) == sorted([(keep, "upsert"), (gone, "delete")])


async def test_an_association_change_reads_the_deal_again() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        company = h.fake.create("companies", {"name": "ACME", "domain": "acme.test"})
        h.fake.update("deals", deal, {"hs_primary_associated_company": company})
        note = {
            **h.fake.change_event("deals", deal, kind="associationChange"),
            "fromObjectId": int(deal),
            "toObjectId": int(company),
            "associationType": "DEAL_TO_COMPANY",
            "associationRemoved": False,
            "isPrimaryAssociation": True,
        }
        del note["objectId"]
        events = await h.connector.receiver.parse(signed(h, [note]))
        by = {(e.object, e.id): e for e in events}
        assert by[("deal", deal)].fields["account_id"] == company
        assert ("account", company) in by


async def test_parse_is_idempotent_and_a_bad_record_spoils_nothing_else() -> None:
    async with make_harness() as h:
        good, bad = h.seed_deals(2)
        h.fake.update("deals", bad, {"closedate": "not a date", "dealstage": "closedwon"})
        request = signed(h, [h.fake.change_event("deals", good), h.fake.change_event("deals", bad)])
        first = await h.connector.receiver.parse(request)
        again = await h.connector.receiver.parse(request)  # after a crash, from the inbox
        assert [e.id for e in first] == [good] and first == again
        assert any(bad in reason for reason in h.connector.records.skipped)


class _MemoryInbox:
    def __init__(self) -> None:
        self.requests: list[tuple[str, WebhookRequest]] = []

    async def accept(self, connector: str, request: WebhookRequest) -> None:
        self.requests.append((connector, request))


async def _status() -> dict[str, Any]:
    return {}


async def test_a_burst_over_http_is_acknowledged_before_any_fetch() -> None:
    async with make_harness() as h:
        ids = h.seed_deals(250)
        receiver = h.connector.receiver
        inbox = _MemoryInbox()
        server = await HttpServer(build_app({"hubspot": receiver}, inbox, _status)).start(
            "127.0.0.1", 0
        )
        try:
            url = f"http://127.0.0.1:{server.port}{receiver.path}"
            events = [h.fake.change_event("deals", i, propertyName="amount") for i in ids]
            events += events[:40]  # HubSpot may repeat notifications
            reads_before = sum(1 for _, p in h.fake.calls if p.endswith("/batch/read"))
            statuses = await asyncio.to_thread(h.fake.send_webhooks, url, events)
            assert statuses == [200, 200, 200]  # 290 events in requests of at most 100
            assert len(inbox.requests) == 3
            # acknowledged without a single call to HubSpot: the fetch happens in parse
            assert sum(1 for _, p in h.fake.calls if p.endswith("/batch/read")) == reads_before
            forged = h.fake.app_secret
            h.fake.app_secret = "not-the-secret"
            assert await asyncio.to_thread(h.fake.send_webhooks, url, events[:1]) == [401]
            h.fake.app_secret = forged
            parsed = []
            for _, request in inbox.requests:
                parsed.extend(await receiver.parse(request))
            assert {e.id for e in parsed} == set(ids)
        finally:
            await server.stop()


async def test_out_of_order_notifications_never_bring_back_an_older_state() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        old_note = h.fake.change_event("deals", deal, propertyName="amount")
        h.touch(deal)
        new_note = h.fake.change_event("deals", deal, propertyName="amount")
        receiver = h.connector.receiver
        (newer,) = await receiver.parse(signed(h, [new_note]))
        (older,) = await receiver.parse(signed(h, [old_note]))  # delivered late
        assert older == newer  # the record as it is now, not as it was
        # a deletion overtaken by a late change notification: nothing is resurrected
        h.fake.archive("deals", deal)
        (gone,) = await receiver.parse(
            signed(h, [h.fake.change_event("deals", deal, kind="deletion")])
        )
        assert gone.op == "delete" and gone.version > newer.version
        assert await receiver.parse(signed(h, [new_note])) == []


async def test_a_restored_record_outranks_its_deletion() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        h.fake.archive("deals", deal)
        (gone,) = await h.connector.receiver.parse(
            signed(h, [h.fake.change_event("deals", deal, kind="deletion")])
        )
        back_note = h.fake.restore("deals", deal)
        (back,) = await h.connector.receiver.parse(signed(h, [back_note]))
        assert back.op == "upsert" and back.version > gone.version
        assert back.version >= back_note["occurredAt"]


async def test_lower_case_escapes_verify_whether_hubspot_decoded_them_or_not() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        url = f"{h.server.url}/webhooks/hubspot?next=a%3ab%2Fc"
        body = h.fake.webhook(url, [h.fake.change_event("deals", deal)])[1]
        ts = str(int(time.time() * 1000))
        for lower_case in (True, False):  # HubSpot decoded %3a, or not
            sig = sign_v3(APP_SECRET, "POST", url, body, int(ts), lower_case=lower_case)
            headers = {"X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": ts}
            h.connector.receiver.verify(WebhookRequest("POST", url, headers, body, 0))


def test_the_tests_signer_follows_the_published_rule() -> None:
    # decoded: the twelve escapes of the rule, either case; kept: every other escape
    assert (
        hubspot_uri("https://x/a%3Ab%2fc%3F%40%21%24%27%28%29%2A%2C%3b")
        == "https://x/a:b/c?@!$'()*,;"
    )
    assert hubspot_uri("https://x/a%20b%25c%2B") == "https://x/a%20b%25c%2B"


async def test_the_receiver_accepts_the_independent_signature_and_nothing_else() -> None:
    async with make_harness() as h:
        (deal,) = h.seed_deals(1)
        url = f"{h.server.url}/webhooks/hubspot?portal=a%40b&x=%2A%20y"
        _, body = h.fake.webhook(url, [h.fake.change_event("deals", deal)])
        ts = int(time.time() * 1000)
        good = headers_v3(APP_SECRET, "POST", url, body, ts)
        h.connector.receiver.verify(WebhookRequest("POST", url, good, body, ts))
        # a signature over the URL with %20 decoded too (not in the rule) is refused
        wrong_url = url.replace("%20", " ")
        wrong = headers_v3(APP_SECRET, "POST", wrong_url, body, ts + 1)
        with pytest.raises(Unauthorized):
            h.connector.receiver.verify(WebhookRequest("POST", url, wrong, body, ts))
        # and the simulator signs as the rule says (it sends what HubSpot sends)
        headers, _ = h.fake.webhook(url, [], timestamp_ms=ts)
        assert headers["X-HubSpot-Signature-v3"] == sign_v3(
            h.fake.app_secret, "POST", url, h.fake.webhook(url, [], timestamp_ms=ts)[1], ts
        )
