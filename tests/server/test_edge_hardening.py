"""Issue 13: no input stops the runtime, leaks a secret or reaches past its endpoint.

One runtime serves the signed ingress, Pipedrive (HTTP Basic), HubSpot (v3 signatures) and
Salesforce Outbound Messages (``?token=``) over real loopback HTTP, each connector against its
simulator; the attacks of the issue are sent to it as a sender would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crm_pulse.config import load_config_text
from crm_pulse.connectors.events import sign
from crm_pulse.connectors.protocols import Connector
from crm_pulse.metrics import Engine, Event
from crm_pulse.streams.embedded import quarantine
from crm_pulse.streams.embedded.database import Database, StateError
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime, build_connectors
from crm_pulse.streams.http import serve_runtime
from tests.connectors.hubspot.harness import APP_SECRET
from tests.connectors.hubspot.harness import TOKEN as HS_TOKEN
from tests.connectors.hubspot.harness import make_harness as hubspot_harness
from tests.connectors.pipedrive.harness import HOOK_PASSWORD
from tests.connectors.pipedrive.harness import TOKEN as PD_TOKEN
from tests.connectors.pipedrive.harness import make_harness as pipedrive_harness
from tests.connectors.salesforce.harness import SECRET as SF_SECRET
from tests.connectors.salesforce.harness import make_harness as salesforce_harness
from tests.server.test_ingress_http import deal, free_port

INGRESS = "ingress-secret-0123456789abcdef"
OPS = "ops-token-0123456789abcdef"
SECRETS = [INGRESS, OPS, HOOK_PASSWORD, PD_TOKEN, APP_SECRET, HS_TOKEN, SF_SECRET]

DEPLOY = """
timezone: America/New_York
connectors:
  - events: {{secret: "${{INGRESS_SECRET}}"}}
  - file: {{name: out, path: "{out}"}}
writeback:
  - {{metric: won_revenue, window: month, group: {{}}, target: {{connector: out, object: Company, record: "c1", field: won_mtd}}}}
runtime:
  state_path: "{state}"
  listen: "127.0.0.1:{port}"
  debounce: 0s
  ops_token: "${{OPS_TOKEN}}"
