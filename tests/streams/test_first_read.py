"""Never wipe, never flicker: no field is written before every source finished its first
complete read, the first write is the complete value, and an undefined metric never empties a
field crm-pulse did not write (``on_null``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.connectors.protocols import Connector, Cursor, FieldWrite, Page
from crm_pulse.metrics import Engine
from crm_pulse.metrics.events import Event
from crm_pulse.sandbox import FakeServer, TestCA
from crm_pulse.sandbox.hubspot import FakeHubSpot, iso_ms
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.writeback import Planner, SQLiteOutbox

from .fakes import ListSource, ScriptedSink

TOKEN = "pat-first-read"
NOW = datetime.now(UTC)


def _won_deal(i: int, owner: str, at_ms: int) -> Event:
    closed = datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Event.model_validate(
        {
            "source": "crm",
            "object": "deal",
            "id": f"d{i}",
            "op": "upsert",
            "version": 1,
            "fields": {
                "owner_id": owner,
                "status": "won",
                "amount": "100",
                "created_at": closed,
                "closed_at": closed,
                "type": "new",
            },
        }
    )


class _SlowList(ListSource):
    """Pages with a pause between them, so the consumer applies each page before the next."""

    async def _pages(self, cursor: Cursor | None) -> AsyncIterator[Page]:
        async for page in super()._pages(cursor):
            yield page
            await asyncio.sleep(0.05)


class _Plugin(Connector):
    kind = "plugin"


DEPLOY = """
timezone: UTC
connectors:
  - file: {{name: crm, path: "{tmp}/unused.jsonl"}}
writeback:
  - {{metric: won_revenue, window: month, target: {{connector: crm, object: Company, record: c1, field: won}}}}
  - {{metric: deals_won, window: month, group: owner_id, target: {{connector: crm, object: User, field: deals}}}}
  - {{metric: win_rate, window: month, target: {{connector: crm, object: Company, record: c1, field: rate}}}}
runtime: {{state_path: "{tmp}/state.sqlite", debounce: 0s, tick: 0.05s, batch_size: 5}}
"""


async def test_a_multi_page_first_read_writes_only_complete_values(tmp_path: Path) -> None:
    """Fields hold values before the first start; the source serves 40 won deals in 8 pages
    that the consumer applies one by one. The sink sees one write per field: the complete
    value, never a partial one, never a null."""
    deployment = load_config_text(DEPLOY.format(tmp=tmp_path), base_dir=tmp_path)
    at = int(NOW.timestamp() * 1000) - 1000
    events = [_won_deal(i, f"u{i % 2}", at) for i in range(40)]
    sink = ScriptedSink()
    before = {("Company", "c1", "won"): 777, ("Company", "c1", "rate"): 0.5}
    sink.values.update(before)
    plugin = _Plugin("crm", {})
    plugin.source = _SlowList(events, page=5)
    plugin.sink = sink
    rt = EmbeddedRuntime(deployment, connectors={"crm": plugin})
    stop = asyncio.Event()
    task = asyncio.create_task(rt.run(stop))
    for _ in range(200):
        await asyncio.sleep(0.05)
        if ("User", "u1", "deals") in sink.values and sink.values[("Company", "c1", "won")] != 777:
            break
    stop.set()
    await task
    writes = [w for call in sink.calls for w in call]
    assert sorted((w.record_id, w.field, w.value) for w in writes) == [
        ("c1", "rate", 1),
        ("c1", "won", 4000),
        ("u0", "deals", 20),
        ("u1", "deals", 20),
    ]


async def test_no_write_before_every_source_finished_even_with_webhook_events(
    tmp_path: Path,
) -> None:
    """Two pulling sources: one finished, one has not; events keep arriving (as webhooks do).
    Nothing is written until the second finishes; then every rule's whole value."""
    text = DEPLOY.format(tmp=tmp_path).replace(
        "connectors:\n", f'connectors:\n  - file: {{name: other, path: "{tmp_path}/o.jsonl"}}\n'
    )
    deployment = load_config_text(text, base_dir=tmp_path)
    at = int(NOW.timestamp() * 1000) - 1000
    sink = ScriptedSink()
    crm = _Plugin("crm", {})
    crm.source = ListSource([_won_deal(i, "u0", at) for i in range(3)])
    crm.sink = sink
    other = _Plugin("other", {})
    other.source = ListSource([_won_deal(i, "u1", at) for i in range(10, 14)], page=2)
    rt = EmbeddedRuntime(deployment, connectors={"crm": crm, "other": other})
    try:
        await rt.pollers["crm"].poll_once()
        await rt.ingest("crm", [_won_deal(99, "u0", at)])  # a webhook's event
        await rt.consume_all()
        await rt.tick()
        await rt.flush_writes(drain=True)
        assert sink.calls == []
        assert rt.pending_writes() == []
        assert not rt.planner.ready
        assert rt.planner.waiting_for == {"other"}
        await rt.pollers["other"].poll_once()
        await rt.consume_all()
        await rt.flush_writes(drain=True)
        got = {(w.record_id, w.field): w.value for call in sink.calls for w in call}
        assert got == {
            ("c1", "won"): 800,
            ("c1", "rate"): 1,
            ("u0", "deals"): 4,
            ("u1", "deals"): 4,
        }
    finally:
        await rt.close()


