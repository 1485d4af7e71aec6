"""``init`` and ``provision``: a deployment file written, and the CRM fields it needs created."""

from __future__ import annotations

import argparse
import asyncio
from typing import TextIO

from .options import _config_option, _deployment


def cmd_init(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..config.init import run_init, terminal_prompt

    return run_init(
        crms=args.crm,
        metrics=args.metrics,
        sandbox=args.sandbox,
        output=args.output,
        force=args.force,
        out=out,
        ask=None if args.no_input else terminal_prompt(),
    )


def cmd_provision(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..streams.embedded import commands

    missing = asyncio.run(commands.provision(_deployment(args.config), out, dry_run=args.dry_run))
    return 1 if args.dry_run and missing else 0


def add_init(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def add_provision(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    provision = sub.add_parser(
        "provision", help="create the custom fields the write-back rules need"
    )
    _config_option(provision)
    provision.add_argument(
        "--dry-run", action="store_true", help="list the fields and which are missing"
    )
    provision.set_defaults(run=cmd_provision)
