"""The Faust runtime against a real Kafka broker: (a) same metrics as replay, (b) a worker
killed with SIGKILL mid-stream loses and doubles nothing, (c) poison messages go to the
dead-letter topic and the stream goes on."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from crm_pulse.config import load_config
from crm_pulse.connectors.file import read_values
from crm_pulse.metrics import Engine
from crm_pulse.metrics.events import Event
from crm_pulse.streams.writeback import Planner

DEPLOY = """
timezone: UTC
connectors:
  - file: {{name: crm, path: "{out}", max_batch: 50}}
writeback:
  - {{metric: won_revenue, window: month, group: {{}}, target: {{connector: crm, object: Company, record: "c1", field: won_mtd}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: crm, object: User, field: win_rate_qtd}}}}
  - {{metric: won_revenue, window: quarter, group: account_id, target: {{connector: crm, object: Account, field: won_qtd}}}}
  - {{metric: open_deals, window: current, group: owner_id, target: {{connector: crm, object: User, field: open_deals}}}}
  - {{metric: median_deal_size, window: quarter, group: owner_id, target: {{connector: crm, object: User, field: median_deal_qtd}}}}
{extra}runtime:
  kind: faust
  debounce: 200ms
  tick: {tick}
  faust: {{app_id: "{app}", broker: "kafka://{broker}", partitions: 4, store: {store}, standby_replicas: {standby}}}
"""


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def history(rng: random.Random, n: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    versions: dict[str, int] = {}
    out = []
    for _ in range(n):
        rid = str(rng.randrange(150))
        versions[rid] = versions.get(rid, 0) + 1
        status = rng.choice(["open", "won", "lost"])
        t = now - timedelta(hours=rng.uniform(1, 48))
        if rng.random() < 0.05:
            out.append(
                {
                    "source": "crm",
                    "object": "deal",
                    "id": rid,
                    "op": "delete",
                    "version": versions[rid],
                }
            )
            continue
        out.append(
            {
                "source": "crm",
                "object": "deal",
                "id": rid,
                "op": "upsert",
                "version": versions[rid],
                "fields": {
                    "owner_id": f"u{rng.randrange(4)}",
                    "account_id": f"a{rng.randrange(10)}",
                    "status": status,
                    "type": "new",
                    "amount": str(rng.randrange(100, 5000)),
                    "created_at": _iso(t - timedelta(days=2)),
                    "closed_at": None if status == "open" else _iso(t),
                },
            }
        )
        if rng.random() < 0.05:
            out.append(out[-1])  # duplicate delivery
        if rng.random() < 0.08:  # the same version with other fields (one-second versions)
            tie = json.loads(json.dumps(out[-1]))
            tie["fields"]["amount"] = str(rng.randrange(100, 5000))
            out.append(tie)
        if rng.random() < 0.03:  # and a delete at the same version: the delete wins
            out.append({k: v for k, v in out[-1].items() if k != "fields"} | {"op": "delete"})
    return out


def expected(config: Path, events: list[dict[str, Any]]) -> dict[tuple[str, str, str], Any]:
    deployment = load_config(config, resolve_secrets=False)
    engine = Engine(deployment.catalog(), windows=deployment.window_specs())
    engine.apply_all(Event.model_validate(e) for e in events)
    now = int(time.time() * 1000)
    planner = Planner(deployment.writeback, engine.catalog)
    return {
        (w.object, w.record_id, w.field): w.value
        for w in planner.plan(engine.report(now, keep_null=True), now)
    }


async def _admin(broker: str, ask: Callable[[Any], Awaitable[Any]]) -> Any:
    """One question to the broker's admin API (``ask`` gets the started client)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        return await ask(admin)
    finally:
        await admin.close()