async def test_a_restart_remembers_the_first_reads(tmp_path: Path) -> None:
    """The first-read markers are durable: after a restart the runtime writes as soon as it has
    caught up with the log, without waiting for a new complete read."""
    deployment = load_config_text(DEPLOY.format(tmp=tmp_path), base_dir=tmp_path)
    at = int(NOW.timestamp() * 1000) - 1000
    crm = _Plugin("crm", {})
    crm.source = ListSource([_won_deal(i, "u0", at) for i in range(3)])
    crm.sink = ScriptedSink()
    rt = EmbeddedRuntime(deployment, connectors={"crm": crm})
    await rt.pollers["crm"].poll_once()
    await rt.close()
    sink = ScriptedSink()
    crm.sink = sink
    rt = EmbeddedRuntime(deployment, connectors={"crm": crm})
    try:
        await rt.consume_all()
        await rt.flush_writes(drain=True)
        assert {(w.field, w.value) for c in sink.calls for w in c if w.record_id == "c1"} == {
            ("won", 300),
            ("rate", 1),
        }
    finally:
        await rt.close()


# ------------------------------------------------------------ on_null
def _planner(on_null: str | None) -> Planner:
    extra = "" if on_null is None else f", on_null: {on_null}"
    text = (
        "connectors: [{file: {name: crm, path: unused.jsonl}}]\n"
        "writeback:\n"
        "  - {metric: win_rate, window: month, target: {connector: crm, object: Company, "
        f"record: c1, field: rate}}{extra}}}\n"
    )
    deployment = load_config_text(text)
    return Planner(deployment.writeback, deployment.catalog())


@pytest.mark.parametrize(("on_null", "expected"), [(None, [None]), ("clear", [None]), ("keep", [])])
def test_on_null_clear_is_the_default_and_keep_keeps(
    on_null: str | None, expected: list[Any]
) -> None:
    planner = _planner(on_null)
    engine = Engine(planner.catalog)
    now = int(NOW.timestamp() * 1000)
    writes = planner.due_by_time(engine, now)  # no data: win rate is undefined
    assert [w.value for w in writes] == expected


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "o.sqlite")
    yield database
    database.close()


def test_the_outbox_never_empties_a_field_it_did_not_write(db: Database) -> None:
    def put(value: float | None) -> int:
        write = FieldWrite("crm", "Company", "c1", "rate", value)
        return db.call(
            lambda: db.transaction(lambda conn: SQLiteOutbox.put(conn, [write], 0.0, 0.0))()
        )

    assert put(None) == 0  # never written by us: the field's value is not ours
    assert put(0.5) == 1
    assert put(None) == 0  # cancels the pending 0.5, still never written
    assert db.call(lambda: SQLiteOutbox.depth(db.conn)) == 0
    # once written, None clears it
    db.call(
        lambda: db.conn.execute(
            "INSERT INTO written VALUES ('crm', 'Company', 'c1', 'rate', '0.5', 0)"
        )
    )
    assert put(None) == 1


# ------------------------------------------------------------ a sandbox CRM over HTTP
@contextlib.contextmanager
def _hubspot() -> Iterator[tuple[FakeHubSpot, FakeServer]]:
    fake = FakeHubSpot(TOKEN)
    fake.search_per_second = None
    with FakeServer(fake.app(), ca=TestCA()) as server:
        yield fake, server


async def test_hubspot_fields_that_hold_values_see_only_complete_values(tmp_path: Path) -> None:
    """450 won deals (three search pages) in a sandbox HubSpot whose company already holds
    values in the target properties. Every value the portal ever receives is recorded: the
    revenue property gets the full total once, and the resolution-time property (no tickets:
    undefined) keeps the value it held."""
    with _hubspot() as (fake, server):
        for name in ("crm_pulse_won", "crm_pulse_hours", "crm_pulse_won_rep"):
            fake.add_property("companies", name)
        home = fake.create(
            "companies", {"name": "Home", "crm_pulse_won": "123", "crm_pulse_hours": "9.5"}
        )
        closed = iso_ms(int(NOW.timestamp() * 1000) - 60_000)
        for _ in range(450):
            fake.create(
                "deals",
                {
                    "amount": "10",
                    "dealstage": "closedwon",
                    "pipeline": "default",
                    "hubspot_owner_id": "11",
                    "closedate": closed,
                },
            )
        received: list[tuple[str, str, str]] = []
        original = fake.update

        def update(object_type: str, rid: str, properties: Any, **kw: Any) -> None:
            for k, v in properties.items():
                received.append((rid, k, "" if v is None else str(v)))
            original(object_type, rid, properties, **kw)

        fake.update = update  # type: ignore[method-assign]
        ca = server.ca.cert_path if server.ca else ""
        text = f"""
connectors:
  - hubspot: {{access_token: "${{T}}", base_url: "{server.url}", ca_cert: "{ca}", objects: [deals, tickets], poll_interval: 30s}}
writeback:
  - {{metric: won_revenue, window: month, target: {{connector: hubspot, object: companies, record: "{home}", field: crm_pulse_won}}}}
  - {{metric: avg_resolution_time_hours, window: month, target: {{connector: hubspot, object: companies, record: "{home}", field: crm_pulse_hours}}}}
runtime: {{state_path: "{tmp_path}/s.sqlite", debounce: 0s, tick: 0.1s, batch_size: 50}}
"""
        deployment = load_config_text(text, env={"T": TOKEN})
        rt = EmbeddedRuntime(deployment)
        stop = asyncio.Event()
        task = asyncio.create_task(rt.run(stop))
        for _ in range(300):
            await asyncio.sleep(0.05)
            if fake.value("companies", home, "crm_pulse_won") != "123":
                break
        await asyncio.sleep(0.3)
        stop.set()
        await task
    assert received == [(home, "crm_pulse_won", "4500")]
    assert fake.value("companies", home, "crm_pulse_hours") == "9.5"
