"""Pipedrive specifics against the fake over real HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.connectors.protocols import FieldSpec, FieldWrite, WebhookRequest
from crm_pulse.errors import Unauthorized
from crm_pulse.metrics import Engine, build_catalog
from crm_pulse.metrics.events import Event
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime

from ..helpers import drain, write_through_outbox
from .harness import FIELD, HOOK_PASSWORD, TOKEN, make_harness


async def test_mapping_status_times_custom_type_by_name_archived_and_deleted() -> None:
    async with make_harness(
        mapping={
            "deal_type": {"property": "Deal type", "values": {"Upsell": "upsell", "New": "new"}}
        }
    ) as h:
        h.fake.add_field("deals", "Deal type", "enum", ["New", "Upsell", "Renewal"])
        type_key = next(k for k, f in h.fake.fields["deals"].items() if f["name"] == "Deal type")
        won = h.fake.create(
            "deals",
            {
                "value": 900,
                "status": "won",
                "won_time": "2026-11-02 10:00:00",
                "owner_id": 3,
                "org_id": 8,
                "stage_change_time": "2026-11-01 09:00:00",
                "custom_fields": {type_key: 2},
            },
        )
        archived = h.fake.create(
            "deals",
            {
                "value": 50,
                "status": "lost",
                "lost_time": "2026-11-03 00:00:00",
                "is_archived": True,
            },
        )
        gone = h.fake.create("deals", {"value": 1})
        h.fake.delete("deals", gone)
        events, _ = await drain(h.connector.source.backfill(None))
        by_id = {e.id: e for e in events}
        f = by_id[won].fields
        assert (f["status"], f["amount"], f["owner_id"], f["account_id"], f["type"]) == (
            "won",
            "900",
            "3",
            "8",
            "upsell",
        )
        assert (
            f["closed_at"] == "2026-11-02T10:00:00Z"
            and f["stage_entered_at"] == "2026-11-01T09:00:00Z"
        )
        assert by_id[archived].fields["status"] == "lost"  # archived deals still count
        assert by_id[gone].op == "delete"


async def test_webhooks_credentials_duplicates_reordering_and_merges() -> None:
    async with make_harness() as h:
        receiver = h.connector.receiver
        (a, b) = h.seed_deals(2)
        headers, body = h.fake.webhook("change", "deals", a, event_id="evt-1")
        request = WebhookRequest("POST", "http://x/webhooks/pipedrive", headers, body, 0)
        receiver.verify(request)
        (event,) = await receiver.parse(request)
        assert event.id == a
        assert await receiver.parse(request) == []  # the same delivery again: skipped
        bad_headers, _ = h.fake.webhook("change", "deals", a, password="nope")
        with pytest.raises(Unauthorized, match="wrong HTTP Basic"):
            receiver.verify(WebhookRequest("POST", "u", bad_headers, body, 0))
        with pytest.raises(Unauthorized, match="no HTTP Basic"):
            receiver.verify(WebhookRequest("POST", "u", {}, body, 0))
        # reordered: an old delivery after a newer one carries an older version -> stale
        old_headers, old_body = h.fake.webhook("change", "deals", a, event_id="evt-old")
        h.touch(a)
        new_headers, new_body = h.fake.webhook("change", "deals", a, event_id="evt-new")
        engine = Engine(build_catalog())
        for hd, bd in ((new_headers, new_body), (old_headers, old_body)):
            engine.apply_all(await receiver.parse(WebhookRequest("POST", "u", hd, bd, 0)))
        newest = h.fake.records["deals"][a]["value"]
        report = {
            (r.metric, r.window.label): r.value
            for r in engine.report(int(time.time() * 1000))
            if r.group == ()
        }
        assert report[("open_pipeline_value", "current")] == newest
        # merge: b is merged into a -> delete of b, change of a
        h.fake.delete("deals", b)
        mh, mb = h.fake.webhook("delete", "deals", b)
        (merged,) = await receiver.parse(WebhookRequest("POST", "u", mh, mb, 0))
        assert (merged.id, merged.op) == (b, "delete")
        # data null: the record is fetched
        nh, nb = h.fake.webhook("change", "deals", a, with_data=False)
        (fetched,) = await receiver.parse(WebhookRequest("POST", "u", nh, nb, 0))
        assert fetched.fields["amount"] == str(newest)
        assert HOOK_PASSWORD not in repr(receiver.__dict__.get("_expected"))


async def test_writeback_under_429s_and_unknown_fields(tmp_path: Path) -> None:
    async with make_harness() as h:
        ids = h.seed_deals(60)
        writes = [FieldWrite("pipedrive", "deal", i, FIELD, float(n)) for n, i in enumerate(ids)]
        writes.append(FieldWrite("pipedrive", "deal", ids[0], "No such field", 1.0))
        h.fake.rate_limit(3, retry_after=4)
        stats, dead_letters = await write_through_outbox(
            tmp_path / "s.sqlite", "pipedrive", h.connector.sink, writes, step=2, rounds=40
        )
        assert stats.rate_limited >= 1
        assert all(float(h.fake.custom_value("deals", i, FIELD)) == n for n, i in enumerate(ids))
        (dead,) = dead_letters
        reason = str(dead["reason"])
        assert "No such field" in reason and "crm-pulse provision" in reason


async def test_own_writes_change_nothing_canonical() -> None:
    async with make_harness() as h:
        ids = h.seed_deals(20)
        events, cursor = await drain(h.connector.source.backfill(None))
        engine = Engine(build_catalog())
        engine.apply_all(events)
        engine.changes(int(time.time() * 1000))
        for i in ids:
            await h.connector.sink.write([FieldWrite("pipedrive", "deal", i, FIELD, 0.5)])
        polled, _ = await drain(h.connector.source.poll(cursor))
        first = {e.id: e.version for e in events}
        bumped = [e for e in polled if e.id in first]
        assert bumped and all(e.version > first[e.id] for e in bumped)
        engine.apply_all(polled)
        assert engine.changes(int(time.time() * 1000)) == []


async def test_provisioning_creates_fields_with_keys() -> None:
    async with make_harness() as h:
        fields = [
            FieldSpec("deal", FIELD, "Win rate", unit="rate"),
            FieldSpec("organization", "Won revenue", "Won", unit="money"),
        ]
        missing = await h.connector.provisioner.missing(fields)
        assert [f.name for f in missing] == ["Won revenue"]
        (line,) = await h.connector.provisioner.create(missing)
        assert "organizations field 'Won revenue' (monetary, key " in line
        assert await h.connector.provisioner.missing(fields) == []


async def test_end_to_end_fields_in_pipedrive_equal_replay(tmp_path: Path) -> None:
    async with make_harness() as h:
        org = h.fake.create("organizations", {"name": "ACME"})
        h.fake.add_field("organizations", "Won revenue MTD")
        for i in range(30):
            won = i % 3 != 0
            closed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 3600 * (i + 1)))
            h.fake.create(
                "deals",
                {
                    "value": 100 * (i + 1),
                    "status": "won" if won else "lost",
                    "won_time" if won else "lost_time": closed,
                    "owner_id": 1,
                },
            )
        text = f"""
