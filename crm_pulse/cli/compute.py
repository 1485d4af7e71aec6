"""``replay``, ``explain`` and ``catalog``: the metrics computed from a file of canonical events
(or, for ``explain``, a deployment's state), and the metrics there are."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TextIO

from ..errors import ConfigError, DataError
from ..metrics import (
    DEFAULT_WINDOWS,
    Catalog,
    Event,
    LineError,
    WindowSpec,
    build_catalog,
    parse_window_spec,
    read_events_file,
    write_rows,
)
from ..metrics.formats import FORMATS
from .options import _as_of, _deployment


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
    from ..config import load_config

    deployment = load_config(config, resolve_secrets=False)
    return deployment.catalog(), deployment.config_events()


def cmd_replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..metrics.replay import collector_paused, replay_file

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
    from ..metrics.explain import explain, parse_group, write_explanation

    as_of = _as_of(args.as_of)
    try:
        group = parse_group(args.group)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        if args.events is None:  # a running deployment's state: its file found as usual
            from ..config.discovery import find_config
            from ..streams.explain import explain_deployment

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


def add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def add_explain(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def add_catalog(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    catalog = sub.add_parser("catalog", help="list the metrics with their definitions")
    catalog.add_argument("--config", help="deployment file with user-defined metrics")
    catalog.set_defaults(run=cmd_catalog)
