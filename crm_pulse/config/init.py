"""``crm-pulse init``: write a commented deployment file for the CRMs and metrics chosen.

Choices come from flags (``--crm``, ``--metrics``, ``--sandbox``); what a flag leaves open is
asked when stdin is a terminal, and otherwise takes its default. The file it writes is checked
with the same loader ``check`` uses before it is written, so ``init`` never leaves a file that
``check`` refuses (apart from the ``${VAR}`` references the user still has to set).

Credentials and the record that holds company-wide values are ``${VAR}`` references; the
variables go in the environment or a ``.env`` file beside the deployment file
(``crm-pulse sandbox --env-file .env`` writes one for the sandbox CRMs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import ConfigError, ConfigProblem
from ..metrics.calendar import WindowSpec
from ..metrics.catalog import build_catalog
from .discovery import DEFAULT_FILE

__all__ = ["CRMS", "DEFAULT_METRICS", "InitChoices", "render", "run_init", "write_env_file"]

CRMS = ("hubspot", "pipedrive", "salesforce", "monday", "zoho")
DEFAULT_METRICS = ("won_revenue", "win_rate", "open_pipeline_value")


@dataclass(frozen=True)
class InitChoices:
    crms: tuple[str, ...] = ("hubspot",)
    metrics: tuple[str, ...] = DEFAULT_METRICS
    sandbox: bool = False


_CONNECTOR = {
    "hubspot": """\
  # HubSpot through a private app (README: Connect HubSpot for the scopes it needs)
  - hubspot:
      access_token: ${{HUBSPOT_TOKEN}}         # the private app's access token
      app_secret: ${{HUBSPOT_APP_SECRET}}      # the app's client secret: signs webhooks
{where}      objects: [companies, contacts, deals, tickets]
      poll_interval: {poll}                   # polling is the safety net under webhooks
""",
    "pipedrive": """\
  # Pipedrive through an API token (README: Connect Pipedrive)
  - pipedrive:
      api_token: ${{PIPEDRIVE_TOKEN}}
      webhook_user: crm-pulse                 # webhooks v2 must carry these (HTTP Basic)
      webhook_password: ${{PIPEDRIVE_WEBHOOK_PASSWORD}}
{where}      objects: [deals, organizations, persons, activities]
      poll_interval: {poll}
""",
    "salesforce": """\
  # Salesforce through a connected app (README: Connect Salesforce)
  - salesforce:
      instance_url: ${{SALESFORCE_URL}}        # https://<my-domain>.my.salesforce.com
{login}{where}      objects: [Account, Opportunity]
      poll_interval: {poll}
""",
    "monday": """\
  # monday CRM through an API token (README: Connect monday CRM)
  - monday:
      api_token: ${{MONDAY_TOKEN}}               # a personal or app API token
{where}      boards:                                 # board ids: the number in each board's URL
        deals: {{id: "${{MONDAY_DEALS_BOARD}}"}}
        accounts: {{id: "${{MONDAY_ACCOUNTS_BOARD}}"}}
      # webhooks: signing_secret and webhook_url (README: Connect monday CRM)
      poll_interval: {poll}
""",
    "zoho": """\
  # Zoho CRM through a self client (README: Connect Zoho CRM)
  - zoho:
      client_id: ${{ZOHO_CLIENT_ID}}             # the self client's id and secret
      client_secret: ${{ZOHO_CLIENT_SECRET}}
      refresh_token: ${{ZOHO_REFRESH_TOKEN}}     # generated for the self client
{where}      objects: [Accounts, Contacts, Deals]
      # notifications: notify_url and channel_token (README: Connect Zoho CRM)
      poll_interval: {poll}
