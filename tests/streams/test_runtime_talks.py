"""A runtime that says what it does: a startup summary, one line per read with what changed,
one-line errors with exit 2 for a busy port or an unreachable CRM, dead letters that say what
to do, and a dry run that warns of missing fields."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.connectors.protocols import Connector, FieldWrite
from crm_pulse.sandbox import FakeHubSpot, FakeServer, TestCA
from crm_pulse.streams.embedded import commands
from crm_pulse.streams.embedded.database import Database
from crm_pulse.streams.embedded.runtime import EmbeddedRuntime
from crm_pulse.streams.http import serve_runtime
from crm_pulse.streams.writeback import OutboxItem, Outcome, SQLiteOutbox

from .fakes import ListSource, ScriptedSink
from .test_first_read import NOW, _won_deal


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Crm(Connector):
    kind = "plugin"


async def test_startup_summary_and_one_line_per_poll_split_by_what_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = _free_port()
    deployment = load_config_text(
        f'connectors:\n  - file: {{name: crm, path: "{tmp_path}/o.jsonl"}}\n'
        "writeback:\n  - {metric: won_revenue, window: month, target: {connector: crm, "
        "object: Company, record: c1, field: won}}\n"
        f'runtime: {{state_path: "{tmp_path}/s.sqlite", listen: "127.0.0.1:{port}", '
        "debounce: 0s}\n"
    )
    at = int(NOW.timestamp() * 1000) - 1000
    crm = _Crm("crm", {})
    source = ListSource([_won_deal(i, "u0", at) for i in range(4)])
    crm.source = source
    crm.sink = ScriptedSink()
    rt = EmbeddedRuntime(deployment, connectors={"crm": crm})
    rt.pollers["crm"].interval = 0.2
    caplog.set_level(logging.INFO, logger="crm_pulse")
    original = source._pages

    def again(cursor: object) -> object:  # every poll re-reads everything (a lookback)
        return original(None)

    source.poll = again  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    task = asyncio.create_task(rt.run(stop, serve=serve_runtime))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if sum("crm poll" in r.getMessage() for r in caplog.records) >= 2:
            break
    stop.set()
    await task
    lines = [r.getMessage() for r in caplog.records if r.name == "crm_pulse.runtime"]
    url = f"http://127.0.0.1:{port}"
    assert lines[:4] == [
        f"listening on {url} (status page {url}/, JSON {url}/status, Prometheus {url}/metrics)",
        "connectors: crm (plugin)",
        "write-back rules: 1 (crm 1)",
        f"state file: {tmp_path}/s.sqlite",
    ]
    polls = [x for x in lines if x.startswith("crm poll:")]
    assert re.search(r"4 record\(s\) read in \d+\.\d s; 4 changed a metric, 0 unchanged$", polls[0])
    assert polls[1].endswith("; 0 changed a metric, 4 unchanged")  # an idle CRM looks idle
    assert "every source finished its first complete read: writing values now" in lines
    assert lines[-3:-1] == [
        "stopping: finishing what was accepted (received webhooks, events, writes)",
        "stopped: every accepted event applied and saved; no write pending",
    ]  # Ctrl-C or SIGTERM says what it did
    assert re.fullmatch(
        r"state checkpoint written at log position 8 \(\d+ entries changed since the last one\)",
        lines[-1],
    )
    status = rt._status(
        {
            "log_position": 0,
            "consumed_position": 0,
            "outbox_depth": 0,
            "dead_letters": 0,
            "inbox_depth": 0,
        }
    )
    assert status["connectors"]["crm"]["changed"] == 4
    assert status["connectors"]["crm"]["unchanged"] >= 4


def _run(config: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crm_pulse.cli", "run", "--config", str(config), "--for", "20"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "d.yaml"
        config.write_text(
            f"connectors:\n  - file: {{name: crm, path: out.jsonl}}\n"
            f"runtime: {{state_path: s.sqlite, listen: '127.0.0.1:{port}', log_format: text}}\n"
        )
        done = _run(config, tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"crm-pulse run: cannot listen on 127.0.0.1:{port}: the address is in use by another "
        "process (stop it, or change runtime.listen)"
    )


def test_a_busy_ops_port_names_runtime_ops_listen_and_frees_the_webhook_port(
    tmp_path: Path,
) -> None:
    """Issue 13's separate operations address (runtime.ops_listen) gets issue 14's one line."""
    hooks = _free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "d.yaml"
        config.write_text(
            f"connectors:\n  - file: {{name: crm, path: out.jsonl}}\n"
            f"runtime: {{state_path: s.sqlite, listen: '127.0.0.1:{hooks}', "
            f"ops_listen: '127.0.0.1:{port}', log_format: text}}\n"
        )
        done = _run(config, tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"crm-pulse run: cannot listen on 127.0.0.1:{port}: the address is in use by another "
        "process (stop it, or change runtime.ops_listen)"
    )
    with socket.socket() as again:  # the webhook server it had started is closed
        again.bind(("127.0.0.1", hooks))


def test_an_unreachable_crm_at_start_is_one_line_with_url_and_cause(tmp_path: Path) -> None:
    port, dead = _free_port(), _free_port()
    config = tmp_path / "d.yaml"
    config.write_text(
        "connectors:\n  - pipedrive: {api_token: not-a-secret-ref, objects: [deals]}\n".replace(
            "not-a-secret-ref", "'${PD}'"
        ).replace("objects", f"base_url: 'http://127.0.0.1:{dead}', objects")
        + f"runtime: {{state_path: s.sqlite, listen: '127.0.0.1:{port}', log_format: text}}\n"
    )
    (tmp_path / ".env").write_text("PD=token-from-dotenv\n")
    done = _run(config, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("crm-pulse run: pipedrive: Pipedrive unreachable during ")
    assert f"http://127.0.0.1:{dead}/" in last
    assert "token-from-dotenv" not in done.stderr


def test_an_unreachable_monday_at_start_names_its_url_too(tmp_path: Path) -> None:
    """The monday connector (issue 16) translates a failed connection like the others."""
    port, dead = _free_port(), _free_port()
    config = tmp_path / "d.yaml"
    config.write_text(
        "connectors:\n  - monday: {api_token: '${MT}', "
        f"base_url: 'http://127.0.0.1:{dead}/v2', boards: {{deals: {{id: '1000001'}}}}}}\n"
        f"runtime: {{state_path: s.sqlite, listen: '127.0.0.1:{port}', log_format: text}}\n"
    )
    (tmp_path / ".env").write_text("MT=monday-token-from-dotenv\n")
    done = _run(config, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("crm-pulse run: monday: monday unreachable during "), last
    assert f"http://127.0.0.1:{dead}/v2: " in last and not last.endswith("ConnectError"), last
    assert "monday-token-from-dotenv" not in done.stderr


def test_dead_letters_for_a_missing_field_say_provision_and_go_away_once_written(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        with FakeServer(FakeHubSpot("t").app(), ca=TestCA()) as server:
            ca = server.ca.cert_path if server.ca else ""
            text = (
                f"connectors:\n  - hubspot: {{access_token: '${{T}}', base_url: '{server.url}', "
                f"ca_cert: '{ca}', objects: [deals]}}\n"
            )
            from crm_pulse.streams.embedded.runtime import build_connectors

            connector = build_connectors(load_config_text(text, env={"T": "t"}))["hubspot"]
            assert connector.sink is not None
            company = "1"
            results = await connector.sink.write(
                [FieldWrite("hubspot", "companies", company, "crm_pulse_nope", 1)]
            )
            await connector.aclose()
        assert not results[0].ok
        assert "run `crm-pulse provision`" in results[0].reason

    asyncio.run(main())
    db = Database(tmp_path / "s.sqlite")
    outbox = SQLiteOutbox(db)
    item = OutboxItem(FieldWrite("crm", "Company", "c1", "won", 5), 1, 0, 0.0)

    async def settle() -> None:
        await outbox.settle([Outcome(item, "dead", reason="field does not exist")], 0)
        assert db.call(lambda: SQLiteOutbox.dead_letter_count(db.conn)) == 1
        await outbox.settle([Outcome(item, "written")], 1)
        assert db.call(lambda: SQLiteOutbox.dead_letter_count(db.conn)) == 0

    try:
        asyncio.run(settle())
    finally:
        db.close()


async def test_a_dry_run_warns_that_target_fields_do_not_exist(tmp_path: Path) -> None:
    fake = FakeHubSpot("t")
    fake.search_per_second = None
    with FakeServer(fake.app(), ca=TestCA()) as server:
        ca = server.ca.cert_path if server.ca else ""
        deployment = load_config_text(
            f"connectors:\n  - hubspot: {{access_token: '${{T}}', base_url: '{server.url}', "
            f"ca_cert: '{ca}', objects: [deals]}}\n"
            "writeback:\n  - {metric: won_revenue, window: month, target: {connector: hubspot, "
            "object: companies, record: '1', field: crm_pulse_won}}\n"
            f"runtime: {{state_path: '{tmp_path}/s.sqlite'}}\n",
            env={"T": "t"},
        )
        out = io.StringIO()
        await commands.dry_run(deployment, out)
    assert out.getvalue().startswith(
        "warning: hubspot companies.crm_pulse_won does not exist: writes to it would fail; "
        "run `crm-pulse provision` first\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_startup_summary_points_at_the_operations_address(tmp_path: Path) -> None:
    deployment = load_config_text(
        f'connectors:\n  - file: {{name: crm, path: "{tmp_path}/o.jsonl"}}\n'
        f'runtime: {{state_path: "{tmp_path}/s.sqlite", listen: "0.0.0.0:8080", '
        'ops_listen: "127.0.0.1:9090", ops_token: "${OPS}"}\n',
        env={"OPS": "ops-token-not-shown-0123456789"},
    )
    rt = EmbeddedRuntime(deployment)
    try:
        first = rt.startup_summary()[0]
    finally:
        asyncio.run(rt.close())
    assert first == (
        "listening on http://0.0.0.0:8080 (status page http://127.0.0.1:9090/, JSON "
        "http://127.0.0.1:9090/status, Prometheus http://127.0.0.1:9090/metrics; they need "
        "runtime.ops_token)"
    )
    assert "ops-token-not-shown" not in " ".join(rt.startup_summary())
