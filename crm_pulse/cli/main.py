"""The command table and ``main``, the entry point of the ``crm-pulse`` console script."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from ..errors import ConfigError, CrmPulseError
from . import bootstrap, checks, compute, failures, runtime, sandbox, state


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crm-pulse")
    except PackageNotFoundError:  # pragma: no cover - a checkout without an install
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crm-pulse",
        description="Live RevOps metrics from CRM change events, written back to the CRM.",
    )
    parser.add_argument("--version", action="version", version=f"crm-pulse {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bootstrap.add_init(sub)
    compute.add_replay(sub)
    compute.add_explain(sub)
    compute.add_catalog(sub)
    checks.add_check(sub)
    checks.add_doctor(sub)
    checks.add_audit(sub)
    state.add_events(sub)
    runtime.add_run(sub)
    runtime.add_worker(sub)
    state.add_report(sub)
    runtime.add_backfill(sub)
    bootstrap.add_provision(sub)
    failures.add_quarantine(sub)
    failures.add_deadletters(sub)
    sandbox.add_demo(sub)
    sandbox.add_sandbox(sub)
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
            from ..config.discovery import find_config

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