"""


def deployment(tmp_path: Path, port: int = 8080) -> Any:
    text = DEPLOY.format(out=tmp_path / "out.jsonl", state=tmp_path / "s.sqlite", port=port)
    return load_config_text(
        text, base_dir=tmp_path, env={"INGRESS_SECRET": INGRESS, "OPS_TOKEN": OPS}
    )


@dataclass
class Edge:
    runtime: EmbeddedRuntime
    base: str
    tmp: Path
    pipedrive: Any
    hubspot: Any
    salesforce: Any

    async def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as s,
            s.post(self.base + path, data=body, headers=headers or {}) as r,
        ):
            return r.status, await r.text()

    async def ingest(self, events: list[dict[str, Any]]) -> tuple[int, str]:
        body = json.dumps(events).encode()
        return await self.post("/events", body, sign(INGRESS, body))

    async def quarantined(self) -> int:
        return await self.runtime.db.run(lambda: quarantine.count(self.runtime.db.conn))

    async def settle(self) -> None:
        """Everything stored has been parsed and applied."""
        for _ in range(400):
            status = await self.runtime.status_async()
            if status["inbox_depth"] == 0 and status["backlog"] == 0:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"not settled: {status}")


@contextlib.asynccontextmanager
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    port = free_port()
    dep = deployment(tmp_path, port)
    async with (
        pipedrive_harness() as pd,
        hubspot_harness() as hs,
        salesforce_harness(objects=["Opportunity"]) as sf,
    ):
        connectors: dict[str, Connector] = {
            **build_connectors(dep),
            "pipedrive": pd.connector,
            "hubspot": hs.connector,
            "salesforce": sf.connector,
        }
        runtime = EmbeddedRuntime(dep, connectors=connectors)
        runtime.pollers.clear()  # webhooks only: the simulators' polling is tested elsewhere
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop, serve=serve_runtime))
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(base + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.02)
        try:
            yield Edge(runtime, base, tmp_path, pd, hs, sf)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


def pipedrive_hook(pd: Any, deal_id: str, **data: Any) -> tuple[dict[str, str], bytes]:
    """A genuine webhooks v2 delivery with ``data`` in it. Its ``data`` carries the whole record
    (every field the mapping reads), so the receiver maps the body as sent: with essential
    fields only it would read the record again from the CRM and never see ``data``."""
    headers, body = pd.fake.webhook("change", "deals", deal_id, password=HOOK_PASSWORD)
    doc = json.loads(body)
    record = pd.fake.records["deals"][deal_id]
    whole = {k: v for k, v in json.loads(json.dumps(record)).items() if not k.startswith("_")}
    doc["data"] = {"won_time": None, "lost_time": None, **doc["data"], **whole, **data}
    assert pd.connector.receiver.mapper.complete("deals", doc["data"])
    return headers, json.dumps(doc).encode()


POISON_FIELDS: list[dict[str, Any]] = [
    {"owner_id": "x\ud800"},
    {"closed_at": "9999-12-31T23:59:59-14:00"},
    {"closed_at": "0001-01-01T00:00:00+14:00"},
    {"closed_at": "0001-01-01T00:00:00Z"},
    {"amount": 10**300},
    {"amount": "1e300"},
    {"note": {"deep": json.loads("[" * 20 + '"x"' + "]" * 20)}},
]


# ---------------------------------------------------------------------- finding 1 and 3


async def test_poison_events_are_refused_at_the_edge_and_valid_ones_still_applied(
    tmp_path: Path,
) -> None:
    async with edge(tmp_path) as e:
        for fields in POISON_FIELDS:
            status, text = await e.ingest([deal(1, **{"fields": {**deal(1)["fields"], **fields}})])
            assert status == 400, (fields, text)
            assert "[0]: fields." in text
        huge = b'[{"source":"crm","object":"deal","id":"1","op":"upsert","version":1,'
        huge += b'"fields":{"amount":' + b"9" * 5000 + b"}}]"
        assert (await e.post("/events", huge, sign(INGRESS, huge)))[0] == 400
        deep = b"[" * 100_000 + b"]" * 100_000
        status, text = await e.post("/events", deep, sign(INGRESS, deep))
        assert status == 400 and "nested" in text
        assert (await e.ingest([deal(2, amount="250")]))[0] == 200
        await e.settle()
        rows = {r.metric: r.value for r in e.runtime.report() if not r.group}
        assert e.runtime.health() is None and e.runtime.inbox.accepted == 1
        assert rows["won_revenue"] is not None


async def test_pipedrive_poison_with_valid_credentials_is_quarantined_and_the_runtime_goes_on(
    tmp_path: Path,
) -> None:
    async with edge(tmp_path) as e:
        (good, bad1, bad2, bad3) = e.pipedrive.seed_deals(4)
        for deal_id, data in (
            (bad1, {"owner_id": "x\ud800"}),
            (bad2, {"status": "won", "won_time": "9999-12-31 23:59:59"}),
            (bad3, {"status": "won", "won_time": "0001-01-01 00:00:00"}),
        ):
            headers, body = pipedrive_hook(e.pipedrive, deal_id, **data)
            assert (await e.post("/webhooks/pipedrive", body, headers))[0] == 200
        headers, body = pipedrive_hook(e.pipedrive, good, status="won")
        assert (await e.post("/webhooks/pipedrive", body, headers))[0] == 200
        await e.settle()
        assert await e.quarantined() == 3
        entries = await e.runtime.db.run(lambda: quarantine.entries(e.runtime.db.conn))
        assert {x.stage for x in entries} == {"request"} and all(x.reason for x in entries)
        log_ids = await e.runtime.db.run(
            lambda: [
                json.loads(b)["id"] for (b,) in e.runtime.db.conn.execute("SELECT body FROM events")
            ]
        )
        assert good in log_ids and not {bad1, bad2, bad3} & set(log_ids)
        assert e.runtime.health() is None
        status = await e.runtime.status_async()
        assert status["quarantined"] == 3


async def test_a_salesforce_notification_that_cannot_be_mapped_is_quarantined(
    tmp_path: Path,
) -> None:
    async with edge(tmp_path) as e:
        good, bad = e.salesforce.seed_deals(2)
        e.salesforce.fake.update("Opportunity", bad, {"CloseDate": "9999-12-31"})
        message = e.salesforce.fake.outbound_message("Opportunity", [good, bad])
        path = f"/webhooks/salesforce?token={SF_SECRET}"
        assert (await e.post(path, message, {"Content-Type": "text/xml"}))[0] == 200
        await e.settle()
        (entry,) = await e.runtime.db.run(lambda: quarantine.entries(e.runtime.db.conn))
        assert entry.stage == "record" and bad in entry.position and "9999" in entry.reason
        log_ids = await e.runtime.db.run(
            lambda: [
                json.loads(b)["id"] for (b,) in e.runtime.db.conn.execute("SELECT body FROM events")
            ]
        )
        assert log_ids == [good]


async def test_a_poisoned_log_is_quarantined_on_restart_and_report_equals_replay(
    tmp_path: Path,
) -> None:
    """Events an older version stored (lone surrogate, year 9999...) no longer stop a start."""
    dep = deployment(tmp_path)
    valid = [Event.model_validate(deal(i, amount=str(10 * i))) for i in range(1, 6)]
    poison = [
        json.dumps({**deal(90), "fields": {**deal(90)["fields"], **f}}) for f in POISON_FIELDS
    ]
    db = Database(tmp_path / "s.sqlite")
    with sqlite3.connect(tmp_path / "s.sqlite") as conn:
        rows = [("crm", 1, p) for p in poison[:3]]
        rows += [("crm", 1, json.dumps(v.model_dump(mode="json"))) for v in valid]
        rows += [("crm", 1, p) for p in poison[3:]] + [("crm", 1, "not json")]
        conn.executemany("INSERT INTO events (connector, received_ms, body) VALUES (?,?,?)", rows)
    db.close()
    for _ in range(2):  # and a second start goes on from there
        runtime = EmbeddedRuntime(dep)
        await runtime.consume_all()
        count = runtime.db.call(lambda rt=runtime: quarantine.count(rt.db.conn))
        assert count == len(poison) + 1
        oracle = Engine(runtime.catalog, windows=dep.window_specs())
        oracle.apply_all(dep.config_events(version=runtime.started_ms))
        oracle.apply_all(valid)
        now = int(time.time() * 1000)
        assert runtime.report(now) == oracle.report(now)
        await runtime.close()


async def test_an_event_the_engine_fails_on_is_quarantined_the_others_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = deployment(tmp_path)
    runtime = EmbeddedRuntime(dep)
    events = [Event.model_validate(deal(i, amount="10")) for i in range(1, 6)]
    real = runtime.consumer.engine.apply_counted  # what the consumer calls for each event

    def apply(event: Event) -> bool | None:
        if event.id == "3":
            raise ZeroDivisionError("the engine's bug")
        return real(event)

    await runtime.ingest("crm", events)
    monkeypatch.setattr(runtime.consumer.engine, "apply_counted", apply)
    result = await runtime.consume()
    assert result.events == 5 and result.backlog == 0
    (entry,) = runtime.db.call(lambda: quarantine.entries(runtime.db.conn))
    assert (entry.stage, entry.position) == ("event", "3")
    assert "ZeroDivisionError" in entry.reason
    won = {r.metric: r.value for r in runtime.report() if not r.group}["won_revenue"]
    assert won == 40
    # retried after the fix, it is applied once
    monkeypatch.undo()
    runtime.db.call(runtime.db.transaction(lambda c: quarantine.retry(c, entry.id, 0)))
    await runtime.consume_all()
    assert {r.metric: r.value for r in runtime.report() if not r.group}["won_revenue"] == 50
    await runtime.close()


# ---------------------------------------------------------------------- finding 2 and 4


async def test_receivers_answer_malformed_headers_with_4xx(tmp_path: Path) -> None:
    async with edge(tmp_path) as e:
        (deal_id,) = e.hubspot.seed_deals(1)
        url = e.base + "/webhooks/hubspot"
        headers, body = e.hubspot.fake.webhook(url, [e.hubspot.fake.change_event("deals", deal_id)])
        for ts in ("9" * 400, "-1", "\uff11\uff12\uff13", "12.5", ""):
            status, _ = await e.post(
                "/webhooks/hubspot", body, {**headers, "X-HubSpot-Request-Timestamp": ts}
            )
            assert status == 401, ts
        bad = {**headers, "X-HubSpot-Signature-v3": "x" * 1_000}
        assert (await e.post("/webhooks/hubspot", body, bad))[0] == 401
        huge = {**headers, "X-HubSpot-Signature-v3": "x" * 10_000}  # aiohttp's own limit: 400
        assert (await e.post("/webhooks/hubspot", body, huge))[0] == 400
        for auth in ("Basic", "Basic !!!", "Bearer x", "Basic " + "A" * 5000):
            status, _ = await e.post("/webhooks/pipedrive", b"{}", {"Authorization": auth})
            assert status == 401


async def test_path_injection_ids_are_refused_and_never_reach_the_crm(tmp_path: Path) -> None:
    async with edge(tmp_path) as e:
        (deal_id,) = e.pipedrive.seed_deals(1)
        before = len(e.pipedrive.fake.requests) if hasattr(e.pipedrive.fake, "requests") else None
        for rid in ("../../v1/users", "1/../../users", "1?x=1", "%2e%2e", "-1", "1e3"):
            headers, body = e.pipedrive.fake.webhook(
                "change", "deals", deal_id, password=HOOK_PASSWORD
            )
            doc = json.loads(body)
            doc["meta"]["entity_id"] = rid
            doc["data"] = None
            status, text = await e.post("/webhooks/pipedrive", json.dumps(doc).encode(), headers)
            assert status == 400 and "not a Pipedrive id" in text, rid
        assert before is None or len(e.pipedrive.fake.requests) == before
        # the client quotes every path segment, whatever it is given
        client = e.pipedrive.connector.client
        assert await client.get("deals", "../../v1/users") is None


# ---------------------------------------------------------------------- finding 5


async def test_no_secret_at_rest_in_the_state_file_wal_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with edge(tmp_path) as e:
        pd_id = e.pipedrive.seed_deals(1)[0]
        headers, body = e.pipedrive.fake.webhook("change", "deals", pd_id, password=HOOK_PASSWORD)
        assert (await e.post("/webhooks/pipedrive", body, headers))[0] == 200
        forged, _ = e.pipedrive.fake.webhook("change", "deals", pd_id, password=HOOK_PASSWORD + "x")
        assert (await e.post("/webhooks/pipedrive", body, forged))[0] == 401
        hs_id = e.hubspot.seed_deals(1)[0]
        url = e.base + "/webhooks/hubspot"
        headers, body = e.hubspot.fake.webhook(url, [e.hubspot.fake.change_event("deals", hs_id)])
        assert (await e.post("/webhooks/hubspot", body, headers))[0] == 200
        sf_ids = e.salesforce.seed_deals(2)
        message = e.salesforce.fake.outbound_message("Opportunity", sf_ids)
        soap = {"Content-Type": "text/xml"}
        assert (await e.post(f"/webhooks/salesforce?token={SF_SECRET}", message, soap))[0] == 200
        assert (await e.post("/webhooks/salesforce?token=nope", message, soap))[0] == 401
        assert (await e.ingest([deal(1)]))[0] == 200
        assert (await e.ingest([{"bad": "x\ud800"}]))[0] == 400
        async with aiohttp.ClientSession() as s:
            auth = {"Authorization": f"Bearer {OPS}"}
            for path in ("/status", "/metrics", "/overview", "/"):
                async with s.get(e.base + path, headers=auth) as r:
                    assert r.status == 200
                    assert not [x for x in SECRETS if x in await r.text()]
        await e.settle()
        state = tmp_path / "s.sqlite"
        for name in (state, Path(f"{state}-wal"), Path(f"{state}-shm")):
            assert stat.S_IMODE(os.stat(name).st_mode) == 0o600, name
        files = b"".join(p.read_bytes() for p in tmp_path.glob("s.sqlite*"))
    files += b"".join(p.read_bytes() for p in tmp_path.glob("s.sqlite*"))
    logs = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
    for secret in SECRETS:
        assert secret.encode() not in files, secret
        assert secret not in logs, secret
    basic = base64.b64encode(f"crm-pulse:{HOOK_PASSWORD}".encode())
    assert basic not in files


def test_opening_an_older_state_file_scrubs_its_stored_credentials(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    Database(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM meta WHERE name = 'credentials_scrubbed'")
        conn.execute(
            "INSERT INTO inbox (connector, method, url, headers, body, received_ms) VALUES "
            "(?, 'POST', ?, ?, ?, 1)",
            (
                "salesforce",
                f"http://h/webhooks/salesforce?token={SF_SECRET}&org=1",
                json.dumps({"Authorization": f"Basic {HOOK_PASSWORD}", "Content-Type": "text/xml"}),
                b"<x/>",
            ),
        )
    os.chmod(path, 0o644)
    db = Database(path)
    url, headers = db.call(lambda: db.conn.execute("SELECT url, headers FROM inbox").fetchone())
    db.close()
    assert url == "http://h/webhooks/salesforce?org=1"
    assert json.loads(headers) == {"Content-Type": "text/xml"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = b"".join(p.read_bytes() for p in tmp_path.glob("old.sqlite*"))
    assert SF_SECRET.encode() not in data and HOOK_PASSWORD.encode() not in data


# ---------------------------------------------------------------------- finding 9


async def test_a_replay_after_a_restart_is_a_duplicate_and_stores_nothing(tmp_path: Path) -> None:
    body = json.dumps([deal(1)]).encode()
    headers = sign(INGRESS, body)
    async with edge(tmp_path) as e:
        status, text = await e.post("/events", body, headers)
        assert (status, json.loads(text)) == (200, {"accepted": True})
        # a sender retrying the same signed body within the second: a duplicate, not a 401
        status, text = await e.post("/events", body, headers)
        assert (status, json.loads(text)) == (200, {"accepted": True, "duplicate": True})
        await e.settle()
        first = (await e.runtime.status_async())["log_position"]
    async with edge(tmp_path) as e:  # a restart does not reopen the window
        status, text = await e.post("/events", body, headers)
        assert (status, json.loads(text).get("duplicate")) == (200, True)
        await e.settle()
        assert (await e.runtime.status_async())["log_position"] == first
        assert e.runtime.inbox.accepted == 0


# ---------------------------------------------------------------------- bodies and ops


async def test_chunked_bodies_over_the_limit_get_413(tmp_path: Path) -> None:
    async with edge(tmp_path) as e:

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * (1024 * 1024)

        async with aiohttp.ClientSession() as s:
            for path in ("/webhooks/pipedrive", "/webhooks/hubspot", "/webhooks/salesforce"):
                async with s.post(e.base + path, data=chunks()) as r:
                    assert r.status == 413, path
        assert e.runtime.health() is None


async def test_operations_endpoints_need_the_token_and_can_listen_apart(tmp_path: Path) -> None:
    async with edge(tmp_path) as e, aiohttp.ClientSession() as s:
        for path in ("/", "/status", "/metrics", "/overview"):
            async with s.get(e.base + path) as r:
                assert r.status == 401 and "Basic" in r.headers["WWW-Authenticate"]
            async with s.get(e.base + path, headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            basic = "Basic " + base64.b64encode(f"me:{OPS}".encode()).decode()
            async with s.get(e.base + path, headers={"Authorization": basic}) as r:
                assert r.status == 200
        async with s.get(e.base + "/metrics", headers={"Authorization": f"Bearer {OPS}"}) as r:
            assert "crm_pulse_quarantined 0.0" in await r.text()
        async with s.get(e.base + "/healthz") as r:
            assert r.status == 200
    # apart: webhooks on listen, operations on ops_listen
    hooks, ops = free_port(), free_port()
    text = DEPLOY.format(out=tmp_path / "o.jsonl", state=tmp_path / "t.sqlite", port=hooks)
    text += f'  ops_listen: "127.0.0.1:{ops}"\n'
    dep = load_config_text(
        text, base_dir=tmp_path, env={"INGRESS_SECRET": INGRESS, "OPS_TOKEN": OPS}
    )
    runtime = EmbeddedRuntime(dep)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop, serve=serve_runtime))
    try:
        for _ in range(200):
            if runtime.ops_port:
                break
            await asyncio.sleep(0.02)
        auth = {"Authorization": f"Bearer {OPS}"}
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{hooks}/status", headers=auth) as r:
                assert r.status == 404
            async with s.get(f"http://127.0.0.1:{ops}/status", headers=auth) as r:
                assert r.status == 200
            body = json.dumps([deal(1)]).encode()
            async with s.post(
                f"http://127.0.0.1:{ops}/events", data=body, headers=sign(INGRESS, body)
            ) as r:
                assert r.status in (404, 405)
            async with s.post(
                f"http://127.0.0.1:{hooks}/events", data=body, headers=sign(INGRESS, body)
            ) as r:
                assert r.status == 200
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


# ---------------------------------------------------------------------- state errors


def test_a_state_file_that_is_not_a_database_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StateError, match=r"s\.sqlite: is not a usable SQLite database"):
        Database(path)


@pytest.mark.parametrize(
    ("sql", "where"),
    [
        ("UPDATE meta SET value = 'lots' WHERE name = 'schema_version'", "key 'schema_version'"),
        ("INSERT INTO meta VALUES ('consumed', 'x')", "key 'consumed'"),
        ("INSERT INTO cursors VALUES ('crm', 'poll', '[1, 2]', 0)", "cursors, key ('crm', 'poll')"),
        ("INSERT INTO cursors VALUES ('crm', 'poll', 'nope', 0)", "cursors"),
        (
            "INSERT INTO outbox VALUES ('c','o','r','f','\"ten\"',1,0,0,NULL)",
            "outbox, key 'c/o/r/f'",
        ),
        ("INSERT INTO written VALUES ('c','o','r','f','{}',0)", "written"),
        ("INSERT INTO events (connector, received_ms, body) VALUES ('c', 0, x'00')", "events"),
        ("INSERT INTO state VALUES ('k', x'80', x'80')", "table state"),
        ("DROP TABLE outbox; CREATE TABLE outbox (x)", "column"),
    ],
)
def test_tampered_or_wrongly_typed_state_is_refused_with_file_and_key(
    tmp_path: Path, sql: str, where: str
) -> None:
    from crm_pulse.streams.embedded.commands import report

    dep = deployment(tmp_path)
    Database(tmp_path / "s.sqlite").close()
    with sqlite3.connect(tmp_path / "s.sqlite") as conn:
        conn.executescript(sql)
    with pytest.raises(StateError) as info:
        report(dep, int(time.time() * 1000))
    assert where in str(info.value) and "s.sqlite" in str(info.value)
    with pytest.raises(StateError):
        EmbeddedRuntime(dep)


async def test_malformed_http_is_a_4xx_and_a_one_line_warning_not_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with edge(tmp_path) as e:
        port = int(e.base.rsplit(":", 1)[1])
        raws = [
            b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
            b"POST /events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: 7\r\n\r\nnotgzip",
        ]
        for raw in raws:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(raw)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 5)
            assert b" 400 " in line, (raw, line)
            writer.close()
        await asyncio.sleep(0.1)
        assert e.runtime.health() is None
    noisy = [r for r in caplog.records if r.name.startswith("aiohttp") and r.exc_info]
    assert not noisy and not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_hubspot_record_that_cannot_be_mapped_is_quarantined(tmp_path: Path) -> None:
    async with edge(tmp_path) as e:
        good, bad = e.hubspot.seed_deals(2)
        e.hubspot.fake.update("deals", bad, {"createdate": "9999-12-31T00:00:00Z"})
        url = e.base + "/webhooks/hubspot"
        notes = [e.hubspot.fake.change_event("deals", d) for d in (good, bad)]
        headers, body = e.hubspot.fake.webhook(url, notes)
        assert (await e.post("/webhooks/hubspot", body, headers))[0] == 200
        await e.settle()
        (entry,) = await e.runtime.db.run(lambda: quarantine.entries(e.runtime.db.conn))
        assert entry.stage == "record" and f"deals {bad}" in entry.position
        assert entry.position.startswith("inbox ")
        ids = await e.runtime.db.run(
            lambda: [
                json.loads(b)["id"] for (b,) in e.runtime.db.conn.execute("SELECT body FROM events")
            ]
        )
        assert good in ids and bad not in ids
