"""The example plugin (examples/plugin), installed with pip like any third-party connector and
used from outside: `crm-pulse check` reports its settings problems with file and line,
`crm-pulse run` writes a value into its simulator, and it passes the shipped conformance suite."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crm_pulse.sandbox import FakeServer
from tests.ports import free_port as _free_port

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "plugin"
CLI = [sys.executable, "-m", "crm_pulse.cli"]


@pytest.fixture(scope="session")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pip-installs a copy of examples/plugin into this environment; uninstalls it after."""
    source = tmp_path_factory.mktemp("plugin") / "plugin"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    done = subprocess.run(
        [*pip, "install", "--no-deps", str(source)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    importlib.invalidate_caches()
    try:
        yield source
    finally:
        subprocess.run([*pip, "uninstall", "-y", "crm-pulse-tinycrm"], capture_output=True)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return {**env, **extra}


def test_check_reports_a_typo_in_the_plugins_settings_with_file_and_line(
    example_plugin: Path, tmp_path: Path
) -> None:
    config = tmp_path / "deploy.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            connectors:
              - tinycrm:
                  base_url: https://acme.tinycrm.example
                  api_key: ${TINY_KEY}
                  pol_interval: 30s
            """
        )
    )
    done = subprocess.run(
        [*CLI, "check", "--config", str(config)],
        capture_output=True,
        text=True,
        env=_env(TINY_KEY="tiny-secret-key"),
    )
    assert done.returncode == 2
    assert (
        f"{config}:5: connectors[0].tinycrm.pol_interval: unknown key 'pol_interval' "
        "(did you mean 'poll_interval'?)"
    ) in done.stdout
    assert "tiny-secret-key" not in done.stdout + done.stderr
    config.write_text(config.read_text().replace("pol_interval", "poll_interval"))
    ok = subprocess.run(
        [*CLI, "check", "--config", str(config)],
        capture_output=True,
        text=True,
        env=_env(TINY_KEY="tiny-secret-key"),
    )
    assert ok.returncode == 0, ok.stdout
    assert "tinycrm (tinycrm, poll every 30s)" in ok.stdout


def test_run_writes_the_value_into_the_plugins_simulator_and_takes_its_webhooks(
    example_plugin: Path, tmp_path: Path
) -> None:
    from tinycrm_pulse.simulator import TinyCrmSimulator

    sim = TinyCrmSimulator("tiny-key", webhook_secret="tiny-hook")
    company = sim.create("companies", {"name": "ACME"})
    sim.add_field("companies", "won_mtd")
    now_ms = int(time.time() * 1000)
    won = {"status": "won", "owner": "u1", "company": company, "closed_at": now_ms}
    sim.create("deals", {**won, "amount": "100.50"})
    sim.create("deals", {**won, "amount": "250"})
    later = sim.create("deals", {"status": "open", "owner": "u1", "amount": "49.50"})
    port = _free_port()
    with FakeServer(sim.app()) as server:
        config = tmp_path / "deploy.yaml"
        config.write_text(
            textwrap.dedent(
                f"""\
                connectors:
                  - tinycrm:
                      name: tiny
                      base_url: {server.url}
                      api_key: ${{TINY_KEY}}
                      webhook_secret: ${{TINY_HOOK}}
                      poll_interval: 1h
                writeback:
                  - metric: won_revenue
                    window: month
                    target: {{connector: tiny, object: companies, record: "{company}", field: won_mtd}}
                runtime:
                  state_path: {tmp_path / "state.sqlite"}
                  listen: 127.0.0.1:{port}
                  debounce: 0s
                """
            )
        )
        proc = subprocess.Popen(
            [*CLI, "run", "--config", str(config), "--for", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(TINY_KEY="tiny-key", TINY_HOOK="tiny-hook"),
        )
        try:
            # the backfill's value, written before any webhook
            assert _until(lambda: sim.value("companies", company, "won_mtd")) == pytest.approx(
                350.5
            )
            # polling is hourly: only the signed webhook can bring the change
            sim.update("deals", later, {"status": "won", "closed_at": int(time.time() * 1000)})
            headers, body = sim.webhook(later)
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/webhooks/tiny", data=body, headers=headers
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
            forged = urllib.request.Request(
                f"http://127.0.0.1:{port}/webhooks/tiny",
                data=body,
                headers=sim.webhook(later, secret="guessed")[0],
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(forged, timeout=10)
            assert refused.value.code == 401
            assert _until(
                lambda: sim.value("companies", company, "won_mtd"), lambda v: float(v) > 350.5
            ) == pytest.approx(400.0)
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()[-3000:]


def _until(read: Callable[[], Any], ok: Callable[[Any], bool] = lambda v: v is not None) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value = read()
        if value is not None and ok(value):
            return float(value)
        time.sleep(0.1)
    raise AssertionError(f"not there after 30 s: {read()!r}")


def test_the_plugin_passes_the_shipped_conformance_suite(example_plugin: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests"],
        cwd=example_plugin,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert "12 passed" in summary and "failed" not in summary
    # only the vendor-failure checks are skipped: its simulator produces no failures on demand
    assert "4 skipped" in summary
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 1 and "[4]" in skips[0], skips
    assert "produces no failures on demand" in skips[0]
