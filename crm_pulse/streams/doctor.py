"""``crm-pulse doctor``: try a deployment against its CRMs and say what to fix, line by line.

Each line is a check with ``ok``, ``warn`` or ``FAIL`` and, when it is not ok, what to do:

* per connector: the CRM answers with these credentials and the read permissions work (the
  first page of an incremental read, then each optional permission the source goes on without,
  such as HubSpot's owners scope), every write-back target field exists (or ``provision``
  would create it; a target the CRM cannot hold at all fails), webhook secrets are set;
* the listen address (and ``ops_listen``) is free, and the state file's directory is writable.

Nothing is written to a CRM and no state file is created. Exit 1 if any line failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

from ..config.models import ConnectorSettings, Deployment
from ..connectors.protocols import Connector, FieldSpec
from ..connectors.provisioning import required_fields
from ..errors import ConfigError, CrmPulseError, FatalError, RateLimited
from .embedded.rebuild import rebuild_due
from .embedded.runtime import build_connectors

__all__ = ["Check", "doctor", "listen_problem"]

Status = Literal["ok", "warn", "FAIL"]


@dataclass(frozen=True)
class Check:
    status: Status
    subject: str
    detail: str
    todo: str = ""

    def line(self) -> str:
        mark = {"ok": "ok  ", "warn": "warn", "FAIL": "FAIL"}[self.status]
        text = f"[{mark}] {self.subject}: {self.detail}"
        return f"{text}\n         -> {self.todo}" if self.todo else text


def listen_problem(host: str, port: int) -> str | None:
    """Why the HTTP server could not listen on ``host:port`` (None: it can)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"{host}:{port} is already in use by another process"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


async def _first_page(connector: Connector, timeout: float) -> int:
    assert connector.source is not None
    pages = connector.source.poll(None)
    try:
        async with asyncio.timeout(timeout):
            async for page in pages:
                return len(page.events)
    finally:
        if isinstance(pages, AsyncGenerator):  # stop the read here
            with contextlib.suppress(Exception):
                await pages.aclose()
    return 0


async def _access_checks(name: str, connector: Connector, timeout: float) -> list[Check]:
    """The optional permissions, once reading works (a bad token fails them all anyway)."""
    if connector.access is None:
        return []
    try:
        async with asyncio.timeout(timeout):
            found = await connector.access.check()
    except TimeoutError:
        return [Check("FAIL", name, f"no answer within {timeout:.0f} s", "check the network")]
    except CrmPulseError as exc:
        return [Check("FAIL", name, str(exc), _todo_for(exc))]
    return [
        Check("ok" if a.ok else "FAIL", f"{name} {a.what}", a.detail, "" if a.ok else a.todo)
        for a in found
    ]


def _todo_for(exc: CrmPulseError) -> str:
    if isinstance(exc, FatalError):
        return "fix the credentials or permissions named above, then run doctor again"
    if isinstance(exc, RateLimited):
        return "the CRM is rate limiting this account; try again later"
    return "check the URL and that the CRM is reachable from this machine"


