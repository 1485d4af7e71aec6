"""``report`` and ``events``: what a deployment's runtime holds now, and its event log."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from typing import TextIO

from ..errors import ConfigError, ConfigProblem
from ..metrics import (
    Catalog,
    parse_window_spec,
    write_rows,
)
from ..metrics.formats import FORMATS
from ..metrics.report import MetricValue, Selection
from .options import _as_of, _config_option, _deployment


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
    from ..metrics.replay import collector_paused
    from ..streams.embedded import commands

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


def cmd_events_export(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..streams.embedded.commands import export_events

    count, skipped = export_events(_deployment(args.config, secrets=False), args.output, out)
    err.write(f"crm-pulse events export: {count} event(s)\n")
    if skipped:
        err.write(
            f"crm-pulse events export: {skipped} log entr{'y' if skipped == 1 else 'ies'} left "
            "out: not valid events (the runtime quarantines them; crm-pulse quarantine list)\n"
        )
    return 0


def cmd_events_compact(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..streams.embedded.commands import compact_events

    done = compact_events(_deployment(args.config, secrets=False))
    out.write(
        f"event log compacted: {done.deleted} superseded event(s) deleted, {done.kept} of "
        f"{done.scanned} applied event(s) kept\n"
    )
    return 0


def add_events(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
