"""Pipedrive users as canonical users (CRM adoption), over real HTTP against the simulator:
active and inactive users, the cursor mark (old cursors without it), a missing scope, and
active_user_rate through the embedded runtime equal to `crm-pulse replay`."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import pytest

from crm_pulse.cli import main
from crm_pulse.config import load_config_text
from crm_pulse.connectors.pipedrive.source import PipedriveSource
from crm_pulse.metrics import Engine, build_catalog
from crm_pulse.metrics.events import Event
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime

from ..helpers import drain
from .harness import TOKEN, make_harness

JAN = 1_767_225_600  # 2026-01-01, epoch seconds


async def test_users_become_users_and_an_inactive_user_is_deactivated() -> None:
    async with make_harness() as h:
        ann = h.fake.add_user("ann@acme.test", "Ann", user_id=7, at=JAN)
        bob = h.fake.add_user("bob@acme.test", "Bob", user_id=8, at=JAN)
        deal = h.fake.create("deals", {"value": 5, "owner_id": ann})
        h.fake.deactivate_user(bob)
        events, cursor = await drain(h.connector.source.backfill(None))
        users = {e.id: e for e in events if e.object == "user"}
        assert set(users) == {"7", "8"}
        # the id is the user id that records carry in owner_id
        (d,) = [e for e in events if e.object == "deal" and e.id == deal]
        assert d.fields["owner_id"] == "7"
        a = users["7"]
        assert (a.op, a.fields["email"], a.fields["deactivated_at"]) == (
            "upsert",
            "ann@acme.test",
            None,
        )
        assert a.fields["created_at"] == "2026-01-01T00:00:00Z"
        assert a.version == JAN * 1000
        b = users["8"]
        modified = h.fake.users[bob]["modified"]  # v1 format: YYYY-MM-DD HH:MM:SS
        assert b.fields["deactivated_at"] == modified.replace(" ", "T") + "Z"
        assert b.version > a.version
        assert cursor["users"]["checked_ms"] > 0
        assert ("GET", "/v1/users") in h.fake.calls


async def test_deactivation_that_leaves_modified_still_wins() -> None:
    async with make_harness() as h:
        h.fake.add_user("rep@acme.test", user_id=21, at=JAN)
        h.fake.add_user("other@acme.test", user_id=22, at=JAN)
        before, cursor = await drain(h.connector.source.backfill(None))
        h.fake.deactivate_user(21, touch=False)
        src = h.connector.source
        every_poll = PipedriveSource(
            src.client, src.mapper, src.keys, h.connector.settings, users_every=0.0
        )
        after, _ = await drain(every_poll.poll(cursor))
        (active,) = [e for e in before if e.object == "user" and e.id == "21"]
        (inactive,) = [e for e in after if e.object == "user" and e.id == "21"]
        assert inactive.version > active.version
        others = [e for e in before if e.object == "user" and e.id != "21"]
        call = Event(
            source="pipedrive",
            object="activity",
            id="a1",
            op="upsert",
            version=1,
            fields={"owner_id": "22", "type": "call", "occurred_at": "2026-03-10T10:00:00Z"},
        )
        for order in ([active, inactive], [inactive, active]):
            engine = Engine(build_catalog())
            engine.apply_all([*others, *order, call])
            rate = {
                r.window.label: r.value
                for r in engine.report(1_775_001_600_000)  # 2026-04-01
                if r.metric == "active_user_rate" and r.group == ()
            }
            assert float(rate["2026-03"]) == 1.0  # 22 of {22}: 21 left


async def test_users_cursor_mark_old_cursors_and_interval() -> None:
    async with make_harness() as h:
        h.fake.add_user("ann@acme.test", user_id=7, at=JAN)
        h.seed_deals(2)
        _, old = await drain(h.connector.source.backfill(None))
        old.pop("users")  # a cursor written before users were read
        events, cursor = await drain(h.connector.source.poll(old))
        assert [e.id for e in events if e.object == "user"] == ["7"]
        assert "t" in cursor["deals"] and cursor["users"]["checked_ms"] > 0
        # within users_every a poll does not list users again
        calls = len(h.fake.calls)
        events, _ = await drain(h.connector.source.poll(cursor))
        assert not [e for e in events if e.object == "user"]
        assert ("GET", "/v1/users") not in h.fake.calls[calls:]
        # once it has passed, it does
        source = h.connector.source
        later = PipedriveSource(
            source.client,
            source.mapper,
            source.keys,
            h.connector.settings,
            clock=lambda: time.time() + 601,
        )
        events, _ = await drain(later.poll(cursor))
        assert [e.id for e in events if e.object == "user"] == ["7"]


async def test_a_missing_users_scope_warns_and_records_still_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with make_harness() as h:
        h.fake.add_user("ann@acme.test", user_id=7, at=JAN)
        h.fake.missing_scopes.add("users:read")
        ids = h.seed_deals(3)
        with caplog.at_level(logging.WARNING, "crm_pulse.pipedrive"):
            events, cursor = await drain(h.connector.source.backfill(None))
        assert {e.id for e in events if e.object == "deal"} == set(ids)
        assert not [e for e in events if e.object == "user"]
        assert "users not read" in caplog.text and "403" in caplog.text
        assert cursor["users"]["checked_ms"] > 0


async def test_active_user_rate_in_pipedrive_equals_replay(tmp_path: Path) -> None:
    async with make_harness() as h:
        now = time.time()
        for uid in (21, 22, 23):
            h.fake.add_user(f"rep{uid}@acme.test", user_id=uid, at=int(now) - 365 * 86_400)
        h.fake.add_user("gone@acme.test", user_id=24, at=int(now) - 365 * 86_400)
        h.fake.deactivate_user(24)  # left this month: not a user at its end
        today = time.strftime("%Y-%m-%d", time.gmtime(now - 120))
        at = time.strftime("%H:%M", time.gmtime(now - 120))
        for i, uid in enumerate((21, 22, 21, 24)):
            h.fake.create(
                "activities",
                {
                    "subject": f"call {i}",
                    "type": "call",
                    "owner_id": uid,
                    "due_date": today,
                    "due_time": at,
                },
            )
        org = h.fake.create("organizations", {"name": "ACME"})
        h.fake.add_field("organizations", "Adoption MTD")
        text = f"""