async def _connector_checks(
    name: str, connector: Connector, fields: list[FieldSpec], timeout: float
) -> list[Check]:
    out: list[Check] = []
    if connector.source is not None:
        try:
            n = await _first_page(connector, timeout)
            out.append(
                Check(
                    "ok",
                    name,
                    f"credentials accepted; reading works ({n} record(s) on the first page)",
                )
            )
            out += await _access_checks(name, connector, timeout)
        except TimeoutError:
            out.append(
                Check(
                    "FAIL",
                    name,
                    f"no answer within {timeout:.0f} s",
                    "check the URL and the network",
                )
            )
        except CrmPulseError as exc:
            out.append(Check("FAIL", name, str(exc), _todo_for(exc)))
    if fields:
        provisioner = connector.provisioner
        if provisioner is None:
            out.append(
                Check(
                    "warn",
                    name,
                    f"{len(fields)} target field(s) cannot be checked by this connector kind",
                )
            )
        else:
            try:
                missing = await provisioner.missing(fields)
            except ConfigError as exc:
                for p in exc.problems:
                    out.append(
                        Check("FAIL", f"{name} target", p.message, "change the rule's target")
                    )
            except CrmPulseError as exc:
                out.append(Check("FAIL", f"{name} fields", str(exc), _todo_for(exc)))
            else:
                unfit: dict[tuple[str, str], str] = {}
                if connector.type_checker is not None:
                    try:
                        unfit = await connector.type_checker.unfit(fields)
                    except CrmPulseError as exc:
                        out.append(Check("FAIL", f"{name} fields", str(exc), _todo_for(exc)))
                for f in fields:
                    where = f"{f.object}.{f.name} ({f.unit})"
                    why = unfit.get((f.object, f.name))
                    if why is not None:
                        out.append(
                            Check(
                                "FAIL",
                                f"{name} field",
                                f"{where} is {why}: the value cannot be written to it",
                                "point the rule at another field, or change this field's type "
                                "to a number in the CRM",
                            )
                        )
                        continue
                    if f in missing:
                        out.append(
                            Check(
                                "warn",
                                f"{name} field",
                                f"{where} does not exist yet",
                                "`crm-pulse provision` creates it",
                            )
                        )
                    else:
                        out.append(Check("ok", f"{name} field", f"{where} exists"))
    settings = connector.settings
    hint = settings.webhook_hint() if isinstance(settings, ConnectorSettings) else None
    if hint is not None:
        out.append(
            Check("warn", name, "no webhook secret set: changes arrive by polling only", hint)
        )
    elif connector.receiver is not None:
        out.append(Check("ok", name, f"webhooks accepted at {connector.receiver.path}"))
    return out


async def doctor(deployment: Deployment, out: TextIO, *, timeout: float = 20.0) -> int:
    """Print the checklist; returns 0 when nothing failed, else 1."""
    checks: list[Check] = []
    connectors = build_connectors(deployment)
    needed = required_fields(deployment)
    try:
        for name, connector in connectors.items():
            lines = await _connector_checks(name, connector, needed.get(name, []), timeout)
            for check in lines:
                out.write(check.line() + "\n")
            checks += lines
    finally:
        for connector in connectors.values():
            with contextlib.suppress(Exception):
                await connector.aclose()
    rt = deployment.runtime
    problem = listen_problem(rt.host, rt.port)
    local = [
        Check("ok", "listen", f"{rt.listen} is free")
        if problem is None
        else Check("FAIL", "listen", problem, "stop the other process or change runtime.listen")
    ]
    if rt.ops_listen is not None:  # the operations endpoints on their own address
        host, _, port = rt.ops_listen.rpartition(":")
        problem = listen_problem(host[1:-1] if host.startswith("[") else host, int(port))
        local.append(
            Check("ok", "ops_listen", f"{rt.ops_listen} is free")
            if problem is None
            else Check(
                "FAIL", "ops_listen", problem, "stop the other process or change runtime.ops_listen"
            )
        )
    state = Path(rt.state_path)
    folder = state.parent if state.parent != Path("") else Path(".")
    if state.exists():
        local.append(Check("ok", "state", f"{state} exists (the runtime continues from it)"))
        due = rebuild_due(str(state), deployment.catalog(), deployment.window_specs())
        if due is not None:
            local.append(Check("warn", "state", due))
    elif folder.is_dir() and os.access(folder, os.W_OK):
        local.append(Check("ok", "state", f"{state} will be created"))
    else:
        local.append(
            Check(
                "FAIL",
                "state",
                f"cannot create {state}",
                "make its folder writable or change runtime.state_path",
            )
        )
    for check in local:
        out.write(check.line() + "\n")
    checks += local
    failed = sum(1 for c in checks if c.status == "FAIL")
    warned = sum(1 for c in checks if c.status == "warn")
    if failed:
        out.write(f"{failed} check(s) failed, {warned} warning(s): fix the lines marked FAIL\n")
        return 1
    nxt = (
        "crm-pulse run" if not any("provision" in c.todo for c in checks) else "crm-pulse provision"
    )
    out.write(f"all {len(checks)} checks passed ({warned} warning(s)); next: {nxt}\n")
    return 0
