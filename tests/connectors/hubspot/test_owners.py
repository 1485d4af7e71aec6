"""HubSpot owners as canonical users (CRM adoption), over real HTTP against the simulator:
active and archived owners, the cursor mark (old cursors without it), a missing scope, and
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
from crm_pulse.metrics import Engine, build_catalog
from crm_pulse.metrics.events import Event
from crm_pulse.sandbox.hubspot import iso_ms
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime

from ..helpers import drain
from .harness import APP_SECRET, TOKEN, make_harness


async def test_owners_become_users_and_an_archived_owner_is_deactivated() -> None:
    async with make_harness(objects=["deals"]) as h:
        created = 1_767_225_600_000  # 2026-01-01
        ann = h.fake.add_owner("ann@acme.test", "Ann", "A", owner_id="11", created_ms=created)
        bob = h.fake.add_owner("bob@acme.test", "Bob", "B", owner_id="12", created_ms=created)
        h.fake.add_owner("", "Inbound", "queue", owner_id="13", queue=True)
        for i in range(130):  # more than one page (100) of owners
            h.fake.add_owner(f"rep{i}@acme.test", owner_id=str(1000 + i), created_ms=created)
        deal = h.fake.create("deals", {"amount": "5", "hubspot_owner_id": ann})
        h.fake.deactivate_owner(bob)
        events, cursor = await drain(h.connector.source.backfill(None))
        users = {e.id: e for e in events if e.object == "user"}
        assert len(users) == 132  # the queue is nobody's seat
        assert "13" not in users
        # the id is the owner id that records carry in hubspot_owner_id
        (d,) = [e for e in events if e.object == "deal" and e.id == deal]
        assert d.fields["owner_id"] in users
        a = users[ann]
        assert (a.op, a.fields["email"], a.fields["deactivated_at"]) == (
            "upsert",
            "ann@acme.test",
            None,
        )
        assert a.fields["created_at"] == "2026-01-01T00:00:00.000Z"
        assert a.version == created
        b = users[bob]
        updated = h.fake.owners[bob]["updatedAt"]
        assert b.fields["deactivated_at"] == updated  # its last change stands for the date
        assert b.version == int(updated and iso_to_ms(updated)) + 1
        assert cursor["owners"]["checked_ms"] > 0
        assert ("GET", "/crm/v3/owners/") in h.fake.calls


async def test_who_changed_a_record_last_is_an_owner() -> None:
    """hs_updated_by_user_id is a user id: mapped to the owner of that user (canonical users
    are owners); a user not seen yet makes the owners be read again; a private app's change
    (our write-back) names no user."""
    async with make_harness(objects=["deals", "calls"]) as h:
        ann = h.fake.add_owner("ann@acme.test", owner_id="11")
        user = int(h.fake.owners[ann]["userId"])
        at = 1_772_971_200_000  # 2026-03-08T12:00:00Z
        deal = h.fake.create("deals", {"amount": "5"}, modified_ms=at, by_user=user)
        api = h.fake.create("deals", {"amount": "6"})  # through the API: no user
        reads = sum(1 for c in h.fake.calls if c[1].startswith("/crm/v3/owners"))
        pages = [p async for p in h.connector.source.poll(None)]
        events = [e for p in pages for e in p.events if e.object == "deal"]
        got = {e.id: e.fields for e in events}
        assert (got[deal]["modified_by"], got[deal]["modified_at"]) == (
            ann,
            "2026-03-08T12:00:00.000Z",
        )
        assert (got[api]["modified_by"], got[api]["modified_at"]) == (None, None)
        # the records named a user no owner read so far had: the owners were read for it
        assert sum(1 for c in h.fake.calls if c[1].startswith("/crm/v3/owners")) > reads
        bob = h.fake.add_owner("bob@acme.test", owner_id="12")  # a new user, after that read
        h.fake.update("deals", api, {"amount": "7"}, by_user=int(h.fake.owners[bob]["userId"]))
        h.connector.source.records.clock = lambda: time.monotonic() + 3600  # past the gap
        (event,) = await h.connector.source.records.events(
            "deals", await h.connector.client.batch_read("deals", [api], _props(h))
        )
        assert event.fields["modified_by"] == bob


def _props(h: object) -> list[str]:
    return h.connector.source.records.mapper.properties("deals")  # type: ignore[attr-defined]


def iso_to_ms(text: str) -> int:
    from crm_pulse.connectors.hubspot.mapping import to_ms

    ms = to_ms(text)
    assert ms is not None
    return ms


async def test_archiving_that_leaves_updated_at_still_deactivates() -> None:
    """HubSpot does not document whether archiving moves ``updatedAt``: the archived state
    wins over the active one at an equal ``updatedAt``, whatever order they arrive in."""
    async with make_harness(objects=["deals"]) as h:
        jan = 1_767_225_600_000  # 2026-01-01
        rep = h.fake.add_owner("rep@acme.test", owner_id="21", created_ms=jan)
        h.fake.add_owner("other@acme.test", owner_id="22", created_ms=jan)
        before, cursor = await drain(h.connector.source.backfill(None))
        h.fake.deactivate_owner(rep, touch=False)
        after, _ = await drain(h.connector.source.poll(cursor))
        (active,) = [e for e in before if e.object == "user" and e.id == rep]
        (archived,) = [e for e in after if e.object == "user" and e.id == rep]
        assert archived.version > active.version
        assert archived.fields["deactivated_at"] == "2026-01-01T00:00:00.000Z"
        others = [e for e in before if e.object == "user" and e.id != rep]
        call = Event(
            source="hubspot",
            object="activity",
            id="c1",
            op="upsert",
            version=1,
            fields={"owner_id": "22", "type": "call", "occurred_at": "2026-03-10T10:00:00Z"},
        )
        april = 1_775_001_600_000  # 2026-04-01
        for order in ([active, archived], [archived, active]):
            engine = Engine(build_catalog())
            engine.apply_all([*others, *order, call])
            rate = {
                r.window.label: r.value
                for r in engine.report(april)
                if r.metric == "active_user_rate" and r.group == ()
            }
            assert float(rate["2026-03"]) == 1.0  # 22 of {22}: 21 left


async def test_owners_cursor_mark_old_cursors_and_interval() -> None:
    async with make_harness(objects=["deals"], options={"archived_every": 3600.0}) as h:
        h.fake.add_owner("ann@acme.test", owner_id="11")
        h.seed_deals(2)
        # a cursor written before owners were read (no "owners" mark): they are read now
        _, old = await drain(h.connector.source.backfill(None))
        old.pop("owners")
        events, cursor = await drain(h.connector.source.poll(old))
        assert [e.id for e in events if e.object == "user"] == ["11"]
        assert "t" in cursor["deals"] and cursor["owners"]["checked_ms"] > 0
        # within archived_every a poll does not list owners again
        calls = len(h.fake.calls)
        events, _ = await drain(h.connector.source.poll(cursor))
        assert not [e for e in events if e.object == "user"]
        assert not [c for c in list(h.fake.calls)[calls:] if c[1].startswith("/crm/v3/owners")]


async def test_a_missing_owners_scope_warns_and_records_still_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with make_harness(objects=["deals"]) as h:
        h.fake.add_owner("ann@acme.test", owner_id="11")
        h.fake.missing_scopes.add("crm.objects.owners.read")
        ids = h.seed_deals(3)
        with caplog.at_level(logging.WARNING, "crm_pulse.hubspot"):
            events, cursor = await drain(h.connector.source.backfill(None))
        assert {e.id for e in events if e.object == "deal"} == set(ids)
        assert not [e for e in events if e.object == "user"]
        assert "owners not read" in caplog.text and "403" in caplog.text
        assert cursor["owners"]["checked_ms"] > 0  # asked again after archived_every


async def test_active_user_rate_in_hubspot_equals_replay(tmp_path: Path) -> None:
    async with make_harness() as h:
        now = int(time.time() * 1000)
        year_ago = now - 365 * 86_400_000
        for rep in ("11", "12", "13"):
            h.fake.add_owner(f"rep{rep}@acme.test", owner_id=rep, created_ms=year_ago)
        h.fake.add_owner("gone@acme.test", owner_id="15", created_ms=year_ago)
        h.fake.deactivate_owner("15")  # left this month: not a user at its end
        for i, rep in enumerate(("11", "12", "11", "15")):
            h.fake.create(
                "calls", {"hs_timestamp": iso_ms(now - 60_000 - i), "hubspot_owner_id": rep}
            )
        company = h.fake.create("companies", {"name": "ACME", "domain": "acme.test"})
        h.fake.add_property("companies", "crm_pulse_adoption_mtd")
        text = f"""
