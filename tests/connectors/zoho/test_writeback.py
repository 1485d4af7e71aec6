"""Zoho write-back and provisioning over real HTTPS, and the end-to-end run (fields == replay)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

import pytest

from crm_pulse.cli import main
from crm_pulse.config import load_config_text
from crm_pulse.connectors.protocols import FieldSpec, FieldWrite
from crm_pulse.sandbox.server import FakeServer, TestCA
from crm_pulse.sandbox.zoho import FakeZoho
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.http import serve_runtime
from tests.ports import free_port as _free_port

from ..helpers import write_through_outbox
from .harness import CHANNEL_TOKEN, CLIENT_ID, CLIENT_SECRET, FIELD, REFRESH, make_harness


async def test_updates_go_100_records_a_call_with_per_record_results() -> None:
    async with make_harness() as h:
        ids = h.seed_deals(150)
        h.fake.delete("Deals", ids[7])  # gone before the write: refused for that record only
        writes = [FieldWrite("zoho", "deal", i, FIELD, float(n)) for n, i in enumerate(ids)]
        writes.append(FieldWrite("zoho", "deal", ids[3], FIELD, 0.25))  # same record: coalesced
        before = h.fake.write_calls()
        results = await h.connector.sink.write(writes[:100]) + await h.connector.sink.write(
            writes[100:]
        )
        assert h.fake.write_calls() - before == 2
        assert [r.write for r in results] == writes
        failed = [r for r in results if not r.ok]
        assert [r.write.record_id for r in failed] == [ids[7]]
        assert not failed[0].retriable and "INVALID_DATA" in failed[0].reason
        assert h.fake.value("Deals", ids[3], FIELD) == 0.25
        assert h.fake.value("Deals", ids[120], FIELD) == 120.0
        # every record of a batch refused (400): still one result per write, each with its reason
        for rid in ids[140:143]:
            h.fake.delete("Deals", rid)
        gone = [FieldWrite("zoho", "deal", i, FIELD, 1.0) for i in ids[140:143]]
        refused = await h.connector.sink.write(gone)
        assert [(r.ok, r.retriable) for r in refused] == [(False, False)] * 3
        assert all("INVALID_DATA" in r.reason and "invalid" in r.reason for r in refused)


async def test_writeback_under_429s_unknown_fields_and_bad_ids(tmp_path: Path) -> None:
    async with make_harness() as h:
        ids = h.seed_deals(30)
        writes = [FieldWrite("zoho", "deal", i, FIELD, float(n)) for n, i in enumerate(ids)]
        writes.append(FieldWrite("zoho", "deal", ids[0], "No such field", 1.0))
        writes.append(FieldWrite("zoho", "deal", "../settings", FIELD, 1.0))
        h.fake.rate_limit(3, retry_after=4)
        stats, dead_letters = await write_through_outbox(
            tmp_path / "s.sqlite", "zoho", h.connector.sink, writes, step=2, rounds=40
        )
        assert stats.rate_limited >= 1
        assert all(h.fake.value("Deals", i, FIELD) == n for n, i in enumerate(ids))
        reasons = sorted(str(d["reason"]) for d in dead_letters)
        assert len(reasons) == 2
        assert any("No such field" in r and "crm-pulse provision" in r for r in reasons)
        assert any("not a Zoho record id" in r for r in reasons)


async def test_provision_creates_fields_or_says_what_to_create() -> None:
    async with make_harness() as h:
        fields = [
            FieldSpec("deal", FIELD, "Win rate", unit="rate"),
            FieldSpec("account", "Won revenue MTD", "Won", unit="money"),
        ]
        provisioner = h.connector.provisioner
        missing = await provisioner.missing(fields)
        assert [f.name for f in missing] == ["Won revenue MTD"]
        (line,) = await provisioner.create(missing)
        assert (
            line == "created Accounts field 'Won revenue MTD' (currency, API name Won_revenue_MTD)"
        )
        assert await provisioner.missing(fields) == []
        # the sink finds the new field by label and writes its API name
        account = h.fake.create("Accounts", {"Account_Name": "ACME"})
        (ok,) = await h.connector.sink.write(
            [FieldWrite("zoho", "account", account, "Won revenue MTD", 12.5)]
        )
        assert ok.ok and h.fake.records["Accounts"][account]["Won_revenue_MTD"] == 12.5
    # an edition that allows no more custom fields: provision says what to create by hand
    fake = FakeZoho(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH,
        custom_field_limit=0,
    )
    async with make_harness(fake=fake) as h:
        missing = await h.connector.provisioner.missing(fields)
        (line,) = await h.connector.provisioner.create(missing)
        assert "could not create Accounts field 'Won revenue MTD'" in line
        assert "LIMIT_EXCEEDED" in line and "create it by hand" in line and "Currency" in line


async def test_end_to_end_fields_in_zoho_equal_replay(tmp_path: Path) -> None:
    fake = FakeZoho(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=REFRESH)
    account = fake.create("Accounts", {"Account_Name": "ACME"})
    fake.add_field("Accounts", "Won revenue MTD", "currency")
    now = time.time()
    for i in range(30):
        won = i % 3 != 0
        fake.create(
            "Deals",
            {
                "Amount": 100 * (i + 1),
                "Stage": "Closed Won" if won else "Closed Lost",
                "Closing_Date": time.strftime("%Y-%m-%d", time.gmtime(now)),
                "Account_Name": {"name": "ACME", "id": account},
            },
        )
    port = _free_port()
    ca = TestCA()
    with FakeServer(fake.app(), ca=ca) as server:
        text = f"""