class Deployment:
    def __init__(
        self,
        tmp: Path,
        broker: str,
        *,
        store: str = "memory",
        standby_replicas: int = 0,
        tick: str = "1h",
        extra_rules: str = "",
    ) -> None:
        self.app = f"crm-pulse-test-{uuid.uuid4().hex[:8]}"
        self.out = tmp / "out.jsonl"
        self.config = tmp / "deploy.yaml"
        self.config.write_text(
            DEPLOY.format(
                out=self.out,
                app=self.app,
                broker=broker,
                store=store,
                standby=standby_replicas,
                tick=tick,
                extra=extra_rules,
            )
        )
        self.broker = broker
        self.tmp = tmp
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self, *, program: list[str] | None = None) -> subprocess.Popen[bytes]:
        """A worker (``program``: a script and its arguments to run instead of the CLI module,
        which it must end by calling with the arguments that follow)."""
        log = (self.tmp / f"worker{len(self.workers)}.log").open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [
                sys.executable,
                *(program or ["-m", "crm_pulse.cli"]),
                "worker",
                "--config",
                str(self.config),
                "--loglevel",
                "info",  # rebalances and recovery in the log, for a post-mortem
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.tmp,
        )
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.tmp.glob("worker*.log")))

    def partitions(self, worker: int) -> list[int]:
        """The events partitions the worker said it took last (``[]`` before it said so)."""
        log = self.tmp / f"worker{worker}.log"
        said = re.findall(r"now takes partitions \[([0-9, ]*)\]", log.read_text(errors="replace"))
        return [int(x) for x in said[-1].split(",") if x.strip()] if said else []

    async def publish(
        self,
        events: list[dict[str, Any]],
        raw: list[bytes] = (),  # type: ignore[assignment]
        pace: float = 0.0,
        hold: tuple[int, threading.Event] | None = None,
    ) -> None:
        """Publish events (and raw messages); with ``pace``, 50 events every ``pace`` seconds;
        with ``hold`` (``count``, ``release``), the last ``count`` events only once ``release``
        is set (waiting for it at most 300 s)."""
        with (self.tmp / "published.jsonl").open("a") as f:  # kept for a post-mortem
            f.writelines(json.dumps(e) + "\n" for e in events)
        producer = AIOKafkaProducer(bootstrap_servers=self.broker)
        await producer.start()
        try:
            for i, e in enumerate(events):
                if hold and i == len(events) - hold[0]:
                    await producer.flush()
                    released = await asyncio.to_thread(hold[1].wait, 300)
                    assert released, "the rest of the stream was never released"
                key = f"{e['source']}/{e['object']}/{e['id']}".encode()
                await producer.send(f"{self.app}-events", json.dumps(e).encode(), key=key)
                if pace and i % 50 == 49:
                    await producer.flush()
                    await asyncio.sleep(pace)
            for r in raw:
                await producer.send(f"{self.app}-events", r, key=b"poison")
            await producer.flush()
        finally:
            await producer.stop()

    def wait_both_working(self, timeout: float = 120) -> None:
        """Until both workers are under way and the rebalance settled (until then both may
        still name a partition), and values are being written."""
        deadline = time.monotonic() + timeout
        while not (
            self.partitions(0)
            and self.partitions(1)
            and self.out.exists()
            and sorted(self.partitions(0) + self.partitions(1)) == [0, 1, 2, 3]
        ):
            assert time.monotonic() < deadline, self.logs()
            time.sleep(0.1)

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
        """Polls ``condition`` (every 0.2 s) until it holds; fails with ``what`` and the logs."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"never {what}\n{self.logs()}"
            time.sleep(0.2)

    def committed(self, partitions: list[int], stage: str = "events") -> int:
        """The group's committed offsets on these partitions of a stage's input, summed: how
        many of their messages the workers applied and acknowledged (Faust commits them every
        100 acknowledgements or every second)."""
        from aiokafka import TopicPartition

        offsets = asyncio.run(
            _admin(self.broker, lambda a: a.list_consumer_group_offsets(self.app))
        )
        tps = [TopicPartition(f"{self.app}-{stage}", p) for p in partitions]
        return sum(offsets[tp].offset for tp in tps if tp in offsets)

    def group_settled(self, members: int, published: int) -> bool:
        """The broker says the group is ``Stable`` (no rebalance under way) with ``members``
        members, and they committed all ``published`` events."""
        (response,) = asyncio.run(
            _admin(self.broker, lambda a: a.describe_consumer_groups([self.app]))
        )
        group = response.groups[0]  # (error, id, state, protocol type, protocol, members...)
        return (group[2], len(group[5])) == ("Stable", members) and (
            self.committed([0, 1, 2, 3]) == published
        )

    def wait_for(
        self, want: dict[tuple[str, str, str], Any], timeout: float = 120
    ) -> dict[tuple[str, str, str], Any]:
        deadline = time.monotonic() + timeout
        got: dict[tuple[str, str, str], Any] = {}
        while time.monotonic() < deadline:
            got = read_values(self.out)
            if {k: v for k, v in want.items() if v is not None} == {
                k: v for k, v in got.items() if k in want and v is not None
            } and all(got.get(k) == v for k, v in want.items() if k in got):
                return got
            time.sleep(0.5)
        missing = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        logs = {i: self.tmp / f"worker{i}.log" for i, p in enumerate(self.workers)}
        live = {i: logs[i].stat().st_size for i, p in enumerate(self.workers) if p.poll() is None}
        for i in live:  # a post-mortem: every live worker logs its tasks' stacks
            self.workers[i].send_signal(signal.SIGUSR1)
        dumped = time.monotonic() + 10
        while time.monotonic() < dumped and any(
            logs[i].stat().st_size == size for i, size in live.items()
        ):
            time.sleep(0.2)
        raise AssertionError(
            f"sink never matched replay; differences {list(missing.items())[:5]}\n"
            f"{asyncio.run(self.positions())}\n{self.logs()}"
        )

    async def positions(self) -> str:
        """For a post-mortem: per stage and partition, the input's end offset, the group's
        committed offset and the position the stage's table holds."""
        from aiokafka import TopicPartition

        from crm_pulse.streams.embedded.state import loads_state

        committed = await _admin(self.broker, lambda a: a.list_consumer_group_offsets(self.app))
        consumer = AIOKafkaConsumer(bootstrap_servers=self.broker, group_id=None)
        await consumer.start()
        lines = []
        try:
            for stage, table in (
                ("events", "records"),
                ("deltas", "aggregates"),
                ("values", "writer"),
            ):
                tps = [TopicPartition(f"{self.app}-{stage}", p) for p in range(4)]
                ends = await consumer.end_offsets(tps)
                changelog = [TopicPartition(f"{self.app}-{table}-changelog", p) for p in range(4)]
                consumer.assign(changelog)
                await consumer.seek_to_beginning(*changelog)
                last = await consumer.end_offsets(changelog)
                held: dict[str, Any] = {}
                while any(await consumer.position(tp) < last[tp] for tp in changelog):
                    for messages in (await consumer.getmany(timeout_ms=500)).values():
                        for m in messages:
                            key = (m.key or b"").decode(errors="replace").strip('"')
                            if key.startswith("@") and m.value is not None:
                                held[key] = loads_state(m.value)
                for tp in tps:
                    c = committed.get(tp)
                    lines.append(
                        f"{stage}[{tp.partition}] end {ends[tp]} committed "
                        f"{c.offset if c else None} {table} position {held.get(f'@{tp.partition}')}"
                    )
        finally:
            await consumer.stop()
        return "\n".join(lines)


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_a_events_on_kafka_give_the_replay_metrics(kafka: str, tmp_path: Path, store: str) -> None:
    d = Deployment(tmp_path, kafka, store=store)
    events = history(random.Random(1), 600)
    try:
        d.start_worker()
        asyncio.run(d.publish(events[:300]))
        d.wait_for(expected(d.config, events[:300]))
        # the aggregates stage publishes every value a batch touches; the writer writes a field
        # only when its value differs from the last one written
        last: dict[tuple[str, str, str], Any] = {}
        for line in d.out.read_text().splitlines():
            row = json.loads(line)
            key = (row["object"], row["record_id"], row["field"])
            assert last.get(key, object()) != row["value"], f"{key} written twice unchanged"
            last[key] = row["value"]
        d.stop()  # a clean restart: RocksDB keeps the tables and their offsets, memory replays
        d.start_worker()
        asyncio.run(d.publish(events[300:]))
        d.wait_for(expected(d.config, events))
    finally:
        d.stop()
    assert all(p.returncode == 0 for p in d.workers), d.logs()


