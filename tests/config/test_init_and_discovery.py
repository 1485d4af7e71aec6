"""``crm-pulse init``, where the deployment file is found, ``.env`` files and ``--version``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from crm_pulse import cli
from crm_pulse.config import load_config
from crm_pulse.config.discovery import find_config, read_dotenv
from crm_pulse.errors import ConfigError

SANDBOX_ENV = {
    "HUBSPOT_URL": "https://127.0.0.1:9",
    "HUBSPOT_TOKEN": "tok-hubspot-secret-value",
    "HUBSPOT_APP_SECRET": "app-secret-value",
    "HUBSPOT_HOME_RECORD": "1001",
    "PIPEDRIVE_URL": "http://127.0.0.1:9",
    "PIPEDRIVE_TOKEN": "tok-pipedrive",
    "PIPEDRIVE_WEBHOOK_PASSWORD": "pw",
    "PIPEDRIVE_HOME_RECORD": "101",
    "SALESFORCE_URL": "https://127.0.0.1:9",
    "SALESFORCE_SESSION": "00Dsession",
    "SALESFORCE_HOME_RECORD": "001000000000001AA",
    "MONDAY_URL": "https://127.0.0.1:9/v2",
    "MONDAY_TOKEN": "tok-monday-secret-value",
    "MONDAY_DEALS_BOARD": "1000001",
    "MONDAY_ACCOUNTS_BOARD": "1000002",
    "MONDAY_HOME_RECORD": "5",
    "ZOHO_URL": "https://127.0.0.1:9",
    "ZOHO_CLIENT_ID": "1000.CLIENT",
    "ZOHO_CLIENT_SECRET": "tok-zoho-secret-value",
    "ZOHO_REFRESH_TOKEN": "1000.refresh",
    "ZOHO_HOME_RECORD": "4150868000000224001",
}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRM_PULSE_CONFIG", raising=False)
    for name in SANDBOX_ENV:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "ca.pem").write_text("not read by check\n")
    return tmp_path


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"crm-pulse {version('crm-pulse')}"


@pytest.mark.parametrize("sandbox", [True, False])
def test_init_writes_a_commented_file_that_check_accepts(workdir: Path, sandbox: bool) -> None:
    flag = "--sandbox" if sandbox else "--no-sandbox"
    code, out, _ = run(
        "init", "--crm", "hubspot,pipedrive", "--crm", "salesforce", "--metrics",
        "won_revenue,win_rate,nps", flag, "--no-input",
    )  # fmt: skip
    assert code == 0, out
    text = (workdir / "crm-pulse.yaml").read_text()
    assert text.startswith("# crm-pulse deployment")
    assert "on_null: clear" in text and "${HUBSPOT_TOKEN}" in text
    assert "next: crm-pulse doctor" in out
    env = {**SANDBOX_ENV, "CRM_PULSE_SANDBOX_CA": str(workdir / "ca.pem")}
    if not sandbox:
        env |= {"SALESFORCE_CLIENT_ID": "id", "SALESFORCE_CLIENT_SECRET": "s"}
    # the variables come from a .env beside the file; check finds ./crm-pulse.yaml itself
    (workdir / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    code, out, err = run("check")
    assert code == 0, out + err
    assert "9 write-back rules" in out
    deployment = load_config(workdir / "crm-pulse.yaml")
    windows = {(r.metric, r.window) for r in deployment.writeback}
    assert ("won_revenue", "quarter") in windows and ("win_rate", "quarter") in windows
    assert {r.target.connector for r in deployment.writeback} == {
        "hubspot",
        "pipedrive",
        "salesforce",
    }
    assert "tok-hubspot-secret-value" not in out + err


@pytest.mark.parametrize(
    ("crm", "variables", "secret"),
    [
        ("monday", ("MONDAY_TOKEN", "MONDAY_DEALS_BOARD"), "tok-monday-secret-value"),
        ("zoho", ("ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "ZOHO_URL"), "tok-zoho-secret-value"),
    ],
)
@pytest.mark.parametrize("sandbox", [True, False])
def test_init_connects_monday_and_zoho_with_the_variables_the_sandbox_writes(
    workdir: Path, crm: str, variables: tuple[str, ...], secret: str, sandbox: bool
) -> None:
    """monday (issue 16) and Zoho CRM in init (issue 14): a file check accepts, whose every
    variable ``crm-pulse sandbox --env-file`` provides (the next test)."""
    from crm_pulse.sandbox import TestCA

    flag = "--sandbox" if sandbox else "--no-sandbox"
    code, out, _ = run("init", "--crm", crm, "--metrics", "won_revenue,deals_won",
                       flag, "--no-input")  # fmt: skip
    assert code == 0, out
    text = (workdir / "crm-pulse.yaml").read_text()
    assert f"- {crm}:" in text
    for variable in variables:
        if sandbox or not variable.endswith("_URL"):
            assert f"${{{variable}}}" in text, variable
    if not sandbox:
        assert "_URL}" not in text and "CRM_PULSE_SANDBOX_CA" not in text
    ca = TestCA()  # the monday and Zoho clients load their CA when built (check builds them)
    env = {**SANDBOX_ENV, "CRM_PULSE_SANDBOX_CA": str(ca.cert_path)}
    (workdir / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    code, out, err = run("check")
    assert code == 0, out + err
    deployment = load_config(workdir / "crm-pulse.yaml")
    assert {
        (r.target.connector, r.target.object, r.target.field) for r in deployment.writeback
    } == {
        (crm, "account", "Won revenue QTD"),
        (crm, "account", "Deals won QTD"),
    }
    assert secret not in out + err


def test_the_sandbox_env_file_provides_every_variable_init_uses(workdir: Path) -> None:
    """``crm-pulse sandbox --env-file`` writes every variable of ``init --sandbox`` for every
    CRM init offers (Zoho CRM included), and its banner names them all."""
    from crm_pulse.config.init import CRMS, InitChoices, _variables, render
    from crm_pulse.sandbox import Sandbox

    assert "zoho" in CRMS and "monday" in CRMS
    sandbox = Sandbox().start()
    try:
        provided = set(sandbox.crm_environment())
    finally:
        sandbox.stop()
    needed = set(_variables(render(InitChoices(CRMS, ("won_revenue",), sandbox=True))))
    assert {"ZOHO_URL", "ZOHO_CLIENT_ID", "ZOHO_HOME_RECORD"} <= needed
    assert needed <= provided, needed - provided
    code, out, err = run("sandbox", "--env-file", ".env", "--seconds", "0.01")
    assert code == 0, out + err
    assert "Zoho CRM" in out and "monday" in out
    written = read_dotenv(workdir / ".env")
    assert needed <= set(written), needed - set(written)


def test_init_asks_in_a_terminal_and_refuses_to_overwrite(workdir: Path) -> None:
    from crm_pulse.config.init import run_init

    answers = iter(["pipedrive", "deals_won", "y"])
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    out = io.StringIO()
    assert (
        run_init(crms=[], metrics=[], sandbox=None, output="x.yaml", force=False, out=out, ask=ask)
        == 0
    )
    assert len(asked) == 3
    text = (workdir / "x.yaml").read_text()
    assert "- pipedrive:" in text and "metric: deals_won" in text and "PIPEDRIVE_URL" in text
    assert "hubspot" not in text
    code, _, err = run("init", "--crm", "hubspot", "-o", "x.yaml", "--no-input")
    assert code == 2 and "x.yaml" in err and "--force" in err
    assert run("init", "--crm", "hubspot", "-o", "x.yaml", "--no-input", "--force")[0] == 0


def test_init_names_unknown_crms_and_metrics_all_at_once(workdir: Path) -> None:
    code, _, err = run("init", "--crm", "zoho2,hubspot", "--metrics", "win_rat,mrr", "--no-input")
    assert code == 2
    assert "'zoho2'" in err and "'win_rat'" in err and "'mrr'" in err
    assert not (workdir / "crm-pulse.yaml").exists()


def test_config_discovery_order(workdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"--config FILE, set CRM_PULSE_CONFIG, or create"):
        find_config(None, env={})
    (workdir / "crm-pulse.yaml").write_text("timezone: UTC\n")
    assert find_config(None, env={}) == "crm-pulse.yaml"
    assert find_config(None, env={"CRM_PULSE_CONFIG": "/x/named.yaml"}) == "/x/named.yaml"
    assert find_config("given.yaml", env={"CRM_PULSE_CONFIG": "/x/named.yaml"}) == "given.yaml"


def test_every_config_command_finds_the_file_the_same_way(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run("check")
    assert code == 2 and "no deployment file" in err and "crm-pulse init" in err
    other = workdir / "elsewhere.yaml"
    other.write_text("timezone: Mars/Olympus\n")
    monkeypatch.setenv("CRM_PULSE_CONFIG", str(other))
    code, out, _ = run("check")
    assert code == 2 and "elsewhere.yaml" in out and "Mars/Olympus" in out
    code, _, err = run("report")
    assert code == 2 and "elsewhere.yaml" in err
    for command in (["quarantine", "list"], ["deadletters", "list"]):  # issue 13's commands
        code, _, err = run(*command)
        assert code == 2 and "elsewhere.yaml" in err, command


def test_dotenv_files_feed_references_and_the_environment_wins(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / ".env").write_text(
        "# secrets for development\n"
        "export HUBSPOT_TOKEN='from-dotenv'\n"
        'HUBSPOT_APP_SECRET="quoted # not a comment"\n'
        "HUBSPOT_HOME_RECORD=1001   # a comment\n"
    )
    assert read_dotenv(workdir / ".env") == {
        "HUBSPOT_TOKEN": "from-dotenv",
        "HUBSPOT_APP_SECRET": "quoted # not a comment",
        "HUBSPOT_HOME_RECORD": "1001",
    }
    (workdir / "d.yaml").write_text(
        "connectors:\n  - hubspot: {access_token: '${HUBSPOT_TOKEN}', objects: [deals]}\n"
    )
    deployment = load_config(workdir / "d.yaml")
    token = deployment.connectors[0].settings.access_token.get_secret_value()
    assert token == "from-dotenv"
    monkeypatch.setenv("HUBSPOT_TOKEN", "from-environment")
    token = load_config(workdir / "d.yaml").connectors[0].settings.access_token
    assert token.get_secret_value() == "from-environment"


def test_a_bad_dotenv_line_names_the_file_and_line_not_the_value(workdir: Path) -> None:
    (workdir / ".env").write_text("GOOD=1\nthis line is secret-ish\n")
    (workdir / "d.yaml").write_text("timezone: UTC\n")
    code, out, err = run("check", "--config", "d.yaml")
    assert code == 2
    assert ".env:2" in out + err and "secret-ish" not in out + err