connectors:
  - zoho:
      client_id: ${{ZID}}
      client_secret: ${{ZSECRET}}
      refresh_token: ${{ZRT}}
      api_url: {server.url}
      accounts_url: {server.url}
      ca_cert: {ca.cert_path}
      notify_url: http://127.0.0.1:{port}/webhooks/zoho
      channel_token: ${{ZTOKEN}}
      poll_interval: 1h
      objects: [Accounts, Deals]
writeback:
  - {{metric: won_revenue, window: month, target: {{connector: zoho, object: account, record: "{account}", field: Won revenue MTD}}}}
runtime: {{state_path: "{tmp_path / "s.sqlite"}", listen: "127.0.0.1:{port}", debounce: 0s}}
"""
        env = {"ZID": CLIENT_ID, "ZSECRET": CLIENT_SECRET, "ZRT": REFRESH, "ZTOKEN": CHANNEL_TOKEN}
        deployment = load_config_text(text, env=env)
        runtime = EmbeddedRuntime(deployment)
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop, serve=serve_runtime))

        async def written() -> float | None:
            return fake.records["Accounts"][account].get("Won_revenue_MTD")

        try:
            first = sum(100 * (i + 1) for i in range(30) if i % 3 != 0)
            for _ in range(500):
                if await written() == first and fake.channels:
                    break
                await asyncio.sleep(0.02)
            assert await written() == first and fake.channels
            # a deal won now reaches crm-pulse through a notification (polls are an hour apart)
            deal = fake.create(
                "Deals",
                {
                    "Amount": 5000,
                    "Stage": "Closed Won",
                    "Closing_Date": time.strftime("%Y-%m-%d", time.gmtime(now)),
                    "Account_Name": {"name": "ACME", "id": account},
                },
            )
            assert await fake.deliver("Deals", "insert", [deal]) == 200
            for _ in range(500):
                if await written() == first + 5000:
                    break
                await asyncio.sleep(0.02)
            assert await written() == first + 5000
            # Zoho notifies our own updates too: they are re-read, change no metric, and
            # trigger no further write
            for _ in range(500):
                if len([d for d in fake.delivered if account in d[2]]) >= 2:
                    break
                await asyncio.sleep(0.02)
            assert len([d for d in fake.delivered if account in d[2]]) >= 2
            writes = len(fake.updates)
            await asyncio.sleep(1.0)
            assert len(fake.updates) == writes
            rows = runtime.db.call(
                lambda: [r[0] for r in runtime.db.conn.execute("SELECT body FROM events")]
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    # what crm-pulse wrote equals `crm-pulse replay` of the events it recorded
    events = tmp_path / "events.jsonl"
    events.write_text("".join(r + "\n" for r in rows))
    out, err = io.StringIO(), io.StringIO()
    assert main(["replay", str(events), "--format", "jsonl"], out, err) == 0, err.getvalue()
    month = time.strftime("%Y-%m", time.gmtime())
    report = [json.loads(line) for line in out.getvalue().splitlines()]
    (want,) = [
        r["value"]
        for r in report
        if r["metric"] == "won_revenue" and r["window"] == month and r["group"] == {}
    ]
    assert fake.records["Accounts"][account]["Won_revenue_MTD"] == pytest.approx(want)
