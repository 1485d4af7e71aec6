"""Issue 17 item 5: reading values costs what is read, never a scan of every record or group.

A running runtime over real loopback HTTP, its store replaced by one that counts full scans
(``items()``: every entry of the state). After the state is loaded and the first batch planned,
every read path -- ``/status``, ``/overview`` (the status page's JSON), ``/metrics``
(Prometheus), ``/explain`` (the drill-down) for an owner, an account and the company -- makes
none. And ``/explain`` under bad input: always a 4xx with a reason, never a 5xx.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from crm_pulse.metrics.explain import explain
from crm_pulse.streams.embedded import consumer as consumer_module
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.embedded.state import SQLiteStore
from crm_pulse.streams.explain import record_states

from .conftest import StartRuntime
from .test_ingress_http import wait_for

DEPLOY = """
timezone: UTC
connectors:
  - events: {{secret: "${{INGRESS_SECRET}}", sources: [crm]}}
  - file: {{name: out, path: "{out}"}}
writeback:
  - {{metric: won_revenue, window: month, group: {{}}, target: {{connector: out, object: Company, record: "c1", field: won_mtd}}}}
  - {{metric: win_rate, window: quarter, group: owner_id, target: {{connector: out, object: User, field: win_rate_qtd}}}}
  - {{metric: won_revenue, window: year, group: account_id, target: {{connector: out, object: Account, field: won_ytd}}}}
  - {{metric: deals_won, window: rolling:30d, group: owner_id, target: {{connector: out, object: User, field: won_30d}}}}
runtime:
  state_path: "{state}"
  listen: "127.0.0.1:{port}"
  debounce: 0s
"""


class ScanCounting(SQLiteStore):
    """The runtime's store, counting its full scans."""

    scans: list[str] = []  # noqa: RUF012 (one list for the test: the consumer builds its own)

    def items(self) -> Iterator[tuple[Any, Any]]:
        import traceback

        ScanCounting.scans.append("".join(traceback.format_stack()))
        return super().items()


def deal(i: int) -> dict[str, Any]:
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600 - i))
    return {
        "source": "crm",
        "object": "deal",
        "id": str(i),
        "op": "upsert",
        "version": 1,
        "fields": {
            "status": "won" if i % 3 else "lost",
            "amount": str(100 + i),
            "owner_id": f"u{i % 4}",
            "account_id": f"a{i % 7}",
            "closed_at": at,
            "created_at": at,
        },
    }


@pytest.fixture
async def served(
    embedded_server: StartRuntime, monkeypatch: pytest.MonkeyPatch
) -> tuple[EmbeddedRuntime, str]:
    monkeypatch.setattr(consumer_module, "SQLiteStore", ScanCounting)
    ScanCounting.scans = []
    server = await embedded_server(DEPLOY)
    runtime = server.runtime
    await server.publish([deal(i) for i in range(1, 61)])

    async def started() -> bool:
        return not (await runtime.status_async()).get("starting")

    await wait_for(started, 30)
    assert isinstance(runtime.consumer.store, ScanCounting)
    return runtime, server.base