""",
}

_SANDBOX_WHERE = {
    "hubspot": "      base_url: ${HUBSPOT_URL}                # the sandbox (leave out for HubSpot)\n"
    "      ca_cert: ${CRM_PULSE_SANDBOX_CA}        # the sandbox's test CA\n",
    "pipedrive": "      base_url: ${PIPEDRIVE_URL}              # the sandbox (leave out for Pipedrive)\n",
    "salesforce": "      ca_cert: ${CRM_PULSE_SANDBOX_CA}        # the sandbox's test CA\n",
    "monday": "      base_url: ${MONDAY_URL}                 # the sandbox (leave out for monday)\n"
    "      ca_cert: ${CRM_PULSE_SANDBOX_CA}        # the sandbox's test CA\n",
    "zoho": "      api_url: ${ZOHO_URL}                    # the sandbox (leave out for Zoho)\n"
    "      accounts_url: ${ZOHO_URL}\n"
    "      ca_cert: ${CRM_PULSE_SANDBOX_CA}        # the sandbox's test CA\n",
}

_REAL_WHERE = {  # where the real CRM is, when it is not implied
    "zoho": "      data_centre: com                        # com, eu, in, com.au, com.cn, jp, ca, sa\n",
}

_HOME = {  # (object, variable of the record holding company-wide values, comment)
    "hubspot": ("companies", "HUBSPOT_HOME_RECORD", "id of your own company record"),
    "pipedrive": ("organization", "PIPEDRIVE_HOME_RECORD", "id of your own organization"),
    "salesforce": ("Account", "SALESFORCE_HOME_RECORD", "id of your own Account"),
    "monday": (
        "account",
        "MONDAY_HOME_RECORD",
        "item id of your own company on the Accounts board",
    ),
    "zoho": ("account", "ZOHO_HOME_RECORD", "id of your own company's Account"),
}

_WINDOW_SUFFIX = {"current": "now", "quarter": "qtd", "month": "mtd", "rolling:90d": "90d"}


def _window(metric: str) -> str:
    compiled = build_catalog().metrics[metric]
    if compiled.is_current:
        return "current"
    if compiled.supports(WindowSpec("quarter")):
        return "quarter"
    return "rolling:90d"


def _field(crm: str, metric: str, window: str) -> str:
    suffix = _WINDOW_SUFFIX[window]
    if crm == "salesforce":
        words = "_".join(w.capitalize() for w in f"{metric}_{suffix}".split("_"))
        return f"Crm_Pulse_{words}__c"[:40]
    if crm in ("pipedrive", "monday", "zoho"):  # field labels and column titles, as users see them
        return f"{metric.replace('_', ' ').capitalize()} {suffix.upper()}"
    return f"crm_pulse_{metric}_{suffix}"


def render(choices: InitChoices) -> str:
    """The deployment file's text."""
    poll = "5s" if choices.sandbox else "60s"
    lines = [
        "# crm-pulse deployment, written by `crm-pulse init`.",
        "# Check it with `crm-pulse check`, try the CRMs with `crm-pulse doctor`, create the",
        "# fields with `crm-pulse provision`, then `crm-pulse run`.",
        "# ${VAR} references come from the environment or from a .env file beside this file;",
        "# credentials can only be references, so no secret is ever stored here.",
        "version: 1",
        "timezone: UTC                                # calendar windows are cut in this zone",
        "",
        "connectors:",
    ]
    for crm in choices.crms:
        where = _SANDBOX_WHERE[crm] if choices.sandbox else _REAL_WHERE.get(crm, "")
        login = (
            "      session_id: ${SALESFORCE_SESSION}       # the sandbox's session\n"
            if choices.sandbox
            else "      client_id: ${SALESFORCE_CLIENT_ID}       # OAuth client credentials\n"
            "      client_secret: ${SALESFORCE_CLIENT_SECRET}\n"
        )
        lines.append(_CONNECTOR[crm].format(where=where, poll=poll, login=login).rstrip("\n"))
    lines += [
        "",
        "metrics:",
        (
            "  currency: USD                              # the sandbox's currency (status page)"
            if choices.sandbox
            else "  # currency: EUR                            # your reporting currency (status page)"
        ),
        "  disable: []                                # built-ins you do not want computed",
        "  # quotas, spend, goals and your own metrics: see examples/deploy.yaml",
        "",
        "# Each rule writes one metric for one window into a custom field.",
        "# Nothing is written before every CRM above was read completely once, so a field",
        "# never shows a partial number. on_null: clear (the default) empties a field",
        "# crm-pulse wrote when its metric has no value (e.g. no deal closed yet this",
        "# quarter); on_null: keep leaves the last value. A field crm-pulse never wrote is",
        "# never emptied.",
        "writeback:",
    ]
    for crm in choices.crms:
        obj, variable, comment = _HOME[crm]
        lines.append(f"  # company-wide values on the {comment} (${{{variable}}})")
        for metric in choices.metrics:
            window = _window(metric)
            lines.append(
                f"  - {{metric: {metric}, window: {window}, on_null: clear, target: "
                f'{{connector: {crm}, object: {obj}, record: "${{{variable}}}", '
                f'field: "{_field(crm, metric, window)}"}}}}'
            )
    lines += [
        "",
        "runtime:",
        "  state_path: crm-pulse.sqlite               # all state, beside this file",
        "  listen: 127.0.0.1:8080                     # webhooks, /status, /metrics, status page",
        "  log_level: info",
        "  log_format: text                           # json for a log collector",
        "",
    ]
    return "\n".join(lines)


