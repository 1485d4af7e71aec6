"""What ``crm-pulse run``, ``backfill`` and ``provision`` do, as async functions.

The CLI parses arguments and calls these; tests call them directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import re
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from ...config.models import Deployment
from ...connectors.provisioning import required_fields
from ...errors import ConfigError, ConfigProblem
from ...metrics.engine import Engine
from ...metrics.report import ALL, MetricValue, Selection
from ..writeback import Planner
from .checkpoints import events_after_checkpoint
from .consumer import Consumer
from .database import Database, StateError
from .rebuild import rebuild_due
from .retention import Compaction, compact_log
from .runtime import EmbeddedRuntime
from .state import SQLiteStore

__all__ = [
    "backfill",
    "compact_events",
    "current_state",
    "dry_run",
    "provision",
    "report",
    "report_rows",
    "run",
    "state_file",
]

ServeFactory = Callable[[EmbeddedRuntime], Any]


def _http_server() -> ServeFactory | None:
    """The HTTP server (webhooks, ingress, status), if this build has it."""
    try:
        module = importlib.import_module("crm_pulse.streams.http")
    except ImportError:  # pragma: no cover - the server ships with the package
        return None
    serve: ServeFactory = module.serve_runtime
    return serve


def state_file(deployment: Deployment) -> str:
    """The deployment's state file; ConfigError when it names a variable that is not set."""
    path = str(deployment.runtime.state_path)
    unresolved = re.search(r"\$\{([^}]*)\}", path)
    if unresolved:
        file = getattr(deployment, "_source_file", "") or ""
        raise ConfigError(
            [
                ConfigProblem(
                    "runtime.state_path",
                    f"environment variable {unresolved.group(1)} is not set",
                    file,
                )
            ]
        )
    return path


def report(deployment: Deployment, as_of: int) -> list[MetricValue]:
    """The metric values held in the deployment's state file (read only: nothing runs)."""
    return list(report_rows(deployment, as_of))


def report_rows(
    deployment: Deployment, as_of: int, select: Selection = ALL, *, for_people: bool = False
) -> Iterator[MetricValue]:
    """The rows ``select`` keeps, read from the deployment's state file (read only), one at a
    time: only the entries of the selected metrics' measures are read from the file (no
    record, no last reported value), so a report costs what it shows, not what the state
    holds. The state's shape is checked before the first row (:class:`StateError`)."""
    path = state_file(deployment)
    catalog = deployment.catalog()
    if (
        rebuild_due(path, catalog, deployment.window_specs()) is not None
        or events_after_checkpoint(path) > 0
    ):
        # built under other definitions: rebuilt from the log, in memory only (.rebuild); or
        # the log moved past the last checkpoint: loaded and caught up in memory (.checkpoints)
        return _rebuilt_rows(deployment, path, as_of, select, for_people)
    engine = Engine(catalog, windows=deployment.window_specs())  # to know the measures
    measures = engine.measures_for(select)
    db = Database(path, create=False)
    try:
        store = SQLiteStore()

        def load() -> int | None:
            try:
                store.load(
                    db.conn,
                    measures=() if measures is None else measures,
                    company_only=measures is not None and select.groups == (("company", ""),),
                )
            except Exception as exc:
                raise StateError(db.path, "table state", str(exc)[:200]) from None
            horizon = db.get_meta("horizon")
            return None if horizon is None else int(horizon)

        horizon = db.call(load)
    finally:
        db.close()
    engine = Engine(catalog, store, deployment.window_specs())
    if horizon is not None:
        engine.resume(horizon)
    return _checked(engine.iter_report(as_of, select=select, for_people=for_people), path)


