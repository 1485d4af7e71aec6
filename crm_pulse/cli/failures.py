"""``quarantine`` and ``deadletters``: inputs that failed after they were accepted, and writes
that failed for good; list, show, retry or drop them."""

from __future__ import annotations

import argparse
import time
from typing import TextIO

from .options import _config_option, _deployment


def cmd_quarantine(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..streams.embedded.commands import state_file
    from ..streams.embedded.quarantine import run_command

    state = state_file(_deployment(args.config, secrets=False))
    now_ms = int(time.time() * 1000)
    return run_command(state, args.action, args.ids, all_entries=args.all, out=out, now_ms=now_ms)


def cmd_deadletters(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    deployment = _deployment(args.config, secrets=False)
    if deployment.runtime.kind == "faust":  # the workers keep them in Kafka
        from ..streams.faust.deadletters import run_command as run_faust

        return run_faust(deployment, args.action, args.ids, all_letters=args.all, out=out)
    from ..streams.embedded.commands import state_file
    from ..streams.writeback.deadletters import run_command

    state = state_file(deployment)
    return run_command(state, args.action, args.ids, all_letters=args.all, out=out)


def add_quarantine(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    quarantine = sub.add_parser(
        "quarantine",
        help="inputs that failed after they were accepted: list, show, retry or drop them",
    )
    quarantine.add_argument("action", choices=["list", "show", "retry", "drop"])
    quarantine.add_argument("ids", nargs="*", type=int, help="entry ids (see list)")
    quarantine.add_argument("--all", action="store_true", help="every entry")
    _config_option(quarantine)
    quarantine.set_defaults(run=cmd_quarantine)


def add_deadletters(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dead = sub.add_parser(
        "deadletters", help="writes that failed for good: list, retry or drop them"
    )
    dead.add_argument("action", choices=["list", "retry", "drop"])
    dead.add_argument("ids", nargs="*", type=int, help="dead letter ids (see list)")
    dead.add_argument("--all", action="store_true", help="every dead letter")
    _config_option(dead)
    dead.set_defaults(run=cmd_deadletters)
