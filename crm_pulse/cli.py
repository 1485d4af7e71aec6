"""The ``crm-pulse`` command.

Every failure a user can cause (a bad file, a bad option, bad data in strict mode) ends with a
one-paragraph message on stderr and a non-zero exit code, never a traceback:
0 success, 1 bad data in ``--strict`` mode, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, TextIO

from .errors import ConfigError, ConfigProblem, CrmPulseError, DataError
from .metrics import (
    DEFAULT_WINDOWS,
    Catalog,
    Event,
    LineError,
    WindowSpec,
    build_catalog,
    parse_time,
    parse_window_spec,
    read_events_file,
    write_rows,
)
from .metrics.formats import FORMATS
from .metrics.report import MetricValue, Selection

if TYPE_CHECKING:
    from .config.models import Deployment

__all__ = ["main"]


def _as_of(text: str | None) -> int:
    if text is None:
        return int(time.time() * 1000)
    value = text.strip()
    if len(value) == 10:  # a date: its start in UTC
        value += "T00:00:00Z"
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ConfigError(f"--as-of: {exc}") from None


def _windows(extra: Sequence[str]) -> tuple[WindowSpec, ...]:
    specs = list(DEFAULT_WINDOWS)
    for text in extra:
        try:
            spec = parse_window_spec(text)
        except ValueError as exc:
            raise ConfigError(f"--window: {exc}") from None
        if spec not in specs:
            specs.append(spec)
    return tuple(specs)


def _catalog_and_events(config: str | None) -> tuple[Catalog, list[Event]]:
    if config is None:
        return build_catalog(), []
    from .config import load_config

    deployment = load_config(config, resolve_secrets=False)
    return deployment.catalog(), deployment.config_events()


def cmd_replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .metrics.replay import collector_paused, replay_file

    windows = _windows(args.window)
    as_of = _as_of(args.as_of)
    catalog, config_events = _catalog_and_events(args.config)
    errors: list[LineError] = []
    try:
        engine = replay_file(
            catalog,
            args.events,
            as_of,
            windows=windows,
            config_events=config_events,
            strict=args.strict,
            errors=errors,
            records=False,  # read once, for the report: no record state needed
        )
    except DataError as exc:
        err.write(f"crm-pulse replay: {args.events}: {exc}\n")
        return 1
    people = args.format != "jsonl"
    with collector_paused():
        rows = engine.iter_report(as_of, for_people=people)
        write_rows(catalog, rows, args.format, out, presorted=people)
    if errors:
        for e in errors[:20]:
            err.write(f"{args.events}: {e}\n")
        more = " (first 20 shown)" if len(errors) > 20 else ""
        err.write(f"crm-pulse replay: skipped {len(errors)} bad line(s){more}\n")
    return 0


def cmd_explain(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .metrics.explain import explain, parse_group, write_explanation

    as_of = _as_of(args.as_of)
    try:
        group = parse_group(args.group)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        if args.events is None:  # a running deployment's state: its file found as usual
            from .config.discovery import find_config
            from .streams.explain import explain_deployment

            config = find_config(args.config)
            explanation = explain_deployment(
                _deployment(config, secrets=False), args.metric, args.window, group, as_of
            )
        else:
            catalog, config_events = _catalog_and_events(args.config)
            errors: list[LineError] = []
            try:
                events = [
                    *config_events,
                    *read_events_file(args.events, strict=args.strict, errors=errors),
                ]
            except DataError as exc:
                err.write(f"crm-pulse explain: {args.events}: {exc}\n")
                return 1
            explanation = explain(catalog, events, args.metric, args.window, group, as_of)
            if errors:
                err.write(
                    f"crm-pulse explain: skipped {len(errors)} bad line(s) of {args.events}\n"
                )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    write_explanation(explanation, args.format, out)
    return 0


def cmd_catalog(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    catalog, _ = _catalog_and_events(args.config)
    by_category: dict[str, list[str]] = {}
    for metric in catalog.metrics.values():
        groups = ", ".join("{}" if not g else "+".join(g) for g in metric.definition.groups)
        kind = "current" if metric.is_current else metric.definition.windows
        line = (
            f"  {metric.name:<27} {metric.definition.unit:<6} {kind:<9} groups: {groups}\n"
            f"      = {metric.expression.text}\n      {metric.definition.description}\n"
        )
        by_category.setdefault(metric.category, []).append(line)
    for category, lines in by_category.items():
        out.write(f"\n{category.upper()}\n")
        out.writelines(lines)
    return 0


def cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .config.check import run_check

    return run_check(args.config, out)


def _deployment(path: str, *, secrets: bool = True) -> Deployment:
    from .config import load_config

    return load_config(path, resolve_secrets=secrets)


def cmd_doctor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .streams.doctor import doctor

    return asyncio.run(doctor(_deployment(args.config), out, timeout=args.timeout))


def cmd_audit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .streams.audit import audit

    return asyncio.run(audit(_deployment(args.config), out))


def cmd_events_export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .streams.embedded.commands import export_events

    count, skipped = export_events(_deployment(args.config, secrets=False), args.output, out)
    err.write(f"crm-pulse events export: {count} event(s)\n")
    if skipped:
        err.write(
            f"crm-pulse events export: {skipped} log entr{'y' if skipped == 1 else 'ies'} left "
            "out: not valid events (the runtime quarantines them; crm-pulse quarantine list)\n"
        )
    return 0


def cmd_events_compact(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .streams.embedded.commands import compact_events

    done = compact_events(_deployment(args.config, secrets=False))
    out.write(
        f"event log compacted: {done.deleted} superseded event(s) deleted, {done.kept} of "
        f"{done.scanned} applied event(s) kept\n"
    )
    return 0


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .streams.embedded import commands

    deployment = _deployment(args.config)
    if args.dry_run:
        asyncio.run(commands.dry_run(deployment, out))
        return 0
    if deployment.runtime.kind == "faust":
        from .streams.faust import run_worker

        run_worker(deployment, edge=True)
        return 0
    from .streams.logs import configure_logging, secret_values

    rt = deployment.runtime
    configure_logging(rt.log_level, rt.log_format, secret_values(deployment))
    asyncio.run(commands.run(deployment, duration=args.duration))
    return 0


def cmd_worker(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    deployment = _deployment(args.config)
    if deployment.runtime.kind != "faust":
        raise ConfigError(
            f"{args.config}: runtime.kind is {deployment.runtime.kind!r}; a worker needs kind: faust"
        )
    from .streams.faust import run_worker

    run_worker(deployment, loglevel=args.loglevel)
    return 0


def _selection(catalog: Catalog, args: argparse.Namespace) -> Selection:
    """``--metric``, ``--window``, ``--group`` as a report :class:`Selection`; every unknown
    name in one error."""
    problems: list[ConfigProblem] = []
    goals = {g.name for g in catalog.definitions.goals}
    for name in args.metric or ():
        base = name.split(".")[0] if name.endswith((".progress", ".pace")) else name
        if name not in catalog.metrics and base not in goals:
            problems.append(
                ConfigProblem(f"--metric {name}", "no such metric or goal (crm-pulse catalog)")
            )
    for text in args.window or ():
        try:
            parse_window_spec(text)
            continue
        except ValueError:
            pass
        if text == "current" or text.startswith("last_"):
            continue
        try:
            catalog.calendar.parse_label(text)
        except ValueError as exc:
            problems.append(
                ConfigProblem(
                    f"--window {text}",
                    "expected a kind (month, quarter, year, day, week, rolling:30d, current) "
                    f"or a label ({exc})",
                )
            )
    groups: list[tuple[str, str]] = []
    for text in args.group or ():
        if text == "company":
            groups.append(("company", ""))
            continue
        field, sep, value = text.partition("=")
        if not sep or not field.strip():
            problems.append(ConfigProblem(f"--group {text}", "expected FIELD=VALUE (or company)"))
            continue
        groups.append((field.strip(), value))
    if ("company", "") in groups and len(groups) > 1:
        problems.append(
            ConfigProblem("--group company", "company-wide rows have no other group field")
        )
    if problems:
        raise ConfigError(problems)
    labels = set()
    for text in args.window or ():
        try:  # a label as the report writes it (FY labels of a fiscal calendar)
            labels.add(catalog.calendar.parse_label(text).label)
        except ValueError:
            labels.add(text)
    return Selection(frozenset(args.metric or ()), frozenset(labels), tuple(groups))


def cmd_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .metrics.replay import collector_paused
    from .streams.embedded import commands

    deployment = _deployment(args.config, secrets=False)
    catalog = deployment.catalog()
    select = _selection(catalog, args)
    people = args.format != "jsonl"
    written = 0

    def counted(rows: Iterable[MetricValue]) -> Iterator[MetricValue]:
        nonlocal written
        for row in rows:
            written += 1
            yield row

    with collector_paused():
        rows = commands.report_rows(deployment, _as_of(args.as_of), select, for_people=people)
        write_rows(catalog, counted(rows), args.format, out, presorted=people)
    if not written and (args.metric or args.window or args.group):
        asked = " ".join(
            [f"--metric {m}" for m in args.metric or ()]
            + [f"--window {w}" for w in args.window or ()]
            + [f"--group {g}" for g in args.group or ()]
        )
        err.write(
            f"no value matches {asked}: the state holds none for this selection (a metric has"
            " values only in the windows it is computed for and the groups that have data;"
            " `crm-pulse report --metric NAME` lists all of a metric's)\n"
        )
    return 0


def cmd_backfill(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .streams.embedded import commands

    asyncio.run(commands.backfill(_deployment(args.config), out, progress=not args.no_progress))
    return 0


def cmd_provision(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .streams.embedded import commands

    missing = asyncio.run(commands.provision(_deployment(args.config), out, dry_run=args.dry_run))
    return 1 if args.dry_run and missing else 0


def cmd_quarantine(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .streams.embedded.commands import state_file
    from .streams.embedded.quarantine import run_command

    state = state_file(_deployment(args.config, secrets=False))
    now_ms = int(time.time() * 1000)
    return run_command(state, args.action, args.ids, all_entries=args.all, out=out, now_ms=now_ms)


def cmd_deadletters(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    deployment = _deployment(args.config, secrets=False)
    if deployment.runtime.kind == "faust":  # the workers keep them in Kafka
        from .streams.faust.deadletters import run_command as run_faust

        return run_faust(deployment, args.action, args.ids, all_letters=args.all, out=out)
    from .streams.embedded.commands import state_file
    from .streams.writeback.deadletters import run_command

    state = state_file(deployment)
    return run_command(state, args.action, args.ids, all_letters=args.all, out=out)


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .streams.embedded.demo import run_demo

    crms = [c.strip() for c in args.crms.split(",") if c.strip()] if args.crms else None
    return asyncio.run(run_demo(out, seconds=args.seconds, live=not args.no_live, crms=crms))


def cmd_sandbox(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .sandbox import Sandbox
    from .streams.embedded.demo import demo_config_path

    sandbox = Sandbox().start()
    if args.env_file:
        from .config.init import write_env_file

        write_env_file(args.env_file, sandbox.crm_environment())
        out.write(
            "sandbox CRMs are serving (HubSpot, Pipedrive, Salesforce, monday, Zoho CRM on "
            "127.0.0.1); "
            f"their addresses and credentials are in {args.env_file} for `crm-pulse init "
            "--sandbox`. Ctrl-C stops them.\n"
        )
    else:
        env = sandbox.environment("./demo.sqlite", args.port)
        out.write(f"sandbox CRMs are serving; for {demo_config_path()} set:\n")
        for key, value in env.items():
            out.write(f"export {key}={value}\n")
    out.flush()
    try:
        time.sleep(args.seconds) if args.seconds else signal_wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


def signal_wait() -> None:
    import signal as _signal

    _signal.sigwait({_signal.SIGINT, _signal.SIGTERM})


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help="the deployment YAML file (default: $CRM_PULSE_CONFIG, then ./crm-pulse.yaml)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crm-pulse")
    except PackageNotFoundError:  # pragma: no cover - a checkout without an install
        return "unknown"


def cmd_init(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .config.init import run_init, terminal_prompt

    return run_init(
        crms=args.crm,
        metrics=args.metrics,
        sandbox=args.sandbox,
        output=args.output,
        force=args.force,
        out=out,
        ask=None if args.no_input else terminal_prompt(),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crm-pulse",
        description="Live RevOps metrics from CRM change events, written back to the CRM.",
    )
    parser.add_argument("--version", action="version", version=f"crm-pulse {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser(
        "init",
        help="write a commented deployment file for your CRMs and metrics",
        description="Write a deployment file; asks for what the options leave open when run "
        "in a terminal.",
    )
    init.add_argument(
        "--crm",
        action="append",
        default=[],
        help="hubspot, pipedrive, salesforce, monday or zoho (comma-separated, repeatable)",
    )
    init.add_argument(
        "--metrics", action="append", default=[], help="comma-separated metric names to write"
    )
    init.add_argument(
        "--sandbox",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="point the connectors at the sandbox CRMs (crm-pulse sandbox)",
    )
    init.add_argument("--output", "-o", default="crm-pulse.yaml", help="file to write (- : stdout)")
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.add_argument("--no-input", action="store_true", help="never prompt")
    init.set_defaults(run=cmd_init)

    replay = sub.add_parser(
        "replay",
        help="compute every metric from a JSONL file of canonical events (the oracle)",
        description="Compute every built-in (and configured) metric from canonical events.",
    )
    replay.add_argument("events", help="JSONL file of canonical events (metrics-spec section 1)")
    replay.add_argument("--as-of", help="ISO time or date the report is for (default: now)")
    replay.add_argument("--format", choices=FORMATS, default="jsonl")
    replay.add_argument(
        "--window",
        action="append",
        default=[],
        help="add a window kind: day, week, year or rolling:<N>d (month and quarter are always "
        "reported)",
    )
    replay.add_argument("--config", help="deployment file: user metrics, quotas, spend, time zone")
    replay.add_argument("--strict", action="store_true", help="stop at the first bad line")
    replay.set_defaults(run=cmd_replay)

    explain = sub.add_parser(
        "explain",
        help="which records make a number: each record's contribution, and the value",
        description="Per measure of the metric, each record with its contribution, and the "
        "value they make. From an events file, or (--config without a file) from that "
        "deployment's state.",
    )
    explain.add_argument("events", nargs="?", help="JSONL file of canonical events")
    explain.add_argument("--metric", required=True, help="a metric name (crm-pulse catalog)")
    explain.add_argument(
        "--window", required=True, help="2026-03, 2026-Q1, 2026, FY2026-Q1, last_30d or current"
    )
    explain.add_argument(
        "--group", action="append", default=[], metavar="FIELD=VALUE", help="e.g. owner_id=u3"
    )
    explain.add_argument("--as-of", help="ISO time or date (default: now)")
    explain.add_argument("--config", help="deployment file (alone: read its state)")
    explain.add_argument("--format", choices=("jsonl", "table"), default="table")
    explain.add_argument("--strict", action="store_true", help="stop at the first bad line")
    explain.set_defaults(run=cmd_explain)

    catalog = sub.add_parser("catalog", help="list the metrics with their definitions")
    catalog.add_argument("--config", help="deployment file with user-defined metrics")
    catalog.set_defaults(run=cmd_catalog)

    check = sub.add_parser("check", help="validate a deployment file")
    _config_option(check)
    check.set_defaults(run=cmd_check)

    doctor = sub.add_parser(
        "doctor",
        help="try the deployment against its CRMs: credentials, fields, webhooks, listen address",
    )
    _config_option(doctor)
    doctor.add_argument("--timeout", type=float, default=20.0, help="seconds per CRM check")
    doctor.set_defaults(run=cmd_doctor)

    audit = sub.add_parser(
        "audit", help="read the written fields back from the CRMs and list the drift"
    )
    _config_option(audit)
    audit.set_defaults(run=cmd_audit)

    events = sub.add_parser("events", help="the runtime's event log")
    events_sub = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    export = events_sub.add_parser(
        "export", help="write the event log as canonical JSONL (crm-pulse replay reads it)"
    )
    _config_option(export)
    export.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    export.set_defaults(run=cmd_events_export)
    compact = events_sub.add_parser(
        "compact",
        help="delete the applied events that no longer decide a record's state, now "
        "(runtime.event_log; export | replay still equals report)",
    )
    _config_option(compact)
    compact.set_defaults(run=cmd_events_compact)

    run = sub.add_parser(
        "run",
        help="run a deployment: receive and poll events, keep the metrics, write them back",
        description="Run until SIGTERM or Ctrl-C, then drain in-flight work and exit.",
    )
    _config_option(run)
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="poll once, compute, print the field writes (old -> new) and write nothing",
    )
    run.add_argument(
        "--for", dest="duration", type=float, help="stop (cleanly) after this many seconds"
    )
    run.set_defaults(run=cmd_run)

    worker = sub.add_parser("worker", help="start a Faust worker (runtime.kind: faust)")
    _config_option(worker)
    worker.add_argument(
        "--loglevel",
        choices=["debug", "info", "warning", "error"],
        default="warning",
        help="Faust's log level (info shows rebalances and table recovery)",
    )
    worker.set_defaults(run=cmd_worker)

    report = sub.add_parser(
        "report", help="print the metrics a deployment's runtime holds now (from its state file)"
    )
    _config_option(report)
    report.add_argument("--as-of", help="ISO time or date the report is for (default: now)")
    report.add_argument("--format", choices=FORMATS, default="jsonl")
    report.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="only this metric (or goal); repeat for more",
    )
    report.add_argument(
        "--window",
        action="append",
        metavar="W",
        help="only this window kind (month, quarter, year, rolling:30d, current) or label "
        "(2026-03, 2026-Q2, 2026, last_30d); repeat for more",
    )
    report.add_argument(
        "--group",
        action="append",
        metavar="FIELD=VALUE",
        help="only groups with this value (owner_id=u3); repeat: all must hold; "
        "'company': company-wide rows only",
    )
    report.set_defaults(run=cmd_report)

    backfill = sub.add_parser("backfill", help="pull history through every source, then apply it")
    _config_option(backfill)
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar")
    backfill.set_defaults(run=cmd_backfill)

    provision = sub.add_parser(
        "provision", help="create the custom fields the write-back rules need"
    )
    _config_option(provision)
    provision.add_argument(
        "--dry-run", action="store_true", help="list the fields and which are missing"
    )
    provision.set_defaults(run=cmd_provision)

    quarantine = sub.add_parser(
        "quarantine",
        help="inputs that failed after they were accepted: list, show, retry or drop them",
    )
    quarantine.add_argument("action", choices=["list", "show", "retry", "drop"])
    quarantine.add_argument("ids", nargs="*", type=int, help="entry ids (see list)")
    quarantine.add_argument("--all", action="store_true", help="every entry")
    _config_option(quarantine)
    quarantine.set_defaults(run=cmd_quarantine)

    dead = sub.add_parser(
        "deadletters", help="writes that failed for good: list, retry or drop them"
    )
    dead.add_argument("action", choices=["list", "retry", "drop"])
    dead.add_argument("ids", nargs="*", type=int, help="dead letter ids (see list)")
    dead.add_argument("--all", action="store_true", help="every dead letter")
    _config_option(dead)
    dead.set_defaults(run=cmd_deadletters)

    demo = sub.add_parser(
        "demo", help="sandbox CRMs + the runtime + a live view, checked against replay"
    )
    demo.add_argument("--seconds", type=float, default=20.0, help="how long the live part runs")
    demo.add_argument("--no-live", action="store_true", help="no live view (logs and CI)")
    demo.add_argument(
        "--crms",
        help="comma-separated CRMs to include (hubspot,pipedrive,salesforce,monday,zoho; "
        "default: all)",
    )
    demo.set_defaults(run=cmd_demo)

    sandbox = sub.add_parser(
        "sandbox",
        help="serve the seeded sandbox CRMs (HubSpot, Pipedrive, Salesforce, monday, Zoho CRM)",
    )
    sandbox.add_argument("--seconds", type=float, default=0.0, help="stop after (0: until Ctrl-C)")
    sandbox.add_argument("--port", type=int, default=8080, help="the runtime port to print")
    sandbox.add_argument(
        "--env-file", help="write the variables of `crm-pulse init --sandbox` files here (.env)"
    )
    sandbox.set_defaults(run=cmd_sandbox)
    return parser


_DISCOVERS_CONFIG = {
    "audit",
    "backfill",
    "check",
    "deadletters",
    "doctor",
    "events",
    "provision",
    "quarantine",
    "report",
    "run",
    "worker",
}


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of the ``crm-pulse`` console script; returns the exit code."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    args = _parser().parse_args(argv)
    try:
        if args.command in _DISCOVERS_CONFIG:
            from .config.discovery import find_config

            args.config = find_config(args.config)
        code: int = args.run(args, out, err)
    except ConfigError as exc:
        err.write(f"crm-pulse {args.command}: configuration error\n{exc}\n")
        return 2
    except CrmPulseError as exc:
        err.write(f"crm-pulse {args.command}: {exc}\n")
        return 2
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