connectors:
  - hubspot:
      access_token: ${{HUBSPOT_TOKEN}}
      base_url: {h.server.url}
      ca_cert: {h.server.ca.cert_path if h.server.ca else ""}
      objects: [companies, calls]
writeback:
  - {{metric: active_user_rate, window: month, target: {{connector: hubspot, object: companies, record: "{company}", field: crm_pulse_adoption_mtd}}}}
runtime: {{state_path: "{tmp_path / "s.sqlite"}", debounce: 0s}}
"""
        config = tmp_path / "crm-pulse.yaml"
        config.write_text(text)
        rt = EmbeddedRuntime(load_config_text(text, env={"HUBSPOT_TOKEN": TOKEN}))
        try:
            await rt.pollers["hubspot"].backfill()
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
        month = time.strftime("%Y-%m", time.gmtime(now / 1000))
        replayed = {
            (r["metric"], r["window"]): r["value"]
            for r in map(json.loads, out.getvalue().splitlines())
            if r["group"] == {}
        }
        written = float(h.fake.value("companies", company, "crm_pulse_adoption_mtd") or "nan")
        assert written == pytest.approx(float(replayed[("active_user_rate", month)]), abs=1e-6)
        # 11 and 12 called; 13 did not; 15 left during the month
        assert written == pytest.approx(2 / 3, abs=1e-6)
        assert APP_SECRET  # the harness's app secret is not needed without webhooks