HELD_BACK = 300
"""The last events of a kill test's stream: published only once the worker is dead."""


@pytest.mark.parametrize(("applied", "standby"), [(1, 0), (200, 1)])
def test_b_a_worker_killed_mid_stream_loses_and_doubles_nothing(
    kafka: str, tmp_path: Path, applied: int, standby: int
) -> None:
    """Two workers share the partitions; one is SIGKILLed while events are still arriving,
    once it applied and committed ``applied`` of them (its first batch, or a good part of the
    stream); the survivor takes its partitions over (from the changelog, or from its standby
    copy) and every value ends as replay says."""
    d = Deployment(tmp_path, kafka, standby_replicas=standby)
    events = history(random.Random(2), 1500)
    killed = threading.Event()
    try:
        first, _second = d.start_worker(), d.start_worker()
        asyncio.run(d.publish(events[:300]))
        d.wait_both_working()
        d.wait_until(lambda: d.group_settled(2, 300), "settled with both workers")
        mine = d.partitions(0)
        before = d.committed(mine)
        # the rest arrives 50 events every 0.12 s; its last HELD_BACK events after the kill
        rest = threading.Thread(
            target=lambda: asyncio.run(d.publish(events[300:], pace=0.12, hold=(HELD_BACK, killed)))
        )
        rest.start()
        d.wait_until(
            lambda: d.committed(mine) - before >= applied,
            f"applied {applied} of the new events on the first worker's partitions {mine}",
        )
        first.send_signal(signal.SIGKILL)  # mid-stream: batches in flight, more arriving
        first.wait()
        killed.set()
        rest.join()
        # the survivor takes the dead worker's share
        d.wait_until(lambda: d.partitions(1) == [0, 1, 2, 3], "took the dead worker's share")
        d.wait_for(expected(d.config, events), timeout=180)
    finally:
        killed.set()
        d.stop()


