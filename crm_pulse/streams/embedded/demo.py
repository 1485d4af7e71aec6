"""``crm-pulse demo``: sandbox CRMs, the embedded runtime, a live view, and a check at the end.

1. Start the sandbox (local HubSpot, Pipedrive, Salesforce, monday and Zoho CRM fakes with a year
   of one company's data).
2. Load the demo deployment (``crm_pulse/sandbox/demo.yaml``, package data) with the sandbox's
   addresses (keeping only the connectors and write-back rules of the CRMs ``--crms`` selects,
   all by default), provision the custom fields, and backfill every CRM with a progress bar.
3. Run the runtime (HTTP server, pollers, consumer, writers) while the sandbox makes live changes
   and delivers them as signed webhooks; show events/s, the metrics as they move and every field
   written back, until the time is up or Ctrl-C.
4. Drain, then check that every custom field in the sandbox CRMs equals what ``crm-pulse
   replay`` computes from the same events, and print the result (exit 1 if any differs).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from ...config import load_config_text
from ...config.models import Deployment
from ...connectors.provisioning import required_fields
from ...connectors.zoho.sink import MODULE as ZOHO_MODULES
from ...metrics import Engine
from ...metrics.decode import decode_event
from ...sandbox import Sandbox
from ..writeback import Planner
from .runtime import EmbeddedRuntime

__all__ = ["demo_config_path", "demo_crms", "run_demo", "sandbox_values", "select_crms"]


def demo_config_path() -> Path:
    """The demo deployment, shipped as package data (``crm_pulse/sandbox/demo.yaml``), so the
    demo runs from an installed wheel as from a checkout."""
    return Path(str(resources.files("crm_pulse.sandbox").joinpath("demo.yaml")))


def demo_crms() -> list[str]:
    """The CRMs the demo deployment connects (the connector kinds, in file order)."""
    data = yaml.safe_load(demo_config_path().read_text(encoding="utf-8"))
    return [next(iter(entry)) for entry in data.get("connectors") or []]


def select_crms(text: str, crms: set[str]) -> str:
    """The deployment file ``text`` with only the connectors, and the write-back rules aimed at
    connectors, of the CRMs named in ``crms``."""
    data = yaml.safe_load(text)
    data["connectors"] = [e for e in data.get("connectors") or [] if next(iter(e)) in crms]
    data["writeback"] = [
        r for r in data.get("writeback") or [] if r.get("target", {}).get("connector") in crms
    ]
    return str(yaml.safe_dump(data, sort_keys=False))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sandbox_values(
    sandbox: Sandbox, deployment: Deployment
) -> dict[tuple[str, str, str, str], Any]:
    """(connector, object, record, field) -> the value held now in the sandbox."""
    out: dict[tuple[str, str, str, str], Any] = {}
    for rule in deployment.writeback:
        t = rule.target
        if t.connector == "salesforce":
            for rid, row in sandbox.salesforce.records.get(t.object, {}).items():
                if row.get(t.field) is not None:
                    out[("salesforce", t.object, rid, t.field)] = float(row[t.field])
        elif t.connector == "hubspot":
            for rid, record in sandbox.hubspot.records[t.object].items():
                if t.field in record.properties:
                    value = record.properties[t.field]
                    out[("hubspot", t.object, rid, t.field)] = None if value == "" else float(value)
        elif t.connector == "monday":
            board = {"deal": "1000001", "account": "1000002"}[t.object]
            for rid in sandbox.monday.boards[board]["items"]:
                raw = sandbox.monday.value(rid, t.field)
                if raw is not None:
                    out[("monday", t.object, rid, t.field)] = float(raw)
        elif t.connector == "zoho":
            module = ZOHO_MODULES[t.object]
            for rid in sandbox.zoho.records[module]:
                value = sandbox.zoho.value(module, rid, t.field)
                if value is not None:
                    out[("zoho", t.object, rid, t.field)] = float(value)
        else:
            entity = {"organization": "organizations", "deal": "deals", "person": "persons"}[
                t.object
            ]
            for rid in sandbox.pipedrive.records[entity]:
                held: Any = sandbox.pipedrive.custom_value(entity, rid, t.field)
                if isinstance(held, dict):  # a monetary field: {"value", "currency"}
                    held = held.get("value")
                if held is not None:
                    out[("pipedrive", t.object, rid, t.field)] = float(held)
    return out


def expected_values(
    runtime: EmbeddedRuntime, as_of: int
) -> tuple[dict[tuple[str, str, str, str], Any], int]:
    """What replay of the runtime's event log says each written field should hold."""
    rows = runtime.db.call(
        lambda: [r[0] for r in runtime.db.conn.execute("SELECT body FROM events")]
    )
    deployment = runtime.deployment
    engine = Engine(deployment.catalog(), windows=deployment.window_specs())
    engine.advance(as_of)
    engine.apply_all(decode_event(r) for r in rows)
    planner = Planner(deployment.writeback, engine.catalog)
    out: dict[tuple[str, str, str, str], Any] = {}
    for w in planner.plan(engine.report(as_of, keep_null=True), as_of):
        out[(w.connector, w.object, w.record_id, w.field)] = (
            None if w.value is None else float(w.value)
        )
    return out, len(rows)


