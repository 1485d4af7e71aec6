"""``check``, ``doctor`` and ``audit``: the deployment file validated, tried against its CRMs, and
the written fields read back."""

from __future__ import annotations

import argparse
import asyncio
from typing import TextIO

from .options import _config_option, _deployment


def cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..config.check import run_check

    return run_check(args.config, out)


def cmd_doctor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..streams.doctor import doctor

    return asyncio.run(doctor(_deployment(args.config), out, timeout=args.timeout))


def cmd_audit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..streams.audit import audit

    return asyncio.run(audit(_deployment(args.config), out))


def add_check(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = sub.add_parser("check", help="validate a deployment file")
    _config_option(check)
    check.set_defaults(run=cmd_check)


def add_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="try the deployment against its CRMs: credentials, fields, webhooks, listen address",
    )
    _config_option(doctor)
    doctor.add_argument("--timeout", type=float, default=20.0, help="seconds per CRM check")
    doctor.set_defaults(run=cmd_doctor)


def add_audit(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser(
        "audit", help="read the written fields back from the CRMs and list the drift"
    )
    _config_option(audit)
    audit.set_defaults(run=cmd_audit)