connectors:
  - pipedrive: {{api_token: "${{PD_TOKEN}}", base_url: "{h.server.url}", objects: [organizations, activities]}}
writeback:
  - {{metric: active_user_rate, window: month, target: {{connector: pipedrive, object: organization, record: "{org}", field: Adoption MTD}}}}
runtime: {{state_path: "{tmp_path / "s.sqlite"}", debounce: 0s}}
"""
        config = tmp_path / "crm-pulse.yaml"
        config.write_text(text)
        rt = EmbeddedRuntime(load_config_text(text, env={"PD_TOKEN": TOKEN}))
        try:
            await rt.pollers["pipedrive"].backfill()
            await rt.consume_all()
            await rt.tick()
            await rt.flush_writes(drain=True)
            rows = rt.db.call(lambda: [r[0] for r in rt.db.conn.execute("SELECT body FROM events")])
        finally:
            await rt.close()
        log = tmp_path / "events.jsonl"
        log.write_text("\n".join(rows) + "\n")
        out, err = io.StringIO(), io.StringIO()
        code = main(["replay", str(log), "--config", str(config)], out, err)
        assert code == 0, err.getvalue()
        month = time.strftime("%Y-%m", time.gmtime(now))
        replayed = {
            (r["metric"], r["window"]): r["value"]
            for r in map(json.loads, out.getvalue().splitlines())
            if r["group"] == {}
        }
        written = float(h.fake.custom_value("organizations", org, "Adoption MTD"))
        assert written == pytest.approx(float(replayed[("active_user_rate", month)]), abs=1e-6)
        # 21 and 22 had activities; 23 had none; 24 left during the month
        assert written == pytest.approx(2 / 3, abs=1e-6)
