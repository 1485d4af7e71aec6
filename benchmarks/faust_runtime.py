"""Faust runtime benchmark: workers against the embedded runtime and the engine, in one run.

    .venv/bin/python benchmarks/faust_runtime.py --events 5000 [--workers 2] [--profile DIR]
    .venv/bin/python benchmarks/faust_runtime.py --events 5000 --failover 2 [--short-session 2s]

Starts a throw-away Kafka (scripts/kafka/broker.py) and reports:

* events/s through the embedded runtime on a file source, timed from the moment the events are
  appended to the file it follows (the process is started and warm, like the Faust worker;
  the former figure included the process start), and the engine's own replay rate on the same
  events (parse + apply, best of 3): their ratio;
* events/s through one Faust worker (publish N events, time until the sink holds the values a
  recompute gives) and its ratio to the embedded runtime; with ``--workers 2``, the same events
  through two workers of a fresh app on the same broker, and the ratio to one worker;
* the CPU each took while timed, as CPU seconds per wall second (``/proc``): the broker's and
  the workers' (1.0 = one core busy the whole time), and per event, with the embedded
  runtime's CPU per event: ``faust_over_embedded_per_cpu_second`` is the ratio of events per
  CPU second, which the machine's other load does not skew the way it skews events/s; beside
  them what bounds a run on a shared machine: the producer's CPU (this process), the cores busy
  machine-wide (``/proc/stat``) and what other processes took of them, the load average, and
  the workers' run-queue wait (runnable, waiting for a core) per second of their own CPU; with
  ``--workers 2`` also the two-worker ratio per worker CPU second (one worker's CPU per event
  over two workers');
* end-to-end latency publish -> value written to the sink, p50/p99 over single changes;
* recovery: a worker killed with SIGKILL, a new one started: time until it writes again (table
  recovery from the changelog included);
* with ``--workers 2``: two workers with ``standby_replicas`` 0, then 1 (each a fresh app):
  events/s, and fail-over: one of them killed with SIGKILL, one event published to every
  events partition, seconds until the survivor has written them all.

``--failover ROUNDS`` measures fail-over only (``--events`` applied first, so the tables hold
state): two workers with RocksDB tables, one SIGKILLed, seconds until its partitions are
written again, (a) when it is restarted at once, with static membership and without, (b) by the
survivor with standby replicas, with a session timeout of 10 s and of ``--short-session``
(default 2s), (c) the same without standby, and (b) with the memory store; each case ``ROUNDS``
times, interleaved, with the partition assignments the workers logged (rebalances), the
phases (from the workers' logs) and the CPU seconds the take-over cost. The throw-away broker allows session timeouts down to 1 s
(``group.min.session.timeout.ms``).

``--profile DIR`` runs the embedded runtime and the first worker under py-spy (``pip install
py-spy``) and leaves raw profiles (``embedded.txt``, ``worker.txt``) in DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
FAUST = """
timezone: UTC
connectors:
  - file: {{name: crm, path: "{out}", max_batch: 100}}
writeback:
  - {{metric: won_revenue, window: month, target: {{connector: crm, object: Company, record: c1, field: won_mtd}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: crm, object: User, field: win_rate_qtd}}}}
runtime:
  kind: faust
  debounce: 50ms
  tick: 1h
  faust: {{app_id: "{app}", broker: "kafka://{broker}", partitions: 4, store: {store}, standby_replicas: {standby}, static_membership: {static}, session_timeout: {session}}}
"""
EMBEDDED = """
timezone: UTC
connectors:
  - file: {{name: crm, input: "{input}", path: "{out}", max_batch: 100, poll_interval: 50ms}}
writeback:
  - {{metric: won_revenue, window: month, target: {{connector: crm, object: Company, record: c1, field: won_mtd}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: crm, object: User, field: win_rate_qtd}}}}