def test_b3_a_worker_killed_and_restarted_takes_its_partitions_back_with_its_tables(
    kafka: str, tmp_path: Path
) -> None:
    """Static membership (``runtime.faust.static_membership``, on by default): two workers with
    RocksDB tables; one is SIGKILLed mid-stream and started again at once. It claims its data
    directory again, hence its group instance id, and the broker hands it its partitions back
    with no rebalance: the survivor is never reassigned (the session timeout is set long, so a
    rebalance could not hide behind a quick restart) and every value ends as replay says,
    nothing lost, nothing counted twice. (How fast: benchmarks/faust_runtime.py.)"""
    d = Deployment(tmp_path, kafka, store="rocksdb")
    d.config.write_text(
        d.config.read_text().replace("store: rocksdb", "store: rocksdb, session_timeout: 60s")
    )
    events = history(random.Random(8), 1500)

    def said(worker: int) -> list[str]:
        text = (tmp_path / f"worker{worker}.log").read_text(errors="replace")
        return re.findall(
            r"now takes partitions \[[0-9, ]*\] of \S+ \(group instance id (\S+)\)", text
        )

    killed = threading.Event()
    try:
        first, _second = d.start_worker(), d.start_worker()
        asyncio.run(d.publish(events[:300]))
        d.wait_both_working()
        d.wait_until(lambda: d.group_settled(2, 300), "settled with both workers")
        mine, theirs = d.partitions(0), d.partitions(1)
        survivor_said = said(1)
        before = d.committed(mine)
        # the rest arrives 50 events every 0.12 s; its last HELD_BACK events after the kill
        rest = threading.Thread(
            target=lambda: asyncio.run(d.publish(events[300:], pace=0.12, hold=(HELD_BACK, killed)))
        )
        rest.start()
        d.wait_until(
            lambda: d.committed(mine) > before,
            f"applied any of the new events on the first worker's partitions {mine}",
        )
        first.send_signal(signal.SIGKILL)  # mid-stream: batches in flight, more arriving
        first.wait()
        d.start_worker()  # worker2: the same command, from the same directory
        killed.set()
        rest.join()
        d.wait_until(lambda: bool(d.partitions(2)), "the restarted worker took partitions")
        assert d.partitions(2) == mine, d.logs()  # its own partitions, at once
        assert said(2)[-1] == said(0)[-1]  # with the same group instance id
        d.wait_for(expected(d.config, events), timeout=180)
        assert said(1) == survivor_said and d.partitions(1) == theirs, d.logs()  # no rebalance
        assert len(set(said(0) + said(1))) == 2  # two workers, two ids
    finally:
        killed.set()
        d.stop()