def current_state(deployment: Deployment, path: str) -> Consumer:
    """The state of the whole log in memory, as a start builds it (nothing is written): the
    file's state, rebuilt from the log if it was built under other definitions (.rebuild), or
    with the log after its last checkpoint re-applied (.checkpoints)."""
    catalog = deployment.catalog()
    db = Database(path, create=False)
    try:
        return Consumer(
            db,
            catalog,
            deployment.window_specs(),
            Planner(deployment.writeback, catalog),
            debounce=0.0,
            clock=time.time,
            read_only=True,
        )
    finally:
        db.close()


def _rebuilt_rows(
    deployment: Deployment, path: str, as_of: int, select: Selection, for_people: bool
) -> Iterator[MetricValue]:
    """The rows of the state of the whole log, built in memory (:func:`current_state`)."""
    consumer = current_state(deployment, path)
    rows = consumer.engine.iter_report(as_of, select=select, for_people=for_people)
    return _checked(rows, path)


def _checked(rows: Iterator[MetricValue], path: str) -> Iterator[MetricValue]:
    """``rows``, with the first computed before anything is returned: a state of the wrong
    shape fails as a :class:`StateError` naming the file, before any output (and, should a
    later entry be the bad one, as one too, never a traceback)."""
    guarded = _guarded(rows, path)
    first = next(guarded, None)
    if first is None:
        return iter(())
    return itertools.chain((first,), guarded)


def _guarded(rows: Iterator[MetricValue], path: str) -> Iterator[MetricValue]:
    try:
        yield from rows
    except Exception as exc:
        raise StateError(
            path, "table state", f"the metric state is not usable ({exc!r})"[:300]
        ) from None


