"""``demo`` and ``sandbox``: the sandbox CRMs served, alone or with the runtime and a live view."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import TextIO


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..streams.embedded.demo import run_demo

    crms = [c.strip() for c in args.crms.split(",") if c.strip()] if args.crms else None
    return asyncio.run(run_demo(out, seconds=args.seconds, live=not args.no_live, crms=crms))


def cmd_sandbox(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ..sandbox import Sandbox
    from ..streams.embedded.demo import demo_config_path

    sandbox = Sandbox().start()
    if args.env_file:
        from ..config.init import write_env_file

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


def add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def add_sandbox(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