async def _get(base: str, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(base + path) as r:
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text


async def test_no_read_path_scans_the_state(served: tuple[EmbeddedRuntime, str]) -> None:
    runtime, base = served
    month = time.strftime("%Y-%m", time.gmtime())
    year = month[:4]
    reads = [
        "/status",
        "/overview",
        "/metrics",
        f"/explain?metric=won_revenue&window={month}",
        f"/explain?metric=win_rate&window={year}&group=owner_id=u1",
        f"/explain?metric=won_revenue&window={year}&group=account_id=a3",
        "/explain?metric=deals_won&window=last_30d&group=owner_id=u2",
    ]
    for _round in range(2):
        for path in reads:
            status, body = await _get(base, path)
            assert status == 200, (path, body)
    # what scanned was the start, not a read: the load (and the last reported values pruned
    # with it), the first batch (future-dated contributions found once) and the first tick
    # (the engine's index of groups with data built once); see docs/benchmarks.md
    writers = ("in open\n", "in _step\n", "in tick\n")
    by_reads = [s for s in ScanCounting.scans if not any(w in s for w in writers)]
    assert by_reads == [], by_reads[0]
    assert len(ScanCounting.scans) <= 3, ScanCounting.scans
    # and the drill-down says what an explanation over every record says
    store = runtime.consumer.store
    every = list(record_states(runtime.catalog, SQLiteStore.items(store)))
    now = int(time.time()) * 1000
    as_of = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1000))
    for metric, window, group in [
        ("won_revenue", month, ()),
        ("win_rate", year, ("owner_id", "u1")),
        ("won_revenue", year, ("account_id", "a3")),
    ]:
        items = [f"{group[0]}={group[1]}"] if group else []
        query = "&".join([f"metric={metric}", f"window={window}", *(f"group={g}" for g in items)])
        _status, got = await _get(base, "/explain?" + query + f"&as_of={as_of}")
        want = explain(runtime.catalog, every, metric, window, group, now, states=True)
        assert _status == 200, got
        assert got["value"] == want.value_row()["value"]
        assert got["contributions"] == [c.to_json() for c in want.contributions]
        assert got["contributions"], (metric, group)


BAD = [
    ("metric=nope&window=2026-03", "unknown metric"),
    ("metric=won_revenue&window=Q9", "window"),
    ("metric=win_rate&window=current", "no current window"),
    ("metric=won_revenue&window=2026-03&group=color=red", "grouped by"),
    ("metric=won_revenue&window=2026-03&group=owner_id", "FIELD=VALUE"),
    ("metric=won_revenue&window=2026-03&group=owner_id%3Du1&group=account_id%3Da1", "grouped by"),
    ("metric=won_revenue&window=2026-03&as_of=yesterday-ish", "as_of"),
    ("metric=won_revenue", "give metric and window"),
    ("window=2026-03", "give metric and window"),
    (f"metric={'m' * 6000}&window=2026-03", "unknown metric"),
    (f"metric=won_revenue&window={'9' * 6000}", "window"),
    (f"metric=won_revenue&window=2026-03&group=owner_id={'x' * 6000}", "at most"),
    (f"metric=won_revenue&window=2026-03&group={'f' * 6000}=1", "grouped by"),
    ("metric=%ED%A0%80&window=2026-03", "unknown metric"),  # a lone surrogate, UTF-8 encoded
    ("metric=won_revenue&window=%ED%A0%80", "window"),
    ("metric=won_revenue&window=2026-03&group=owner_id=%ED%A0%80", ""),
    ("metric=won_revenue&window=2026-03&group=%ED%A0%80=u1", "grouped by"),
    ("metric=won_revenue&window=2026-03&group=owner_id=%00", ""),
    ("metric=%FF%FE&window=%C0%80", "unknown metric"),  # not UTF-8 at all
]


async def test_explain_refuses_bad_questions_with_a_reason(
    served: tuple[EmbeddedRuntime, str],
) -> None:
    _runtime, base = served
    for query, why in BAD:
        status, body = await _get(base, "/explain?" + query)
        if why == "":  # a valid question about a group no record holds: its (empty) answer
            assert status == 200, (query, body)
            assert body["contributions"] == [], (query, body)
            continue
        assert 400 <= status < 500, (query[:80], status, body)
        assert isinstance(body, dict) and why in body["error"], (query[:80], body)
        assert len(body["error"]) < 2000  # says what is wrong without echoing it whole
    # a request line longer than the server reads: refused by the HTTP layer, 4xx
    status, _ = await _get(base, "/explain?metric=won_revenue&window=2026-03&group=" + "x" * 9000)
    assert 400 <= status < 500
    # the runtime is still answering
    status, _ = await _get(base, f"/explain?metric=won_revenue&window={quote('2026-03')}")
    assert status == 200
