"""Load client for the generic ingress: N connections POSTing signed batches of events.

Reused by ``benchmarks/runtime.py``::

    from benchmarks.ingest_client import run_ingest
    result = await run_ingest(url, secret, connections=16, batch=100, requests=2000)
    print(result.summary())

From the shell, against a running ``crm-pulse run`` (secret from ``$CRM_PULSE_INGEST_SECRET``)::

    python benchmarks/ingest_client.py --url http://127.0.0.1:8080/events -c 16 -b 100 -n 2000

or ``--self-test`` to start the HTTP server with an in-memory inbox and measure against it.
Each request carries ``batch`` deal upserts with distinct ids; latency is from sending the
request to reading its answer (the acknowledgement, sent after the inbox stored the request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from crm_pulse.connectors.events import sign

__all__ = ["IngestResult", "deal_events", "main", "run_ingest"]


def deal_events(request_no: int, batch: int, source: str = "bench") -> list[dict[str, object]]:
    """``batch`` deal upserts, ids unique across requests."""
    base = request_no * batch
    return [
        {
            "source": source,
            "object": "deal",
            "id": f"d{base + i}",
            "op": "upsert",
            "version": 1,
            "fields": {
                "owner_id": f"u{(base + i) % 50}",
                "status": "open",
                "amount": str(1000 + (base + i) % 997),
                "created_at": "2026-01-15T10:00:00Z",
            },
        }
        for i in range(batch)
    ]


@dataclass
class IngestResult:
    requests: int = 0
    events: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile in milliseconds (q in 0..100)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        k = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[k] * 1000

    def summary(self) -> str:
        return (
            f"{self.requests} requests, {self.events} events acknowledged in {self.seconds:.2f} s: "
            f"{self.events_per_second:,.0f} events/s; ack latency p50 {self.percentile(50):.1f} ms, "
            f"p99 {self.percentile(99):.1f} ms; statuses {dict(self.statuses)}, errors {self.errors}"
        )


async def run_ingest(
    url: str,
    secret: str,
    *,
    connections: int = 8,
    batch: int = 100,
    requests: int = 1000,
    make_events: Callable[[int, int], list[dict[str, object]]] = deal_events,
) -> IngestResult:
    """Send ``requests`` signed requests of ``batch`` events over ``connections`` connections.

    Bodies are built before the clock starts; signing happens per request at send time (the
    timestamp must be fresh and each signature unique).
    """
    bodies = [json.dumps(make_events(i, batch)).encode() for i in range(requests)]
    result = IngestResult()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                body = bodies[i]
                start = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=sign(secret, body)) as resp:
                        await resp.read()
                        status = resp.status
                except aiohttp.ClientError:
                    result.errors += 1
                    continue
                result.statuses[status] += 1
                if 200 <= status < 300:
                    result.latencies.append(time.perf_counter() - start)
                    result.requests += 1
                    result.events += batch

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        result.seconds = time.perf_counter() - began
    return result


async def _self_test(args: argparse.Namespace) -> IngestResult:
    from crm_pulse.connectors.events import EventsReceiver
    from crm_pulse.streams.http import HttpServer, MemoryInbox, Status, build_app
    from crm_pulse.streams.telemetry import Telemetry

    secret = "self-test-secret"
    inbox = MemoryInbox()
    app = build_app([("events", EventsReceiver(secret))], inbox, lambda: Status(True), Telemetry())
    server = HttpServer(app)
    await server.start("127.0.0.1", 0)
    try:
        result = await run_ingest(
            f"{server.url}/events",
            secret,
            connections=args.connections,
            batch=args.batch,
            requests=args.requests,
        )
    finally:
        await server.stop()
    stored = sum(len(json.loads(r.body)) for _, r in inbox.items)
    print(f"in-memory inbox holds {len(inbox.items)} requests, {stored} events")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--url", default="http://127.0.0.1:8080/events")
    parser.add_argument("-c", "--connections", type=int, default=8)
    parser.add_argument("-b", "--batch", type=int, default=100, help="events per request")
    parser.add_argument("-n", "--requests", type=int, default=1000)
    parser.add_argument("--self-test", action="store_true", help="serve an in-memory inbox")
    args = parser.parse_args(argv)
    if args.self_test:
        result = asyncio.run(_self_test(args))
    else:
        secret = os.environ.get("CRM_PULSE_INGEST_SECRET")
        if not secret:
            print("set CRM_PULSE_INGEST_SECRET to the ingress secret", file=sys.stderr)
            return 2
        result = asyncio.run(
            run_ingest(
                args.url,
                secret,
                connections=args.connections,
                batch=args.batch,
                requests=args.requests,
            )
        )
    print(result.summary())
    return 0 if result.errors == 0 and set(result.statuses) <= {200, 202} else 1


if __name__ == "__main__":
    raise SystemExit(main())