def _split(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.replace(" ", ",").split(",") if x.strip())


def _validate(choices: InitChoices) -> None:
    problems = []
    for crm in choices.crms:
        if crm not in CRMS:
            problems.append(
                ConfigProblem("--crm", f"unknown CRM {crm!r} (choose from {', '.join(CRMS)})")
            )
    known = build_catalog().metrics
    for metric in choices.metrics:
        if metric not in known:
            problems.append(
                ConfigProblem(
                    "--metrics", f"no metric named {metric!r} (crm-pulse catalog lists them)"
                )
            )
    if not choices.crms:
        problems.append(ConfigProblem("--crm", "choose at least one CRM"))
    if problems:
        raise ConfigError(problems)


def run_init(
    *,
    crms: Sequence[str],
    metrics: Sequence[str],
    sandbox: bool | None,
    output: str,
    force: bool,
    out: TextIO,
    ask: Callable[[str], str] | None,
) -> int:
    """Write the file (``-``: to ``out``); ``ask`` prompts for what the flags left open
    (None: not a terminal, take the defaults). Returns the exit code."""
    crm_list = tuple(c for text in crms for c in _split(text))
    metric_list = tuple(m for text in metrics for m in _split(text))
    if ask is not None:
        if not crm_list:
            crm_list = _split(ask(f"CRMs to connect ({', '.join(CRMS)}) [hubspot]: ") or "hubspot")
        if not metric_list:
            answer = ask(f"Metrics to write back [{','.join(DEFAULT_METRICS)}]: ")
            metric_list = _split(answer) or DEFAULT_METRICS
        if sandbox is None:
            sandbox = ask("Use the sandbox CRMs of `crm-pulse sandbox`? [y/N]: ").strip().lower()[
                :1
            ] in ("y", "j")
    choices = InitChoices(crm_list or ("hubspot",), metric_list or DEFAULT_METRICS, bool(sandbox))
    _validate(choices)
    text = render(choices)
    from .loader import load_config_text

    load_config_text(text, file=output, resolve_secrets=False)  # what check would refuse
    if output == "-":
        out.write(text)
        return 0
    path = Path(output)
    if path.exists() and not force:
        raise ConfigError(
            [ConfigProblem("", "the file exists; pass --force to replace it", str(path))]
        )
    path.write_text(text, encoding="utf-8")
    variables = sorted(
        {v for v in _variables(text)}, key=lambda v: (v != "CRM_PULSE_SANDBOX_CA", v)
    )
    out.write(f"wrote {path} ({len(choices.crms)} CRM(s), {len(choices.metrics)} metric(s))\n")
    out.write(
        f"set these in the environment or in {path.parent / '.env'}: {', '.join(variables)}\n"
    )
    if choices.sandbox:
        out.write("  (`crm-pulse sandbox --env-file .env` writes them for the sandbox)\n")
    shown = "" if str(path) == DEFAULT_FILE else f" --config {path}"
    out.write(f"next: crm-pulse doctor{shown}\n")
    return 0


def _variables(text: str) -> list[str]:
    """The variables the file's values reference (not those its comments mention)."""
    import re

    values = "\n".join(line.split(" #", 1)[0] for line in text.splitlines())
    values = "\n".join(line for line in values.splitlines() if not line.lstrip().startswith("#"))
    return re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", values)


def terminal_prompt() -> Callable[[str], str] | None:
    """``input`` when stdin is a terminal, else None (no prompts in scripts and CI)."""
    if os.isatty(0):
        return input
    return None


def write_env_file(path: str | os.PathLike[str], values: dict[str, str]) -> None:
    """Set ``values`` in a ``.env`` file, keeping its other lines (owner-only permissions)."""
    file = Path(path)
    keep = []
    if file.exists():
        for line in file.read_text(encoding="utf-8").splitlines():
            name = line.split("=", 1)[0].removeprefix("export ").strip()
            if name not in values:
                keep.append(line)
    lines = keep + [f"{k}={v}" for k, v in values.items()]
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    file.chmod(0o600)