def test_b4_the_worker_reads_the_brokers_session_timeout_limits(kafka: str, tmp_path: Path) -> None:
    """A session timeout the broker would refuse is a config error before the worker joins
    (the join fails and the worker would sit there consuming nothing): the limits are read
    from the broker (the test broker lowers the minimum to 1 s)."""
    from crm_pulse.streams.faust import FaustPipeline, broker_session_limits, session_problem

    d = Deployment(tmp_path, kafka)
    deployment = load_config(d.config, resolve_secrets=False)
    limits = asyncio.run(broker_session_limits(FaustPipeline(deployment, sinks={})))
    assert limits == {"group.min.session.timeout.ms": 1000, "group.max.session.timeout.ms": 1800000}
    assert session_problem(2.0, limits) is None
    assert session_problem(2.0, {**limits, "group.min.session.timeout.ms": 6000}) is not None


ROLLING = """\
  - {metric: won_revenue, window: "rolling:30d", group: {}, target: {connector: crm, object: Company, record: "c1", field: won_30d}}
  - {metric: won_revenue, window: "rolling:30d", group: owner_id, target: {connector: crm, object: User, field: won_30d}}
"""


COUNTS_TICKS = """
import sys
from pathlib import Path

from crm_pulse.cli import main
from crm_pulse.streams.faust import timers

marker = Path(sys.argv[1])
tick = timers.Timers.tick


async def counted(self):
    settled = self.settled(self.pipeline.app.consumer_generation_id)
    await tick(self)
    if settled:  # a tick that evaluated this worker's groups
        with marker.open("a") as f:
            f.write("tick\\n")


timers.Timers.tick = counted
sys.exit(main(sys.argv[2:]))
"""


def test_b2_values_that_time_moves_are_written_by_the_worker_owning_the_group(
    kafka: str, tmp_path: Path
) -> None:
    """Rolling windows are re-evaluated at every tick on every worker; only the worker that
    holds a group's partition may write its value (the other holds none, or a stale copy)."""
    d = Deployment(tmp_path, kafka, tick="1s", extra_rules=ROLLING)
    events = history(random.Random(5), 400)
    script = tmp_path / "counts_ticks.py"
    script.write_text(COUNTS_TICKS)
    ticks = [tmp_path / f"ticks{i}" for i in range(2)]

    def ticked(worker: int) -> int:
        return len(ticks[worker].read_text().splitlines()) if ticks[worker].exists() else 0

    try:
        for marker in ticks:
            d.start_worker(program=[str(script), str(marker)])
        # both hold groups (one worker alone holding all four also sums to [0, 1, 2, 3])
        d.wait_until(
            lambda: bool(
                d.partitions(0)
                and d.partitions(1)
                and sorted(d.partitions(0) + d.partitions(1)) == [0, 1, 2, 3]
            ),
            "both workers held partitions",
        )
        asyncio.run(d.publish(events))
        want = expected(d.config, events)
        d.wait_for(want)
        lines = len(d.out.read_text().splitlines())
        before = [ticked(0), ticked(1)]
        d.wait_until(
            lambda: all(ticked(i) >= before[i] + 3 for i in (0, 1)),
            "three more ticks on both workers",
        )
        assert len(d.out.read_text().splitlines()) == lines, "values rewritten by time ticks"
        got = read_values(d.out)
        assert {k: got.get(k) for k in want if want[k] is not None} == {
            k: v for k, v in want.items() if v is not None
        }
    finally:
        d.stop()


def test_c_poison_messages_go_to_the_dead_letter_topic(kafka: str, tmp_path: Path) -> None:
    d = Deployment(tmp_path, kafka)
    events = history(random.Random(3), 100)
    try:
        d.start_worker()
        asyncio.run(
            d.publish(
                events[:50],
                raw=[
                    b"{not json",
                    json.dumps(
                        {"source": "crm", "object": "deal", "op": "upsert", "version": 1}
                    ).encode(),
                ],
            )
        )
        asyncio.run(d.publish(events[50:]))
        d.wait_for(expected(d.config, events))

        async def dead() -> list[dict[str, Any]]:
            consumer = AIOKafkaConsumer(
                f"{d.app}-dead-letters",
                bootstrap_servers=kafka,
                auto_offset_reset="earliest",
                group_id=None,
            )
            await consumer.start()
            try:
                batch = await consumer.getmany(timeout_ms=10_000)
                return [json.loads(m.value) for msgs in batch.values() for m in msgs]
            finally:
                await consumer.stop()

        letters = asyncio.run(dead())
        assert len(letters) == 2
        assert all(x["reason"].startswith("not a canonical event") for x in letters)
        assert any("id" in x["reason"] for x in letters)
    finally:
        d.stop()


