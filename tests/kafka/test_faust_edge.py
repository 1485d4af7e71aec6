"""The Faust edge and the workers' dead letters, in this process, against a real broker.

(a) The edge is the embedded runtime's durable front (:class:`Intake`) with a forwarder behind
it: it builds no engine, consumer, planner or writer (their constructors raise here), answers a
signed webhook only once it is stored, forwards it to the events topic, and serves /healthz,
/status and the status page. (b) A write the CRM refuses for good is a dead letter in a
compacted topic, appended before the writer's table moves: it survives the worker (a new one
over the same changelog sees it, as do ``crm-pulse deadletters list`` and the edge's /status),
``retry`` sends the value to the writers again, and a successful write removes the letter.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from crm_pulse.config.loader import load_config_text
from crm_pulse.connectors.events import sign
from crm_pulse.connectors.protocols import FieldWrite, WriteResult
from crm_pulse.streams.faust import FaustPipeline, ensure_topics
from crm_pulse.streams.faust.deadletters import read_dead_letters, run_command
from crm_pulse.streams.faust.edge import EdgeRuntime
from crm_pulse.streams.faust.order import Anchor, Message
from crm_pulse.streams.faust.stores import GroupedStore, by_group
from crm_pulse.streams.http import serve_runtime

from ..streams.fakes import ScriptedSink
from ..streams.test_faust_idempotence import Table

SECRET = "edge-secret-0123456789"


async def _read(broker: str, topic: str, want: int, timeout: float = 30.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(out) < want and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            out.extend(m for msgs in batch.values() for m in msgs)
    finally:
        await consumer.stop()
    return out


def _refuse_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_pulse.metrics.engine import Engine
    from crm_pulse.streams.embedded.consumer import Consumer
    from crm_pulse.streams.writeback import Planner, SQLiteOutbox, Writer

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"the edge built a {type(self).__name__}")

    for cls in (Engine, Consumer, Planner, Writer, SQLiteOutbox):
        monkeypatch.setattr(cls, "__init__", refuse)


async def test_a_the_edge_builds_no_engine_and_forwards_webhooks_once_stored(
    kafka: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_id = f"edge-{uuid.uuid4().hex[:8]}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    deployment = load_config_text(
        'connectors:\n  - events: {secret: "${INGRESS_SECRET}"}\n'
        "  - file: {name: crm, path: out.jsonl}\n"
        "writeback:\n  - {metric: won_revenue, window: month, group: {}, target: "
        "{connector: crm, object: Company, record: c1, field: won_mtd}}\n"
        f'runtime:\n  kind: faust\n  listen: "127.0.0.1:{port}"\n'
        f'  state_path: "{tmp_path / "edge.sqlite"}"\n'
        f'  faust: {{app_id: {app_id}, broker: "kafka://{kafka}", partitions: 2}}\n',
        file=str(tmp_path / "deploy.yaml"),
        env={"INGRESS_SECRET": SECRET},
    )
    _refuse_construction(monkeypatch)
    edge = EdgeRuntime(deployment)
    stop = asyncio.Event()
    running = asyncio.create_task(edge.run(stop, serve=serve_runtime))
    try:
        for _ in range(200):
            if edge.http_port:
                break
            await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{edge.http_port}"
        events = [
            {
                "source": "shop",
                "object": "deal",
                "id": f"d{i}",
                "op": "upsert",
                "version": 1,
                "fields": {"status": "won", "amount": "10", "closed_at": "2026-01-02T00:00:00Z"},
            }
            for i in range(5)
        ]
        body = json.dumps(events).encode()
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{base}/events", content=body, headers=sign(SECRET, body))
            assert answer.status_code == 200, answer.text
            # acknowledged: the request is in the state file already
            assert (
                edge.db.call(lambda: edge.inbox.depth(edge.db.conn))
                + edge.db.call(lambda: edge.intake.read_status(edge.db.conn)["log_position"])
                > 0
            )
            bad = await client.post(f"{base}/events", content=b"{", headers=sign(SECRET, b"{"))
            assert bad.status_code == 400
            got = await _read(kafka, f"{app_id}-events", 5)
            assert sorted(m.key for m in got) == sorted(
                f"shop/deal/d{i}".encode() for i in range(5)
            )
            assert (await client.get(f"{base}/healthz")).text == "ok\n"
            for _ in range(100):  # the position moves just after Kafka's acknowledgement
                status = (await client.get(f"{base}/status")).json()
                if status["forwarded_position"] == 5:
                    break
                await asyncio.sleep(0.1)
            assert status["runtime"] == "faust edge"
            assert status["log_position"] == status["forwarded_position"] == 5
            assert status["backlog"] == 0 and status["dead_letters"] == 0
            assert "events" in status["connectors"] and "crm" in status["connectors"]
            page = await client.get(f"{base}/")
            assert page.status_code == 200
            overview = (await client.get(f"{base}/overview")).json()
            assert overview["metrics"] == [] and overview["status"]["runtime"] == "faust edge"
            explain = await client.get(f"{base}/explain?metric=won_revenue&window=2026-01")
            assert explain.status_code == 400 and "workers" in explain.json()["error"]
            metrics = await client.get(f"{base}/metrics")
            assert "crm_pulse_events_appended_total 5" in metrics.text
    finally:
        stop.set()
        await running


class Refusing(ScriptedSink):
    """Refuses every write of the field ``won_mtd`` for good until ``accept`` is set."""

    def __init__(self) -> None:
        super().__init__(script=self.decide)
        self.accept = False

    def decide(self, _call: int, writes: Sequence[FieldWrite]) -> list[WriteResult]:
        return [
            WriteResult(w, ok=self.accept or w.field != "won_mtd", reason="INVALID_FIELD: no")
            for w in writes
        ]


def _value(field: str, value: float) -> bytes:
    return json.dumps(
        {"connector": "crm", "object": "Company", "record_id": "c1", "field": field, "value": value}
    ).encode()


async def test_b_dead_letters_survive_the_worker_and_go_once_written(
    kafka: str, tmp_path: Path
) -> None:
    app_id = f"dead-{uuid.uuid4().hex[:8]}"
    text = (
        "connectors:\n  - file: {name: crm, path: out.jsonl}\n"
        "runtime:\n  kind: faust\n  retry: {initial: 10ms, max: 20ms, attempts: 2}\n"
        f'  state_path: "{tmp_path / "edge.sqlite"}"\n'
        f'  faust: {{app_id: {app_id}, broker: "kafka://{kafka}", partitions: 1}}\n'
    )
    deployment = load_config_text(text, file=str(tmp_path / "deploy.yaml"))
    sink = Refusing()
    changelog: dict[str, bytes] = {}  # the writer table's changelog, kept across workers

    async def worker() -> FaustPipeline:
        pipeline = FaustPipeline(deployment, sinks={"crm": sink})
        pipeline.writer.store = GroupedStore(Table(changelog, [10**9]), by_group)
        await pipeline.writer.reload(frozenset({0}))
        return pipeline

    first = await worker()
    await ensure_topics(first)
    batch = [
        Message("values", 0, 0, b"k", _value("won_mtd", 120.0)),
        Message("values", 0, 1, b"k", _value("open_deals", 3)),
    ]
    await first.writer.apply([(Anchor("values", 0), batch)])
    await first.writer.flush()
    await first.output.stop()  # the worker is gone
    first.outbox_db.close()
    assert sink.values == {("Company", "c1", "open_deals"): 3}

    servers = [kafka]
    topic = f"{app_id}-write-dead-letters"
    letters = await read_dead_letters(servers, topic)
    assert [(d["field"], d["value"]) for d in letters] == [("won_mtd", "120.0")]
    assert "INVALID_FIELD" in str(letters[0]["reason"])

    # what an operator sees: the CLI, and the edge's /status
    out = io.StringIO()
    assert (
        await asyncio.to_thread(run_command, deployment, "list", [], all_letters=False, out=out)
        == 0
    )
    assert "won_mtd = 120.0" in out.getvalue() and "1 dead letter(s)" in out.getvalue()
    edge = EdgeRuntime(deployment)
    try:
        status = await edge.status_async()
        assert status["dead_letters"] == 1
        assert status["recent_dead_letters"][0]["field"] == "won_mtd"
    finally:
        await edge.close()

    # a new worker over the same table: the CRM accepts now; retry sends the value again
    second = await worker()
    sink.accept = True
    out = io.StringIO()
    ids = [int(str(letters[0]["id"]))]
    assert (
        await asyncio.to_thread(run_command, deployment, "retry", ids, all_letters=False, out=out)
        == 0
    )
    sent = await _read(kafka, f"{app_id}-values", 1)
    assert [json.loads(m.value)["field"] for m in sent] == ["won_mtd"]
    again = [Message("values", 0, 2, sent[0].key, sent[0].value)]
    await second.writer.apply([(Anchor("values", 0), again)])
    await second.writer.flush()
    await second.output.stop()
    second.outbox_db.close()
    assert sink.values[("Company", "c1", "won_mtd")] == 120.0
    assert await read_dead_letters(servers, topic) == []  # written: its letter is gone


async def test_c_drop_removes_a_letter(kafka: str, tmp_path: Path) -> None:
    from crm_pulse.streams.faust.bulk import KafkaOutput
    from crm_pulse.streams.faust.deadletters import DeadLetterLog, Letter

    app_id = f"drop-{uuid.uuid4().hex[:8]}"
    deployment = load_config_text(
        "connectors:\n  - file: {name: crm, path: out.jsonl}\n"
        f'runtime:\n  kind: faust\n  faust: {{app_id: {app_id}, broker: "kafka://{kafka}"}}\n',
        file=str(tmp_path / "deploy.yaml"),
    )
    await ensure_topics(FaustPipeline(deployment))
    output = KafkaOutput([kafka])
    topic = f"{app_id}-write-dead-letters"
    w = FieldWrite("crm", "User", "u1", "win_rate", 0.5)
    await DeadLetterLog(output, topic).put([Letter(w, "refused", 1, 0)], [])
    await output.stop()
    (letter,) = await read_dead_letters([kafka], topic)
    out = io.StringIO()
    code = await asyncio.to_thread(
        run_command, deployment, "drop", [int(str(letter["id"]))], all_letters=False, out=out
    )
    assert code == 0 and "dropped 1" in out.getvalue()
    assert await read_dead_letters([kafka], topic) == []


async def test_d_the_hole_check_reads_the_groups_committed_offsets_from_the_broker(
    kafka: str, tmp_path: Path
) -> None:
    """No private attribute of Faust's consumer: the committed offsets come from the broker."""
    from aiokafka import AIOKafkaProducer, TopicPartition
    from faust.types import TP

    from crm_pulse.streams.faust.timers import Timers

    app_id = f"holes-{uuid.uuid4().hex[:8]}"
    deployment = load_config_text(
        "connectors:\n  - file: {name: crm, path: out.jsonl}\n"
        f'runtime:\n  kind: faust\n  faust: {{app_id: {app_id}, broker: "kafka://{kafka}"}}\n',
        file=str(tmp_path / "deploy.yaml"),
    )
    topic = f"{app_id}-events"
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    try:
        for i in range(10):
            await producer.send_and_wait(topic, str(i).encode(), key=b"k", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.commit({TopicPartition(topic, 0): 7})
    finally:
        await consumer.stop()
    timers = Timers(FaustPipeline(deployment))
    try:
        got = await timers.committed([TP(topic, 0), TP(topic, 1)])
    finally:
        await timers.close()
    assert got == {TP(topic, 0): 7, TP(topic, 1): None}


async def test_e_a_polling_edge_forwards_more_than_its_hand_over_of_parsed_events(
    kafka: str, tmp_path: Path
) -> None:
    """The pollers hand stored events to the log's reader parsed, and wait while the reader has
    a full hand-over (20,000 events). The edge takes them from that hand-over as it forwards; an
    edge that read the log without taking them (as the former one did) left the hand-over full
    and its pollers waiting for ever after 20,000 events."""
    app_id = f"pace-{uuid.uuid4().hex[:8]}"
    source = tmp_path / "events.jsonl"
    count = 25_000
    with source.open("w") as f:
        for i in range(count):
            f.write(
                json.dumps(
                    {
                        "source": "crm",
                        "object": "deal",
                        "id": f"d{i}",
                        "op": "upsert",
                        "version": 1,
                        "fields": {"status": "open", "amount": "1"},
                    }
                )
                + "\n"
            )
    deployment = load_config_text(
        f'connectors:\n  - file: {{name: crm, path: out.jsonl, input: "{source}", '
        "poll_interval: 100ms}\n"
        "runtime:\n  kind: faust\n  batch_size: 5000\n"
        f'  state_path: "{tmp_path / "edge.sqlite"}"\n'
        f'  faust: {{app_id: {app_id}, broker: "kafka://{kafka}", partitions: 2}}\n',
        file=str(tmp_path / "deploy.yaml"),
    )
    edge = EdgeRuntime(deployment)
    stop = asyncio.Event()
    running = asyncio.create_task(edge.run(stop))
    try:
        for _ in range(1200):  # 120 s at most
            status = await edge.status_async()
            if status["forwarded_position"] >= count:
                break
            await asyncio.sleep(0.1)
        assert status["log_position"] == status["forwarded_position"] == count, status
        assert len(edge.intake.recent) < edge.intake.recent.limit
    finally:
        stop.set()
        await running