runtime: {{state_path: "{state}", debounce: 50ms, batch_size: 2000, log_level: error}}
"""


def _broker() -> Any:
    spec = importlib.util.spec_from_file_location(
        "broker", ROOT / "scripts" / "kafka" / "broker.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.KafkaBroker()


def events(n: int) -> list[dict[str, Any]]:
    rng = random.Random(5)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    return [
        {
            "source": "crm",
            "object": "deal",
            "id": str(i),
            "op": "upsert",
            "version": 1,
            "fields": {
                "owner_id": f"u{rng.randrange(20)}",
                "status": rng.choice(["won", "lost", "open"]),
                "type": "new",
                "amount": str(rng.randrange(100, 9000)),
                "created_at": now,
                "closed_at": now,
            },
        }
        for i in range(n)
    ]


def last_line(path: Path) -> str:
    try:
        return path.read_text().splitlines()[-1]
    except (FileNotFoundError, IndexError):
        return ""


def wait_for_total(path: Path, want: int, timeout: float = 600) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        for line in reversed(path.read_text().splitlines() if path.exists() else []):
            row = json.loads(line)
            if row["field"] == "won_mtd":
                if row["value"] == want:
                    return time.perf_counter() - started
                break
        time.sleep(0.05)
    raise TimeoutError("the sink never reached the expected value")


async def publish(broker: str, topic: str, items: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=5)
    await producer.start()
    try:
        for e in items:
            await producer.send(topic, json.dumps(e).encode(), key=f"crm/deal/{e['id']}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_queue_wait(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a core so far
    (``/proc/PID/task/*/schedstat``: the scheduler's run-queue wait)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def machine_busy() -> tuple[float, float]:
    """(CPU seconds busy, CPU seconds in all) of every core so far (Linux ``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


def worker(
    config: Path, log: Path, profile: Path | None = None, loglevel: str = "warning"
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "crm_pulse.cli", "worker", "--config", str(config)]
    command += ["--loglevel", loglevel]
    if profile is not None:  # py-spy (pip install py-spy): a sampled profile of the worker
        command = ["py-spy", "record", "-r", "200", "-f", "raw", "-o", str(profile), "--", *command]
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker (the Python child when py-spy runs it) and wait."""
    kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    pids = kids.read_text().split() if kids.exists() else []
    for pid in pids or [str(proc.pid)]:
        os.kill(int(pid), signal.SIGTERM)
    proc.wait(60)


def warm_event(data: list[dict[str, Any]], name: str, amount: int = 1) -> dict[str, Any]:
    return {
        "source": "crm",
        "object": "deal",
        "id": name,
        "op": "upsert",
        "version": 1,
        "fields": {**data[0]["fields"], "status": "won", "amount": str(amount)},
    }


def engine_replay(data: list[dict[str, Any]], config: Path) -> float:
    """Events/s of the engine alone on the same events (parse + apply, as ``replay``): best of 3."""
    from crm_pulse.config import load_config
    from crm_pulse.metrics import Engine, Event

    deployment = load_config(config, resolve_secrets=False)
    lines = [json.dumps(e) for e in data]
    best = 0.0
    for _ in range(3):
        engine = Engine(deployment.catalog(), windows=deployment.window_specs())
        t0 = time.perf_counter()
        engine.apply_all(Event.model_validate_json(line) for line in lines)
        engine.changes(int(time.time() * 1000))
        best = max(best, len(lines) / (time.perf_counter() - t0))
    return best


def embedded_run(
    data: list[dict[str, Any]], want: int, tmp: Path, profile: Path | None
) -> dict[str, Any]:
    """The embedded runtime on a file source, timed from the moment the events are appended to
    the file it follows (the process is started and warm, like the Faust worker)."""
    source = tmp / "in.jsonl"
    source.write_text(json.dumps(warm_event(data, "warm-up")) + "\n")
    config = tmp / "embedded.yaml"
    config.write_text(EMBEDDED.format(input=source, out=tmp / "emb.jsonl", state=tmp / "s.sqlite"))
    command = [sys.executable, "-m", "crm_pulse.cli", "run", "--config", str(config)]
    if profile is not None:
        command = ["py-spy", "record", "-r", "200", "-f", "raw", "-o", str(profile), "--", *command]
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_for_total(tmp / "emb.jsonl", 1, timeout=120)
        cpu = cpu_seconds(proc.pid)  # py-spy's child is not counted (--profile)
        t0 = time.perf_counter()
        with source.open("a") as f:
            f.write("".join(json.dumps(e) + "\n" for e in data))
        wait_for_total(tmp / "emb.jsonl", want + 1)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu
    finally:
        stop(proc)
    return {
        "embedded_events_per_s": round(len(data) / elapsed),
        "embedded_cpu_us_per_event": round(cpu / len(data) * 1e6, 1),
        "engine_replay_events_per_s": round(engine_replay(data, config)),
    }


def faust_run(
    data: list[dict[str, Any]],
    want: int,
    tmp: Path,
    broker: Any,
    workers: int,
    profile: Path | None = None,
    standby: int = 0,
    *,
    session: str = "10s",
    static: bool = True,
    store: str = "memory",
    loglevel: str = "warning",
    name: str = "",
) -> tuple[dict[str, Any], Path, Path, list[subprocess.Popen[bytes]]]:
    """``workers`` workers of a fresh app on the broker: events/s and CPU shares."""
    app = f"bench-{os.getpid()}-{workers}w-s{standby}{name}"
    run = tmp / app
    run.mkdir()
    config = run / "faust.yaml"
    out = run / "faust.jsonl"
    config.write_text(
        FAUST.format(
            out=out,
            app=app,
            broker=broker.bootstrap,
            standby=standby,
            static=str(static).lower(),
            session=session,
            store=store,
        )
    )
    procs = [
        worker(config, run / f"worker{i}.log", profile if i == 0 else None, loglevel)
        for i in range(workers)
    ]
    asyncio.run(publish(broker.bootstrap, f"{app}-events", [warm_event(data, "warm-up")]))
    wait_for_total(out, 1, timeout=180)  # the workers are up and have partitions
    if workers > 1:
        time.sleep(15)  # the last rebalance settles (the warm-up can land before it)
        asyncio.run(publish(broker.bootstrap, f"{app}-events", [warm_event(data, "warm-2")]))
        wait_for_total(out, 2, timeout=180)
        want += 1
    cpu = [cpu_seconds(p.pid) for p in (broker.process, *procs)]
    busy0, all0 = machine_busy()
    waited = [run_queue_wait(p.pid) for p in procs]
    me = time.process_time()  # this process: the producer (and the polling of the sink)
    started = time.perf_counter()
    asyncio.run(publish(broker.bootstrap, f"{app}-events", data))
    wait_for_total(out, want + 1)
    wall = time.perf_counter() - started
    used = [cpu_seconds(p.pid) - c for p, c in zip((broker.process, *procs), cpu, strict=True)]
    me = time.process_time() - me
    waited = [run_queue_wait(p.pid) - w for p, w in zip(procs, waited, strict=True)]
    busy1, all1 = machine_busy()
    cores = (all1 - all0) / wall
    busy = (busy1 - busy0) / wall
    result = {
        "events_per_s": round(len(data) / wall),
        "broker_cpu_share": round(used[0] / wall, 2),  # CPU seconds per wall second
        "workers_cpu_share": round(sum(used[1:]) / wall, 2),
        "workers_cpu_us_per_event": round(sum(used[1:]) / len(data) * 1e6, 1),
        "broker_cpu_us_per_event": round(used[0] / len(data) * 1e6, 1),
        "producer_cpu_share": round(me / wall, 2),
        # the whole machine meanwhile: cores busy (of ``cores``), and what processes other
        # than the broker, the workers and the producer (the other agents) took of them
        "machine_cores_busy": round(busy, 2),
        "machine_cores": round(cores, 1),
        "others_cpu_share": round(max(0.0, busy - sum(used) / wall - me / wall), 2),
        "load_average": round(os.getloadavg()[0], 1),
        # runnable, waiting for a core: per second of the workers' own CPU (above 1: the
        # workers waited longer for the machine than they ran)
        "workers_run_queue_wait_per_cpu_s": round(sum(waited) / max(sum(used[1:]), 1e-9), 2),
    }
    return result, config, out, procs


def one_per_partition(partitions: int, prefix: str) -> list[str]:
    """Deal ids whose events land in each of the events topic's partitions (as the producer
    places them)."""
    from aiokafka.partitioner import DefaultPartitioner

    every = list(range(partitions))
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        name = f"{prefix}{i}"
        found.setdefault(DefaultPartitioner()(f"crm/deal/{name}".encode(), every, every), name)
        i += 1
    return list(found.values())


def failover(
    data: list[dict[str, Any]],
    total: int,
    broker: Any,
    config: Path,
    out: Path,
    procs: list[subprocess.Popen[bytes]],
    restart: bool = False,
    keep: Path | None = None,
) -> dict[str, float]:
    """Two workers share the partitions; one is killed with SIGKILL and one event is published
    to every events partition: seconds from the kill until they are all written (the company
    total counts each), i.e. until the dead worker's partitions are processed again. Without
    ``restart``, by the survivor: session timeout, rebalance, table recovery from the changelog
    or from its standby copy. With ``restart``, the killed worker is started again at once (same
    command, same directory: it claims its data directory and group instance id again), as a
    supervisor would: with static membership it takes its partitions back with no rebalance
    (process start and its table recovery included)."""
    app = config.parent.name
    victim = procs[0]
    cpu = [cpu_seconds(p.pid) for p in (broker.process, *procs[1:])]
    t0, killed = time.perf_counter(), time.time()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    if restart:
        procs[0] = worker(config, config.parent / "worker0-restarted.log", loglevel="info")
    names = one_per_partition(4, "failover-")
    events = [warm_event(data, n, 3) for n in names]
    asyncio.run(publish(broker.bootstrap, f"{app}-events", events))
    wait_for_total(out, total + 3 * len(events), timeout=300)
    seconds = time.perf_counter() - t0
    if keep is not None:  # the workers' logs, for a closer look at the phases
        keep.mkdir(parents=True, exist_ok=True)
        for log in config.parent.glob("worker*.log"):
            (keep / f"{app}-{log.name}").write_bytes(log.read_bytes())
    used = [cpu_seconds(p.pid) - c for p, c in zip((broker.process, *procs[1:]), cpu, strict=True)]
    workers_cpu = sum(used[1:]) + (cpu_seconds(procs[0].pid) if restart else 0.0)
    return {
        "seconds": round(seconds, 1),
        **phases(config.parent, killed),
        "workers_cpu_s": round(workers_cpu, 1),  # the survivor's, and the restarted worker's
        "broker_cpu_s": round(used[0], 1),
    }


_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] \[\d+\] \[\w+\] (.*)$", re.M)


def phases(run: Path, killed: float) -> dict[str, float]:
    """Where the fail-over's seconds went, from the workers' logs (seconds after the kill):
    the restarted process's first log line (``started``), the take-over's partition assignment
    (``assigned``), its table recovery done (``recovered``)."""
    marks: dict[str, float] = {}
    for log in sorted(run.glob("worker*.log")):
        for stamp, message in _LINE.findall(log.read_text(errors="replace")):
            at = time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")) + int(stamp[20:]) / 1e3
            at -= killed
            if at < 0:
                continue
            for name, text in (
                ("started", "" if "restarted" in log.name else None),
                ("assigned", "now takes partitions"),
                ("recovered", "Recovery]: Recovery complete"),
            ):
                if text is not None and text in message:
                    marks[name] = round(min(marks.get(name, at), at), 1)
    return marks


def assignments(run: Path) -> int:
    """Partition assignments the workers of a run logged (each rebalance: one per worker)."""
    return sum(
        log.read_text(errors="replace").count("now takes partitions")
        for log in run.glob("worker*.log")
    )


FAILOVER_CASES = [  # name, store, standby replicas, session timeout, static membership, restart
    ("restart_static", "rocksdb", 0, "10s", True, True),
    ("restart_dynamic", "rocksdb", 0, "10s", False, True),
    ("survivor_standby1_session10s", "rocksdb", 1, "10s", True, False),
    ("survivor_standby1_session{short}", "rocksdb", 1, "{short}", True, False),
    ("survivor_standby0_session10s", "rocksdb", 0, "10s", True, False),
    ("survivor_standby0_session{short}", "rocksdb", 0, "{short}", True, False),
    # the memory store keeps no changelog offsets (Faust's persisted_offset is None): every
    # recovery reads each active partition's changelog from the start, standby copy or not
    ("survivor_standby1_session{short}_memory", "memory", 1, "{short}", True, False),
]


def failover_runs(
    data: list[dict[str, Any]],
    want: int,
    tmp: Path,
    broker: Any,
    short: str,
    rounds: int,
    keep: Path | None = None,
) -> dict[str, Any]:
    """``--failover``: each case of :data:`FAILOVER_CASES` on two workers of a fresh app that
    first applied the events (so the tables hold state), ``rounds`` times, the cases
    interleaved: seconds from a SIGKILL until the dead worker's partitions are written again
    (:func:`failover`), the workers' events/s before it, and the partition assignments logged
    (a count above 2 + the fail-over's means rebalances nobody asked for, e.g. a session
    timeout shorter than a blocked event loop)."""
    result: dict[str, Any] = {}
    for r in range(rounds):
        for case, store, standby, session, static, restart in FAILOVER_CASES:
            case, session = case.format(short=short), session.format(short=short)
            one, config, out, procs = faust_run(
                data,
                want,
                tmp,
                broker,
                2,
                standby=standby,
                session=session,
                static=static,
                store=store,
                loglevel="info",
                name=f"-{case}-{r}".replace("_", "-"),
            )
            before = assignments(config.parent)
            took = failover(data, want + 2, broker, config, out, procs, restart, keep)
            row = result.setdefault(case, {"seconds": [], "events_per_s": [], "assignments": []})
            row["seconds"].append(took.pop("seconds"))
            row.setdefault("phases", []).append(took)
            row["events_per_s"].append(one["events_per_s"])
            time.sleep(1.0)  # late log lines
            row["assignments"].append(f"{before} + {assignments(config.parent) - before}")
            for p in procs:
                if p.poll() is None:
                    stop(p)
            print(case, row, file=sys.stderr, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=1, help="also run this many workers")
    parser.add_argument("--profile", type=Path, help="py-spy profiles into this directory")
    parser.add_argument(
        "--failover",
        type=int,
        metavar="ROUNDS",
        help="only the fail-over cases (restart with/without static membership, survivor with"
        " standby 0/1 and session timeout 10s/--short-session), this many rounds",
    )
    parser.add_argument("--short-session", default="2s", help="the short session timeout")
    parser.add_argument("--logs", type=Path, help="--failover: keep the workers' logs here")
    args = parser.parse_args(argv)
    data = events(args.events)
    want = sum(int(e["fields"]["amount"]) for e in data if e["fields"]["status"] == "won")
    result: dict[str, Any] = {"events": args.events}
    if args.failover:
        load = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as tmp_name:
            broker = _broker().start()
            try:
                result["failover"] = failover_runs(
                    data,
                    want,
                    Path(tmp_name),
                    broker,
                    args.short_session,
                    args.failover,
                    args.logs,
                )
            finally:
                broker.stop()
        result["load_average"] = [round(load, 1), round(os.getloadavg()[0], 1)]
        print(json.dumps(result, indent=2))
        return 0
    prof = args.profile
    if prof is not None:
        prof.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        result.update(embedded_run(data, want, tmp, prof / "embedded.txt" if prof else None))
        result["embedded_over_engine"] = round(
            result["embedded_events_per_s"] / result["engine_replay_events_per_s"], 3
        )
        broker = _broker().start()
        try:
            one, config, out, procs = faust_run(
                data, want, tmp, broker, 1, prof / "worker.txt" if prof else None
            )
            result["faust_one_worker_events_per_s"] = one["events_per_s"]
            result["faust_over_embedded"] = round(
                one["events_per_s"] / result["embedded_events_per_s"], 3
            )
            result["one_worker_cpu"] = {k: v for k, v in one.items() if k != "events_per_s"}
            if prof is None:  # CPU per event: what the machine's other load cannot skew
                result["faust_over_embedded_per_cpu_second"] = round(
                    result["embedded_cpu_us_per_event"] / one["workers_cpu_us_per_event"], 3
                )
            if args.workers > 1:
                for standby in (0, 1):
                    many, c2, o2, more = faust_run(
                        data, want, tmp, broker, args.workers, standby=standby
                    )
                    name = f"{args.workers}_workers_standby_{standby}"
                    result[f"faust_{name}_events_per_s"] = many["events_per_s"]
                    result[f"{name}_over_one"] = round(
                        many["events_per_s"] / one["events_per_s"], 3
                    )
                    result[f"{name}_cpu"] = {k: v for k, v in many.items() if k != "events_per_s"}
                    # the ratio the workers' CPU per event gives: two workers each with a
                    # core of their own would reach (events per worker CPU second, 2 workers
                    # / 1) x 2
                    result[f"{name}_over_one_per_worker_cpu_second"] = round(
                        one["workers_cpu_us_per_event"] / many["workers_cpu_us_per_event"], 3
                    )
                    # the events and the two warm-ups (1 each), as faust_run waited for them
                    result[f"{name}_failover_after_sigkill_s"] = failover(
                        data, want + 2, broker, c2, o2, more
                    )["seconds"]
                    for p in more[1:]:
                        stop(p)
            w = procs[0]
            want += 1
            # latency publish -> written, one change at a time
            latencies = []
            total = want
            app = config.parent.name
            for k in range(30):
                e = warm_event(data, f"lat{k}", 1000 + k)
                total += 1000 + k
                t0 = time.perf_counter()
                asyncio.run(publish(broker.bootstrap, f"{app}-events", [e]))
                wait_for_total(out, total, timeout=60)
                latencies.append(time.perf_counter() - t0)
            latencies.sort()
            result["latency_p50_ms"] = round(latencies[len(latencies) // 2] * 1000)
            result["latency_p99_ms"] = round(latencies[-1] * 1000)
            # recovery: kill -9, start a new worker, time until it writes again
            kids = Path(f"/proc/{w.pid}/task/{w.pid}/children")
            pids = kids.read_text().split() if kids.exists() else []
            os.kill(int(pids[0]) if pids else w.pid, signal.SIGKILL)
            if pids:
                stop(w)  # py-spy ends with its child
            else:
                w.wait()
            t0 = time.perf_counter()
            w = worker(config, config.parent / "worker-after-crash.log")
            asyncio.run(publish(broker.bootstrap, f"{app}-events", [warm_event(data, "after", 7)]))
            wait_for_total(out, total + 7, timeout=300)
            result["recovery_after_sigkill_s"] = round(time.perf_counter() - t0, 1)
            stop(w)
        finally:
            broker.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