def test_d_the_edge_takes_signed_webhooks_into_kafka(kafka: str, tmp_path: Path) -> None:
    """``crm-pulse run`` with kind: faust also serves the ingress and forwards it to Kafka."""
    import socket
    import urllib.request

    from crm_pulse.connectors.events import sign

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = Deployment(tmp_path, kafka)
    text = (
        d.config.read_text()
        .replace("connectors:\n", 'connectors:\n  - events: {secret: "${INGRESS_SECRET}"}\n')
        .replace(
            "  kind: faust\n",
            f'  kind: faust\n  listen: "127.0.0.1:{port}"\n  state_path: "{tmp_path / "edge.sqlite"}"\n',
        )
    )
    d.config.write_text(text)
    events = history(random.Random(4), 300)
    env = {**os.environ, "INGRESS_SECRET": "edge-secret-0123456789"}
    log = (tmp_path / "worker0.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_pulse.cli", "run", "--config", str(d.config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    d.workers.append(proc)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, d.logs()
                time.sleep(0.3)
        for start in range(0, len(events), 50):
            body = json.dumps(events[start : start + 50]).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/events",
                data=body,
                headers=sign("edge-secret-0123456789", body),
            )
            with urllib.request.urlopen(request, timeout=10) as r:
                assert r.status == 200
        d.wait_for(expected(d.config, events))
    finally:
        d.stop()


def test_e_a_hole_is_read_back_from_kafka(kafka: str) -> None:
    """What the agents do when Faust skipped messages: read the range straight from Kafka."""
    from crm_pulse.streams.faust.order import PartitionReader

    topic = f"crm-pulse-reader-{uuid.uuid4().hex[:8]}"

    async def main() -> tuple[list[int], list[bytes | None], list[int]]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka)
        await producer.start()
        try:
            for i in range(20):
                await producer.send_and_wait(topic, str(i).encode(), key=b"k", partition=0)
        finally:
            await producer.stop()
        reader = PartitionReader([kafka], timeout=20)
        middle = await reader.read(topic, 0, 5, 12)
        tail = await reader.read(topic, 0, 18, 20)
        return [m.offset for m in middle], [m.value for m in middle], [m.offset for m in tail]

    offsets, values, tail = asyncio.run(main())
    assert offsets == list(range(5, 12))
    assert values == [str(i).encode() for i in range(5, 12)]
    assert tail == [18, 19]