connectors:
  - pipedrive: {{api_token: "${{PD_TOKEN}}", base_url: "{h.server.url}", objects: [deals, organizations]}}
writeback:
  - {{metric: won_revenue, window: month, target: {{connector: pipedrive, object: organization, record: "{org}", field: Won revenue MTD}}}}
runtime: {{state_path: "{tmp_path / "s.sqlite"}", debounce: 0s}}
"""
        deployment = load_config_text(text, env={"PD_TOKEN": TOKEN})
        rt = EmbeddedRuntime(deployment)
        await rt.pollers["pipedrive"].backfill()
        await rt.consume_all()
        await rt.tick()
        await rt.flush_writes()
        rows = rt.db.call(lambda: [r[0] for r in rt.db.conn.execute("SELECT body FROM events")])
        engine = Engine(deployment.catalog(), windows=deployment.window_specs())
        engine.apply_all(Event.model_validate_json(r) for r in rows)
        month = time.strftime("%Y-%m", time.gmtime())
        want = {
            (r.metric, r.window.label): r.value
            for r in engine.report(int(time.time() * 1000))
            if r.group == ()
        }
        assert float(h.fake.custom_value("organizations", org, "Won revenue MTD")) == pytest.approx(
            float(want[("won_revenue", month)])
        )
        await rt.close()


async def test_customer_since_is_the_first_won_deal_and_follows_its_deals() -> None:
    async with make_harness() as h:
        org = h.fake.create("organizations", {"name": "ACME"})
        first = h.fake.create(
            "deals",
            {"value": 10, "status": "won", "won_time": "2026-03-02 10:00:00", "org_id": int(org)},
        )
        h.fake.create(
            "deals",
            {"value": 20, "status": "won", "won_time": "2026-05-01 10:00:00", "org_id": int(org)},
        )
        h.fake.create(
            "deals",
            {"value": 30, "status": "lost", "lost_time": "2026-01-01 10:00:00", "org_id": int(org)},
        )
        events, cursor = await drain(h.connector.source.backfill(None))
        (account,) = [e for e in events if e.object == "account" and e.id == org]
        assert account.fields["customer_since"] == "2026-03-02T10:00:00Z"
        # the first won deal is deleted: the organization is re-stated without touching it
        h.fake.delete("deals", first)
        events, _ = await drain(h.connector.source.poll(cursor))
        restated = [e for e in events if e.object == "account" and e.id == org]
        assert restated and restated[-1].version > account.version
        assert restated[-1].fields["customer_since"] == "2026-05-01T10:00:00Z"
        # a deal won through a webhook re-states its organization too
        newer = h.fake.create(
            "deals",
            {"value": 5, "status": "won", "won_time": "2026-02-01 09:00:00", "org_id": int(org)},
        )
        headers, body = h.fake.webhook("change", "deals", newer)
        request = WebhookRequest("POST", "http://x/webhooks/pipedrive", headers, body, 0)
        h.connector.receiver.verify(request)
        parsed = await h.connector.receiver.parse(request)
        (org_event,) = [e for e in parsed if e.object == "account"]
        assert org_event.fields["customer_since"] == "2026-02-01T09:00:00Z"
