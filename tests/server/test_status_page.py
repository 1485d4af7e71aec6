"""The status page in headless Chromium: it loads, shows the engine's values, no secret."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

from crm_pulse.metrics.calendar import Window, WindowSpec
from crm_pulse.metrics.report import evaluate, json_number

from .conftest import StartRuntime
from .test_ingress_http import DEPLOY, SECRET, deal

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=8000",
    "--dump-dom",
]


async def test_status_page_shows_the_engine_values_and_no_secret(
    tmp_path: Path, embedded_server: StartRuntime
) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (scripts/ensure-chromium.sh installs it)"
    server = await embedded_server(DEPLOY)
    runtime, base = server.runtime, server.base
    await server.publish([deal(i, amount=str(100 * i)) for i in range(1, 6)])
    proc = await asyncio.create_subprocess_exec(
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        base + "/",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    dom_bytes, _ = await asyncio.wait_for(proc.communicate(), 90)
    dom = dom_bytes.decode()
    # the drill-down behind a value: its records, as JSON
    import aiohttp

    month = time.strftime("%Y-%m", time.gmtime())
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/explain?metric=won_revenue&window={month}") as r:
            assert r.status == 200
            drill = await r.json()
        async with http.get(f"{base}/explain?metric=won_revenue&window=Q9") as r:
            assert r.status == 400 and "window" in (await r.json())["error"]
        async with http.get(f"{base}/explain?metric=won_revenue") as r:
            assert r.status == 400
    assert 'data-ready="yes"' in dom, dom[:2000]
    now = int(time.time() * 1000)
    metric = runtime.catalog.metrics["won_revenue"]
    want = json_number(
        evaluate(
            runtime.catalog,
            runtime.consumer.engine,
            metric,
            (),
            Window(WindowSpec("month"), runtime.catalog.calendar.index_of("month", now)),
            now,
        )
    )
    assert want == 1500
    shown = re.search(r'data-metric="won_revenue".*?data-value="([^"]*)"', dom, re.S)
    assert shown, dom[dom.find('<table id="metrics"') :][:1500]
    assert float(shown.group(1)) == want
    assert "<svg" in dom and "Connectors" in dom and "events" in dom
    month = time.strftime("%Y-%m", time.gmtime())
    assert f'href="explain?metric=won_revenue&amp;window={month}"' in dom
    assert drill["value"] == want and drill["window"] == month
    assert sum(c["contribution"] for c in drill["contributions"]) == want
    assert len(drill["contributions"]) == 5
    assert SECRET not in dom