def test_f_the_documented_two_worker_setup_with_rocksdb_from_one_directory(
    kafka: str, tmp_path: Path
) -> None:
    """docs/faust.md, "A two-worker deployment", as written: ``crm-pulse run`` and
    ``crm-pulse worker`` with the same file, started from one directory, with store: rocksdb.
    Each worker keeps its tables in a directory of its own (RocksDB locks its files)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = Deployment(tmp_path, kafka, store="rocksdb", standby_replicas=1)  # as in the docs
    d.config.write_text(
        d.config.read_text().replace(
            "  kind: faust\n", f'  kind: faust\n  listen: "127.0.0.1:{port}"\n'
        )
    )
    events = history(random.Random(6), 400)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for i, command in enumerate(
        (
            ["run", "--config", "deploy.yaml"],
            ["worker", "--config", "deploy.yaml", "--loglevel", "info"],
        )
    ):
        log = (tmp_path / f"worker{i}.log").open("wb")
        d.workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "crm_pulse.cli", *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp_path,
            )
        )
    try:
        deadline = time.monotonic() + 120
        while not 0 < len(d.partitions(1)) < 4:  # the second worker shares the partitions
            assert time.monotonic() < deadline, d.logs()
            assert all(p.poll() is None for p in d.workers), d.logs()
            time.sleep(0.2)
        asyncio.run(d.publish(events))
        d.wait_for(expected(d.config, events))
        assert all(p.poll() is None for p in d.workers), d.logs()
        data = tmp_path / "crm-pulse-data" / d.app
        assert sorted(p.name for p in data.iterdir()) == ["worker-0", "worker-1"]
        assert all(any((data / w).rglob("*.db")) for w in ("worker-0", "worker-1"))
    finally:
        d.stop()
    assert all(p.returncode == 0 for p in d.workers), d.logs()


def test_g_no_field_is_written_before_a_pulling_source_finished_its_first_read(
    kafka: str, tmp_path: Path
) -> None:
    """``crm-pulse run`` with kind: faust polls a pulling source (a file of 900 events) at the
    edge; the workers apply the events as they come but write nothing until the edge's
    first-read markers passed both phases: every field is written once, with its whole value."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = Deployment(tmp_path, kafka)
    events = history(random.Random(6), 900)
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    text = (
        d.config.read_text()
        .replace("max_batch: 50}", f'max_batch: 50, input: "{source}"}}')
        .replace(
            "  kind: faust\n",
            f'  kind: faust\n  listen: "127.0.0.1:{port}"\n  batch_size: 100\n'
            f'  state_path: "{tmp_path / "edge.sqlite"}"\n',
        )
    )
    d.config.write_text(text)
    log = (tmp_path / "worker0.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_pulse.cli", "run", "--config", str(d.config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    d.workers.append(proc)
    try:
        want = expected(d.config, events)
        d.wait_for(want)
        # anything partial would have been written before the whole value; anything after it
        # would come from a stage still busy: wait until every stage committed all its input
        topics = [f"{d.app}-{t}" for t in ("events", "deltas", "values")]
        d.wait_until(
            lambda: set(asyncio.run(_lag(kafka, d.app, topics)).values()) == {0},
            "drained (every stage committed its input)",
        )
    finally:
        d.stop()
    written: dict[tuple[str, str, str], list[Any]] = {}
    for line in d.out.read_text().splitlines():
        row = json.loads(line)
        written.setdefault((row["object"], row["record_id"], row["field"]), []).append(row["value"])
    assert {k: v for k, v in written.items() if len(v) > 1} == {}, d.logs()
    assert {k: v[0] for k, v in written.items()} == {k: v for k, v in want.items() if v is not None}


async def _lag(broker: str, group: str, topics: list[str]) -> dict[str, int]:
    """Per topic: messages not yet committed by the consumer group (end offset - committed)."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        lag = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            ends = await consumer.end_offsets(tps)
            lag[topic] = sum(
                end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
            )
        return lag
    finally:
        await consumer.stop()
        await admin.close()


def test_h_a_crm_outage_holds_no_stage_and_a_killed_worker_loses_no_pending_write(
    kafka: str, tmp_path: Path
) -> None:
    """The CRM (the file sink) fails for a long time: every stage keeps consuming and commits
    its input (the records, aggregates and writer agents alike: the writer only records the
    writes as pending, durably); the worker is killed with SIGKILL during the outage and another
    takes over; when the CRM answers again, every value replay gives reaches it."""
    d = Deployment(tmp_path, kafka)
    d.config.write_text(
        d.config.read_text().replace(
            "  kind: faust\n",
            "  kind: faust\n  retry: {initial: 100ms, max: 500ms, attempts: 10000}\n",
        )
    )
    d.out.mkdir()  # the CRM is down: every write fails with an OSError (IsADirectoryError)
    events = history(random.Random(7), 600)
    topics = [f"{d.app}-{t}" for t in ("events", "deltas", "values")]

    def drained(timeout: float = 120) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        lag: dict[str, int] = {}
        while time.monotonic() < deadline:
            lag = asyncio.run(_lag(kafka, d.app, topics))
            if all(v == 0 for v in lag.values()):
                return lag
            time.sleep(0.5)
        raise AssertionError(
            f"the stages stopped consuming during the outage: lag {lag}\n{d.logs()}"
        )

    try:
        first = d.start_worker()
        asyncio.run(d.publish(events[:300]))
        drained()  # every stage consumed and committed while no write succeeded
        assert d.out.is_dir() and not any(d.out.iterdir())
        first.send_signal(signal.SIGKILL)  # the pending writes exist only in the changelog now
        first.wait()
        d.start_worker()
        asyncio.run(d.publish(events[300:]))
        drained(180)  # the new worker (the dead one's directory and group instance id) took over
        d.out.rmdir()  # the CRM answers again
        d.wait_for(expected(d.config, events), timeout=120)
    finally:
        d.stop()


def test_i_changelog_records_are_appended_in_bulk_in_order(kafka: str) -> None:
    """:class:`KafkaOutput` appends a partition's records as few record batches as fit, in
    order, the last batch only once the others were acknowledged; it returns the last offset."""
    from crm_pulse.streams.faust.bulk import BATCH_BYTES, KafkaOutput

    topic = f"crm-pulse-changelog-{uuid.uuid4().hex[:8]}"
    value = b"x" * 1000
    count = 3 * BATCH_BYTES // len(value)  # several batches

    async def main() -> tuple[int, int, list[tuple[bytes | None, bytes | None]]]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"first", key=b"k", partition=0)
        finally:
            await producer.stop()
        output = KafkaOutput([kafka])
        try:
            records = [(f'"e{i}"'.encode(), value) for i in range(count)]
            last = await output.append(topic, 0, [*records, (b'"@0"', None)])
            small = await output.append(topic, 0, [(b'"e0"', b"y")])
        finally:
            await output.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=kafka, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        got: list[tuple[bytes | None, bytes | None]] = []
        try:
            while len(got) < count + 3:
                batch = await consumer.getmany(timeout_ms=5000)
                assert batch, f"read {len(got)} of {count + 3}"
                got.extend((m.key, m.value) for ms in batch.values() for m in ms)
        finally:
            await consumer.stop()
        return last, small, got

    last, small, got = asyncio.run(main())
    assert last == count + 1 and small == count + 2  # offset 0 holds "first"
    assert [k for k, _v in got[1:]] == [f'"e{i}"'.encode() for i in range(count)] + [
        b'"@0"',
        b'"e0"',
    ]
    assert got[-2][1] is None and got[-1][1] == b"y"


DIES_MID_BATCH = """
import os, signal, sys
from pathlib import Path

from crm_pulse.cli import main
from crm_pulse.streams.faust import batches, bulk

point, where, least, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])


