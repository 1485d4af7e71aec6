"""``run``, ``worker`` and ``backfill``: the runtimes started."""

from __future__ import annotations

import argparse
import asyncio
from typing import TextIO

from ..errors import ConfigError
from .options import _config_option, _deployment


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..streams.embedded import commands

    deployment = _deployment(args.config)
    if args.dry_run:
        asyncio.run(commands.dry_run(deployment, out))
        return 0
    if deployment.runtime.kind == "faust":
        from ..streams.faust import run_worker

        run_worker(deployment, edge=True)
        return 0
    from ..streams.logs import configure_logging, secret_values

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
    from ..streams.faust import run_worker

    run_worker(deployment, loglevel=args.loglevel)
    return 0


def cmd_backfill(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..streams.embedded import commands

    asyncio.run(commands.backfill(_deployment(args.config), out, progress=not args.no_progress))
    return 0


def add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def add_worker(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = sub.add_parser("worker", help="start a Faust worker (runtime.kind: faust)")
    _config_option(worker)
    worker.add_argument(
        "--loglevel",
        choices=["debug", "info", "warning", "error"],
        default="warning",
        help="Faust's log level (info shows rebalances and table recovery)",
    )
    worker.set_defaults(run=cmd_worker)


def add_backfill(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backfill = sub.add_parser("backfill", help="pull history through every source, then apply it")
    _config_option(backfill)
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar")
    backfill.set_defaults(run=cmd_backfill)