def _view(runtime: EmbeddedRuntime, sandbox: Sandbox, started: float, remaining: float) -> Group:
    status = runtime.status()
    head = Table.grid(padding=(0, 3))
    elapsed = max(time.monotonic() - started, 1e-6)
    head.add_row(
        f"[b]events[/b] {status['consumed_position']:,}",
        f"[b]events/s[/b] {runtime.consumed_events / elapsed:,.0f}",
        f"[b]webhooks[/b] {sandbox.stats.webhooks_sent}",
        f"[b]outbox[/b] {status['outbox_depth']}",
        f"[b]dead letters[/b] {status['dead_letters']}",
        f"[dim]{remaining:4.0f} s left (Ctrl-C ends)[/dim]",
    )
    metrics = Table(title="metrics as they move", expand=True)
    for col in ("metric", "window", "group", "value"):
        metrics.add_column(col)
    for change in runtime.recent_changes[-8:]:
        group = (
            ",".join(
                f"{k}={v}" for k, v in zip(change.group[0::2], change.group[1::2], strict=True)
            )
            or "company"
        )
        value = "null" if change.value is None else f"{float(change.value):,.4g}"
        metrics.add_row(change.metric, change.window.label, group, value)
    writes = Table(title="fields written back", expand=True)
    for col in ("crm", "record", "field", "value"):
        writes.add_column(col)
    recent = [(n, w) for n, wr in runtime.writers.items() for w in wr.stats.recent]
    recent.sort(key=lambda x: x[1]["at_ms"])  # type: ignore[arg-type, return-value]
    for name, w in recent[-8:]:
        writes.add_row(name, f"{w['object']} {w['record_id']}", str(w["field"]), str(w["value"]))
    return Group(Panel(head, title="crm-pulse demo"), metrics, writes)


_LABELS = {
    "hubspot": "HubSpot",
    "pipedrive": "Pipedrive",
    "salesforce": "Salesforce",
    "monday": "monday",
    "zoho": "Zoho CRM",
}


async def run_demo(
    out: TextIO, *, seconds: float = 20.0, live: bool = True, crms: list[str] | None = None
) -> int:
    console = Console(file=out, force_terminal=live and out.isatty(), width=110)
    known = demo_crms()
    chosen = set(crms or known)
    if not chosen <= set(known) or not chosen:
        console.print(
            f"[red]crm-pulse demo: --crms takes some of {', '.join(known)}; "
            f"not {', '.join(sorted(chosen - set(known))) or 'none'}[/red]"
        )
        return 2
    sandbox = Sandbox(live=chosen).start()
    tmp = tempfile.TemporaryDirectory(prefix="crm-pulse-demo-")
    port = _free_port()
    env = sandbox.environment(str(Path(tmp.name) / "demo.sqlite"), port)
    try:
        path = demo_config_path()
        text = select_crms(path.read_text(encoding="utf-8"), chosen)
        deployment = load_config_text(text, env=env, file=str(path), base_dir=path.parent)
        where = [
            f"{label} at {env[f'DEMO_{crm.upper()}_URL']}"
            for crm, label in _LABELS.items()
            if crm in chosen
        ]
        console.print(f"[b]sandbox[/b]: {', '.join(where)}")
        runtime = EmbeddedRuntime(deployment)
        for name, fields in required_fields(deployment).items():
            provisioner = runtime.connectors[name].provisioner
            if provisioner is not None:
                for line in await provisioner.create(await provisioner.missing(fields)):
                    console.print(f"  provision {name}: {line}")
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
        ) as bar:
            for name, poller in runtime.pollers.items():
                task = bar.add_task(f"backfill {name}", total=None)
                seen = 0

                def advance(n: int, task: Any = task, name: str = name) -> None:
                    nonlocal seen
                    seen += n
                    bar.update(task, description=f"backfill {name}: {seen:,} events")

                await poller.backfill(advance)
        stop = asyncio.Event()
        from ..http import serve_runtime

        run = asyncio.create_task(runtime.run(stop, serve=serve_runtime))
        while runtime.http_port == 0 and not run.done():
            await asyncio.sleep(0.05)
        trickle = asyncio.create_task(sandbox.trickle(f"http://127.0.0.1:{port}", stop))
        started = time.monotonic()
        deadline = started + seconds
        with (
            Live(
                _view(runtime, sandbox, started, seconds),
                console=console,
                refresh_per_second=4,
                transient=not live,
            ) as view,
            contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt),
        ):
            while time.monotonic() < deadline and not run.done():
                await asyncio.sleep(0.25)
                view.update(_view(runtime, sandbox, started, deadline - time.monotonic()))
        stop.set()
        await trickle
        # the runtime drains on stop: webhooks parsed, log consumed, outbox flushed
        # a last poll picks up anything a refused webhook left behind
        await run
        check_runtime = EmbeddedRuntime(deployment)
        for poller in check_runtime.pollers.values():
            await poller.poll_once()
        await check_runtime.consume_all()
        await check_runtime.tick()
        await check_runtime.flush_writes(drain=True)
        as_of = int(time.time() * 1000)
        want, events = expected_values(check_runtime, as_of)
        got = sandbox_values(sandbox, deployment)
        await check_runtime.close()
        wrong = {
            k: (got.get(k), v)
            for k, v in want.items()
            if v is not None and (got.get(k) is None or abs(got[k] - v) > 1e-6 * max(1.0, abs(v)))
        }
        console.print(
            f"\n[b]summary[/b]: {events:,} events, {sandbox.stats.changes} live changes "
            f"({sandbox.stats.webhooks_sent} webhooks acknowledged), "
            f"{sum(w.stats.written for w in runtime.writers.values())} field values written "
            f"in {sum(w.stats.calls for w in runtime.writers.values())} API calls"
        )
        checked = sum(1 for v in want.values() if v is not None)
        if wrong:
            console.print(f"[red]check: {len(wrong)} of {checked} fields differ from replay[/red]")
            for key, (g, w) in list(wrong.items())[:10]:
                console.print(f"  {key}: sandbox {g} != replay {w}")
            return 1
        console.print(
            f"[green]check: all {checked} custom fields in the sandbox CRMs equal `crm-pulse replay` on the same events[/green]"
        )
        return 0
    finally:
        sandbox.stop()
        tmp.cleanup()