def die(size):
    marker.write_text(str(size))
    os.kill(os.getpid(), signal.SIGKILL)


if point == "state":  # the batch's output acknowledged by Kafka, its state not written yet
    write = bulk.BulkChangelog.write

    async def dying_write(self, records):
        size = sum(len(r) for r in records.values())
        if where in self.topic and size >= least:
            die(size)
        await write(self, records)

    bulk.BulkChangelog.write = dying_write
else:  # "acknowledge": the batch's state committed, Faust not told (its offsets not committed)
    acknowledge = batches.acknowledge

    def dying_acknowledge(consumer, messages):
        if messages[0].topic.endswith(where) and len(messages) >= least:
            die(len(messages))
        acknowledge(consumer, messages)

    batches.acknowledge = dying_acknowledge
sys.exit(main(sys.argv[5:]))
"""


@pytest.mark.parametrize(
    ("point", "where", "least"),
    [
        ("state", "records-changelog", 20),  # deltas sent for the batch, records not stored
        ("acknowledge", "-events", 20),  # records stored, the events not acknowledged to Faust
        ("acknowledge", "-deltas", 3),  # aggregates stored, the deltas not acknowledged
    ],
)
def test_j_a_sigkill_in_the_middle_of_a_fetched_batch_loses_and_doubles_nothing(
    kafka: str, tmp_path: Path, point: str, where: str, least: int
) -> None:
    """The agents take what Faust's consumer fetched a batch at a time (``faust/batches.py``)
    and acknowledge it to Faust only once the batch's state is committed. A worker SIGKILLs
    itself in the middle of a batch of many messages: after the batch's output went out and
    before its state (the next worker sends it again, the next stage recognises it), or after
    its state and before Faust was told (the next worker is handed the batch again and drops
    what its positions say was applied). A new worker takes over; every value ends as replay
    says: nothing lost, nothing counted twice."""
    d = Deployment(tmp_path, kafka)
    events = history(random.Random(11), 1500)
    script = tmp_path / "dies_mid_batch.py"
    script.write_text(DIES_MID_BATCH)
    marker = tmp_path / "died"
    try:
        asyncio.run(d.publish(events[:1200]))  # waiting: the first batches are large
        dying = d.start_worker(program=[str(script), point, where, str(least), str(marker)])
        assert dying.wait(180) == -signal.SIGKILL, d.logs()
        assert int(marker.read_text()) >= least  # killed in the middle of a batch that large
        assert not d.out.exists() or read_values(d.out) != expected(d.config, events[:1200])
        d.start_worker()
        asyncio.run(d.publish(events[1200:]))
        d.wait_for(expected(d.config, events), timeout=180)
    finally:
        d.stop()