async def run(
    deployment: Deployment,
    *,
    duration: float | None = None,
    install_signals: bool = True,
    serve: ServeFactory | None = None,
) -> EmbeddedRuntime:
    """Run until SIGTERM/SIGINT (or ``duration`` seconds), then drain and exit cleanly.
    The HTTP server answers from the start; the state loads behind it (``/status`` says so)."""
    runtime = EmbeddedRuntime(deployment, defer_start=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    timer = loop.call_later(duration, stop.set) if duration is not None else None
    try:
        await runtime.run(stop, serve=serve if serve is not None else _http_server())
    finally:
        if timer is not None:
            timer.cancel()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    return runtime


def _scratch_copy(state: str, folder: str) -> str:
    """A copy of the state file (and its write-ahead log) in ``folder``, so that a dry run
    changes nothing on disk: not even opening the file, which would checkpoint its log."""
    import shutil
    from pathlib import Path

    copy = Path(folder) / "dry-run.sqlite"
    for suffix in ("", "-wal"):
        source = Path(state + suffix)
        if source.exists():
            shutil.copyfile(source, str(copy) + suffix)
    return str(copy)


async def missing_fields(runtime: EmbeddedRuntime, deployment: Deployment) -> list[str]:
    """``connector object.field`` of each target field the CRM does not have (read only)."""
    out = []
    for name, fields in required_fields(deployment).items():
        connector = runtime.connectors.get(name)
        if connector is None or connector.provisioner is None:
            continue
        for f in await connector.provisioner.missing(fields):
            out.append(f"{name} {f.object}.{f.name}")
    return out


async def dry_run(deployment: Deployment, out: TextIO) -> int:
    """Poll each source once, parse stored webhooks, consume, and print the writes that would
    be made (old -> new) without making them; on a scratch copy of the state file, so nothing
    on disk changes. Returns how many writes are pending."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="crm-pulse-dry-run-") as folder:
        state = _scratch_copy(str(deployment.runtime.state_path), folder)
        runtime = EmbeddedRuntime(deployment, state_path=state)
        try:
            for target in await missing_fields(runtime, deployment):
                out.write(
                    f"warning: {target} does not exist: writes to it would fail; "
                    "run `crm-pulse provision` first\n"
                )
            await runtime.load_config_events()
            for name, poller in runtime.pollers.items():
                n = await poller.poll_once()
                out.write(f"{name}: {n} event(s) polled\n")
            await runtime.inbox.process(limit=10_000)
            await runtime.consume_all()
            await runtime.tick()
            pending = runtime.pending_writes()
            if not pending:
                out.write("no field would be written: every value equals the last one written\n")
            for write, old in pending:
                out.write(
                    f"{write.connector} {write.object} {write.record_id} {write.field}: "
                    f"{'(never written)' if old is None else old} -> {write.value}\n"
                )
            out.write(
                f"{len(pending)} write(s) would be made; nothing was sent and nothing on disk "
                "changed (--dry-run)\n"
            )
            return len(pending)
        finally:
            await runtime.close()


def export_events(deployment: Deployment, output: str, out: TextIO) -> tuple[int, int]:
    """The runtime's event log as canonical JSONL to ``output`` (``-``: ``out``); read only.
    Returns the events written and the entries left out (not valid events: quarantined)."""
    from pathlib import Path

    from ...errors import ConfigError, ConfigProblem
    from .log import export_events as write_log

    state = str(deployment.runtime.state_path)
    if not Path(state).exists():
        raise ConfigError(
            [ConfigProblem("runtime.state_path", f"no state file at {state}: nothing to export")]
        )
    db = Database(state)
    try:
        if output == "-":
            return db.call(lambda: write_log(db.conn, out))
        with open(output, "w", encoding="utf-8") as f:
            return db.call(lambda: write_log(db.conn, f))
    finally:
        db.close()


def compact_events(deployment: Deployment) -> Compaction:
    """Compact the event log now (what ``runtime.event_log: {keep: latest}`` does as it
    runs; :mod:`.retention`), whatever its ``keep`` setting."""
    db = Database(state_file(deployment), create=False)
    try:
        catalog = deployment.catalog()
        return db.call(db.transaction(lambda conn: compact_log(conn, catalog)))
    finally:
        db.close()


async def backfill(deployment: Deployment, out: TextIO, *, progress: bool = True) -> int:
    """Pull history through every source, then apply it; the runtime continues from there."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    runtime = EmbeddedRuntime(deployment)
    total = 0
    try:
        await runtime.load_config_events()
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, disable=not progress, transient=False) as bar:
            for name, poller in runtime.pollers.items():
                task = bar.add_task(f"{name}: 0 events", total=None)
                count = 0

                def advance(n: int, task: Any = task, name: str = name) -> None:
                    nonlocal count
                    count += n
                    bar.update(task, description=f"{name}: {count} events")

                if poller.stats.backfilled:
                    out.write(f"{name}: backfill already complete; polling continues from it\n")
                    continue
                total += await poller.backfill(advance)
            applying = bar.add_task("applying to the metrics", total=None)
            await runtime.consume_all()
            bar.update(applying, description="applied to the metrics")
            await runtime.tick()
        out.write(
            f"backfilled {total} event(s) from {len(runtime.pollers)} source(s); "
            f"{len(runtime.pending_writes())} field write(s) queued for `crm-pulse run`\n"
        )
        return total
    finally:
        await runtime.close()


async def provision(deployment: Deployment, out: TextIO, *, dry_run: bool) -> int:
    """Make sure the custom fields the write-back rules need exist; returns how many are missing."""
    from .runtime import build_connectors

    connectors = build_connectors(deployment)
    missing_total = 0
    try:
        for name, fields in required_fields(deployment).items():
            connector = connectors.get(name)
            provisioner = connector.provisioner if connector is not None else None
            if provisioner is None:
                out.write(f"{name}: fields are not provisioned by this connector kind\n")
                continue
            missing = await provisioner.missing(fields)
            missing_total += len(missing)
            for f in fields:
                state = "missing" if f in missing else "exists"
                out.write(f"{name}: {f.object}.{f.name} ({f.unit}) {state}\n")
            if missing and not dry_run:
                for line in await provisioner.create(missing):
                    out.write(f"{name}: {line}\n")
    finally:
        for connector in connectors.values():
            with contextlib.suppress(Exception):
                await connector.aclose()
    return missing_total
