"""monday end to end: backfill and webhooks through the embedded runtime, values written into
numbers columns, equal to `crm-pulse replay` of the same stored events."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

from crm_pulse.cli import main
from crm_pulse.config import load_config_text
from crm_pulse.connectors.protocols import WebhookRequest
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime

from .harness import CA, HOOK_URL, SIGNING_SECRET, TOKEN, make_harness


async def test_end_to_end_fields_in_monday_equal_replay(tmp_path: Path) -> None:
    async with make_harness() as h:
        account = h.fake.create_item(h.accounts, "ACME", {"Owner": 1})
        h.fake.add_column(h.accounts, "Won revenue MTD")
        h.fake.add_column(h.accounts, "Open pipeline")
        deals = []
        for i in range(24):
            stage = ("Won", "Lost", "Proposal")[i % 3]
            deals.append(
                h.fake.create_item(
                    h.deals,
                    f"Deal {i}",
                    {"Deal stage": stage, "Deal value": 100 * (i + 1), "Owner": 1 + i % 2},
                    at=int(time.time()) - 120,  # so the live change below is not future-dated
                )
            )
        text = f"""
connectors:
  - monday:
      api_token: "${{MONDAY_TOKEN}}"
      base_url: "{h.server.url}/v2"
      ca_cert: "{CA.cert_path}"
      boards: {{deals: {{id: "{h.deals}"}}, accounts: {{id: "{h.accounts}"}}}}
      signing_secret: "${{MONDAY_SIGNING_SECRET}}"
      webhook_url: "{HOOK_URL}"
writeback:
  - {{metric: won_revenue, window: month, target: {{connector: monday, object: account, record: "{account}", field: Won revenue MTD}}}}
  - {{metric: open_pipeline_value, window: current, target: {{connector: monday, object: account, record: "{account}", field: Open pipeline}}}}
runtime: {{state_path: "{tmp_path / "s.sqlite"}", debounce: 0s}}
"""
        config = tmp_path / "crm-pulse.yaml"
        config.write_text(text)
        env = {"MONDAY_TOKEN": TOKEN, "MONDAY_SIGNING_SECRET": SIGNING_SECRET}
        rt = EmbeddedRuntime(load_config_text(text, env=env))
        try:
            await rt.pollers["monday"].backfill()
            # then an open deal is won, announced by a webhook through the durable inbox
            h.fake.update_item(deals[2], {"Deal stage": "Won"})
            headers, body = h.fake.webhook(
                "update_column_value", deals[2], url=HOOK_URL, column_title="Deal stage"
            )
            request = WebhookRequest("POST", HOOK_URL, headers, body, int(time.time() * 1000))
            rt.receivers["monday"].verify(request)
            await rt.inbox.accept("monday", request)
            await rt.inbox.process()
            await rt.consume_all()
            await rt.tick()
            await rt.flush_writes(drain=True)
            rows = rt.db.call(lambda: [r[0] for r in rt.db.conn.execute("SELECT body FROM events")])
        finally:
            await rt.close()
        events = tmp_path / "events.jsonl"
        events.write_text("\n".join(rows) + "\n")
        out, err = io.StringIO(), io.StringIO()
        assert main(["replay", str(events), "--config", str(config)], out, err) == 0, err.getvalue()
        month = time.strftime("%Y-%m", time.gmtime())
        replayed = {
            (r["metric"], r["window"]): r["value"]
            for r in map(json.loads, out.getvalue().splitlines())
            if r["group"] == {}
        }
        won = float(h.fake.value(account, "Won revenue MTD"))
        assert won == float(replayed[("won_revenue", month)])
        # deals 0, 3, ... won at backfill, and deal 2 won through the webhook
        assert won == sum(100 * (i + 1) for i in range(24) if i % 3 == 0) + 300
        assert float(h.fake.value(account, "Open pipeline")) == float(
            replayed[("open_pipeline_value", "current")]
        )
