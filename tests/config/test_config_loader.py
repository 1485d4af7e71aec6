"""The deployment file: loading, problems with path/file/line, secrets, examples."""

from __future__ import annotations

import io
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Annotated, ClassVar

import pytest
from pydantic import Field, SecretStr

from crm_pulse.config import (
    ConnectorSettings,
    Duration,
    Secret,
    load_config,
    run_check,
)
from crm_pulse.connectors import registry
from crm_pulse.connectors.events.settings import EventsSettings
from crm_pulse.connectors.hubspot.settings import HubSpotSettings
from crm_pulse.connectors.protocols import Connector
from crm_pulse.connectors.salesforce.settings import SalesforceSettings
from crm_pulse.errors import ConfigError, ConfigProblem

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

DEPLOY_ENV = {
    "HUBSPOT_TOKEN": "pat-na1-hubspot-token-0001",
    "HUBSPOT_APP_SECRET": "hubspot-app-secret-0002",
    "SF_CLIENT_ID": "3MVG9-sf-client-id",
    "SF_CLIENT_SECRET": "sf-client-secret-0003",
    "PIPEDRIVE_TOKEN": "pipedrive-token-0004",
    "PIPEDRIVE_WEBHOOK_PASSWORD": "pipedrive-password-0005",
    "INGRESS_SECRET": "ingress-hmac-key-0006",
}
SECRET_VALUES = [v for k, v in DEPLOY_ENV.items() if k != "SF_CLIENT_ID"]


def write(tmp_path: Path, text: str, name: str = "deploy.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def problems_of(path: str, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    return info.value.problems


def find(problems: list[ConfigProblem], path: str) -> ConfigProblem:
    matching = [p for p in problems if p.path == path]
    assert matching, f"no problem at {path}; got:\n" + "\n".join(map(str, problems))
    return matching[0]


# ------------------------------------------------------------------ examples


def test_deploy_example_loads() -> None:
    deployment = load_config(EXAMPLES / "deploy.yaml", env=DEPLOY_ENV)
    kinds = [(c.kind, c.name) for c in deployment.connectors]
    assert kinds == [
        ("hubspot", "hubspot"),
        ("salesforce", "salesforce"),
        ("pipedrive", "pipedrive"),
        ("events", "ingress"),
    ]
    hubspot = deployment.connector("hubspot").settings
    assert isinstance(hubspot, HubSpotSettings)
    assert hubspot.poll_interval == 30.0
    assert hubspot.lookback == 300.0
    assert hubspot.access_token.get_secret_value() == DEPLOY_ENV["HUBSPOT_TOKEN"]
    assert hubspot.mapping.deal_type.values["renewal"] == "renewal"
    salesforce = deployment.connector("salesforce").settings
    assert isinstance(salesforce, SalesforceSettings)
    assert salesforce.api_version == "59.0"
    assert salesforce.client_id == DEPLOY_ENV["SF_CLIENT_ID"]
    assert deployment.timezone == "Europe/Berlin"
    assert len(deployment.writeback) == 6
    # relative paths are relative to the file, not to the working directory
    assert deployment.runtime.state_path == EXAMPLES / "crm-pulse.sqlite"
    assert (deployment.runtime.host, deployment.runtime.port) == ("127.0.0.1", 8080)
    catalog = deployment.catalog()
    assert "big_deals_won" in catalog.metrics
    assert "duplicate_accounts" not in catalog.metrics  # disabled
    assert catalog.params["lifespan_years"] == 4


def test_minimal_example_loads() -> None:
    deployment = load_config(EXAMPLES / "minimal.yaml", env={"INGRESS_SECRET": "k" * 32})
    (entry,) = deployment.connectors
    assert entry.kind == "events" and entry.name == "events"
    assert isinstance(entry.settings, EventsSettings)
    assert entry.settings.tolerance == 300.0
    assert deployment.runtime.kind == "embedded"
    assert len(deployment.catalog().metrics) >= 28


@pytest.mark.parametrize("name", ["deploy.yaml", "minimal.yaml"])
def test_check_says_ok_for_examples(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in DEPLOY_ENV.items():
        monkeypatch.setenv(key, value)
    out = io.StringIO()
    assert run_check(str(EXAMPLES / name), out) == 0
    text = out.getvalue()
    assert text.startswith(f"OK: {EXAMPLES / name}: ")
    assert "metrics enabled" in text and "write-back rule" in text
    for secret in SECRET_VALUES:
        assert secret not in text


# ------------------------------------------------------------------ problems point at the place


def test_misspelled_key_names_key_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        connectors:
          - events:
              secret: ${INGRESS_SECRET}
              tolerence: 5m
        """,
    )
    problems = problems_of(path, {"INGRESS_SECRET": "x" * 16})
    assert len(problems) == 1
    problem = problems[0]
    assert problem.path == "connectors[0].events.tolerence"
    assert problem.file == path
    assert problem.line == 4
    assert "unknown key 'tolerence'" in problem.message
    assert "did you mean 'tolerance'" in problem.message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, "timezone: UTC\nwrite_back: []\n")
    problem = find(problems_of(path), "write_back")
    assert problem.line == 2
    assert "did you mean 'writeback'" in problem.message


def test_bad_duration_message_is_exact(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        connectors:
          - events:
              secret: ${INGRESS_SECRET}
          - hubspot:
              access_token: ${HUBSPOT_TOKEN}
              poll_interval: often
        """,
    )
    problems = problems_of(path, {"INGRESS_SECRET": "a" * 16, "HUBSPOT_TOKEN": "b" * 16})
    assert [str(p) for p in problems] == [
        f"{path}:6: connectors[1].hubspot.poll_interval: expected a duration like '30s', "
        "got 'often'"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        timezone: Mars/Olympus
        connectors:
          - hubspot:
              access_token: ${HUBSPOT_TOKEN}
              objects: [deals, widgets]
        runtime:
          kind: kafka
          debounce: 2
        """,
    )
    problems = problems_of(path, {"HUBSPOT_TOKEN": "t" * 16})
    by_path = {p.path: p for p in problems}
    assert set(by_path) == {
        "timezone",
        "connectors[0].hubspot.objects[1]",
        "runtime.kind",
        "runtime.debounce",
    }
    assert by_path["timezone"].line == 1
    assert by_path["connectors[0].hubspot.objects[1]"].line == 5
    assert "got 'widgets'" in by_path["connectors[0].hubspot.objects[1]"].message
    assert by_path["runtime.kind"].message == "expected 'embedded' or 'faust', got 'kafka'"
    assert "add a unit" in by_path["runtime.debounce"].message
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)


def test_missing_required_key_points_at_its_parent(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        connectors:
          - salesforce:
              session_id: ${SF_SESSION}
        """,
    )
    problem = find(
        problems_of(path, {"SF_SESSION": "s" * 20}), "connectors[0].salesforce.instance_url"
    )
    assert problem.line == 2
    assert problem.message == "required, but missing"


def test_a_kind_with_no_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "connectors:\n  - hubspot:\n")
    (problem,) = problems_of(path)
    assert (problem.path, problem.line) == ("connectors[0].hubspot.access_token", 2)


def test_yaml_syntax_error_gives_line_and_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "timezone: UTC\nruntime:\n  kind: embedded\n   listen: x\n")
    (problem,) = problems_of(path)
    assert problem.file == path
    assert problem.line == 4
    assert problem.message.startswith("invalid YAML: mapping values are not allowed here")


def test_duplicate_keys_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "runtime:\n  batch_size: 10\n  batch_size: 20\n")
    (problem,) = problems_of(path)
    assert problem.path == "runtime.batch_size"
    assert problem.line == 3
    assert "also at line 2" in problem.message


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "# nothing\n"))
    assert "got an empty file" in problem.message
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read the file" in str(info.value)


def test_connector_entry_shape_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        connectors:
          - hubspto:
              access_token: ${T}
          - salesforce:
              instance_url: https://x.my.salesforce.com
            session_id: ${T}
        """,
    )
    problems = problems_of(path, {"T": "t" * 16})
    first = find(problems, "connectors[0]")
    assert first.line == 2
    assert "unknown connector kind 'hubspto' (did you mean 'hubspot'?)" in first.message
    second = find(problems, "connectors[1]")
    assert "indent session_id under salesforce" in second.message


def test_union_errors_name_the_closest_alternative(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        metrics:
          measures:
            a: {object: deal, at: closed_at, sum: {duration: [created_at]}}
            b: {object: deal, at: closed_at, sum: [amount]}
          metrics:
            x: {value: a / b, category: business performance}
        """,
    )
    problems = problems_of(path)
    assert [(p.path, p.line, p.message) for p in problems] == [
        ("metrics.measures.a.sum.duration[1]", 3, "missing: the list is too short"),
        ("metrics.measures.b.sum", 4, "expected a string or a mapping, got a list"),
    ]


# ------------------------------------------------------------------ environment and secrets


def test_all_missing_variables_are_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        connectors:
          - hubspot:
              access_token: ${HUBSPOT_TOKEN}
              app_secret: ${HUBSPOT_APP_SECRET}
          - pipedrive:
              api_token: ${PIPEDRIVE_TOKEN}
              base_url: https://${PIPEDRIVE_HOST}
        """,
    )
    problems = problems_of(path, {"PIPEDRIVE_TOKEN": "p" * 16})
    assert [str(p) for p in problems] == [
        f"{path}:3: connectors[0].hubspot.access_token: environment variable HUBSPOT_TOKEN "
        "is not set",
        f"{path}:4: connectors[0].hubspot.app_secret: environment variable HUBSPOT_APP_SECRET "
        "is not set",
        f"{path}:7: connectors[1].pipedrive.base_url: environment variable PIPEDRIVE_HOST "
        "is not set",
    ]


def test_references_inside_values_and_escapes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        connectors:
          - pipedrive:
              name: pd
              api_token: ${PD_TOKEN}
              base_url: https://${PD_HOST}/
              webhook_user: user$$1
              webhook_password: ${PD_PASSWORD}
        """,
    )
    env = {"PD_TOKEN": "tok-123456", "PD_HOST": "acme.pipedrive.com", "PD_PASSWORD": "pw-12345"}
    settings = load_config(path, env=env).connector("pd").settings
    assert settings.base_url == "https://acme.pipedrive.com"  # type: ignore[union-attr]
    assert settings.webhook_user == "user$1"  # type: ignore[union-attr]


def test_secrets_never_appear_in_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = load_config(EXAMPLES / "deploy.yaml", env=DEPLOY_ENV)
    texts = [repr(deployment), str(deployment), deployment.model_dump_json()]
    texts += [repr(c) for c in deployment.connectors]
    texts += deployment.summary()
    for text in texts:
        for secret in SECRET_VALUES:
            assert secret not in text
    hubspot = deployment.connector("hubspot").settings
    assert isinstance(hubspot, HubSpotSettings)
    assert isinstance(hubspot.access_token, SecretStr)

    # a secret value that lands in the wrong place is not echoed by the error
    secret = "very-secret-value-123"
    path = write(
        tmp_path,
        """\
        connectors:
          - hubspot:
              access_token: ${HUBSPOT_TOKEN}
              poll_interval: ${HUBSPOT_TOKEN}
              base_url: ${HUBSPOT_TOKEN}
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"HUBSPOT_TOKEN": secret})
    assert len(info.value.problems) == 2
    assert secret not in str(info.value)
    assert "${HUBSPOT_TOKEN}" in str(info.value)
    monkeypatch.setenv("HUBSPOT_TOKEN", secret)
    out = io.StringIO()
    assert run_check(path, out) == 2
    assert secret not in out.getvalue()


def test_credentials_written_in_the_file_are_refused_without_echo(tmp_path: Path) -> None:
    literal = "pat-na1-literal-token"
    path = write(
        tmp_path,
        f"""\
        connectors:
          - hubspot:
              access_token: {literal}
        """,
    )
    (problem,) = problems_of(path)
    assert problem.path == "connectors[0].hubspot.access_token"
    assert problem.line == 3
    assert "${ACCESS_TOKEN}" in problem.message
    assert literal not in str(problem)


def test_empty_variable_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "connectors:\n  - events:\n      secret: ${KEY}\n")
    (problem,) = problems_of(path, {"KEY": ""})
    assert problem.message == "${KEY} is set but empty"


def test_without_resolving_secrets_nothing_is_needed(tmp_path: Path) -> None:
    deployment = load_config(EXAMPLES / "deploy.yaml", env={}, resolve_secrets=False)
    from crm_pulse.metrics import builtin_definitions

    # every built-in but duplicate_accounts, and the file's two own metrics
    assert len(deployment.catalog().metrics) == len(builtin_definitions().metrics) - 1 + 2
    settings = deployment.connector("hubspot").settings
    assert isinstance(settings, HubSpotSettings)
    assert settings.access_token.get_secret_value() == "${HUBSPOT_TOKEN}"


class ZendeskSettings(ConnectorSettings):
    """A plugin's settings model, declared the way a built-in connector declares its own."""

    KIND: ClassVar[str] = "zendesk"

    subdomain: str = Field(min_length=1)
    token: Secret
    poll_interval: Annotated[Duration, Field(gt=0)] = 60.0


class ZendeskConnector(Connector):
    kind: ClassVar[str] = "zendesk"
    settings_model: ClassVar[type[ConnectorSettings]] = ZendeskSettings

    def __init__(self, name: str, settings: ZendeskSettings) -> None:
        super().__init__(name, settings)
        if "." in settings.subdomain:  # a check only the connector makes, when it is built
            raise ConfigError([ConfigProblem("subdomain", "give the subdomain, not a host name")])


@pytest.fixture
def zendesk_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register ZendeskConnector in the entry-point group, as an installed plugin would."""
    installed = registry.entry_points
    plugin = EntryPoint("zendesk", f"{__name__}:ZendeskConnector", registry.PLUGIN_GROUP)

    def with_plugin(*, group: str) -> list[EntryPoint]:
        return [*installed(group=group), *([plugin] if group == registry.PLUGIN_GROUP else [])]

    monkeypatch.setattr(registry, "entry_points", with_plugin)


@pytest.mark.usefixtures("zendesk_plugin")
def test_plugin_settings_are_validated_by_the_plugins_model(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        connectors:
          - zendesk:
              name: support
              subdomain: acme
              token: ${ZENDESK_TOKEN}
              poll_interval: 30s
        writeback:
          - metric: nps
            window: quarter
            target: {connector: support, object: organization, field: nps, record: "1"}
        """,
    )
    deployment = load_config(path, env={"ZENDESK_TOKEN": "zd-secret-token"})
    (entry,) = deployment.connectors
    assert (entry.kind, entry.name) == ("zendesk", "support")
    settings = entry.settings
    assert isinstance(settings, ZendeskSettings)
    assert (settings.subdomain, settings.poll_interval) == ("acme", 30.0)
    assert isinstance(settings.token, SecretStr)
    assert settings.token.get_secret_value() == "zd-secret-token"
    assert "zd-secret-token" not in repr(deployment)


@pytest.mark.usefixtures("zendesk_plugin")
def test_plugin_settings_errors_are_those_of_a_builtin(tmp_path: Path) -> None:
    """A typo, a plaintext token and a bad duration in a plugin's settings: each problem with
    the file, its line and the same words a built-in connector's settings get."""
    path = write(
        tmp_path,
        """\
        connectors:
          - zendesk:
              subdomain: acme
              token: plaintext-token
              pol_interval: 30s
          - hubspot:
              access_token: plaintext-token
              pol_interval: 30s
              poll_interval: soon
          - zendesk:
              name: other
              subdomain: acme
              token: ${ZENDESK_TOKEN}
              poll_interval: soon
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"ZENDESK_TOKEN": "zd-secret-token"})
    got = [(p.line, p.path, p.message) for p in caught.value.problems]
    assert all(p.file == path for p in caught.value.problems)
    plugin = {line: (where, message) for line, where, message in got if "zendesk" in where}
    builtin = {line: (where, message) for line, where, message in got if "hubspot" in where}
    assert plugin[4] == (
        "connectors[0].zendesk.token",
        builtin[7][1].replace("ACCESS_TOKEN", "TOKEN"),
    )
    assert "${" in plugin[4][1]  # secrets only as ${ENV} references
    assert plugin[5] == (
        "connectors[0].zendesk.pol_interval",
        "unknown key 'pol_interval' (did you mean 'poll_interval'?)",
    )
    assert builtin[8][1] == plugin[5][1]
    assert plugin[14][0] == "connectors[2].zendesk.poll_interval"
    assert plugin[14][1] == builtin[9][1]
    assert "plaintext-token" not in str(caught.value)


# ------------------------------------------------------------------ check


def test_check_prints_file_line_path_message(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        connectors:
          - events:
              secret: ${MISSING_ONE}
          - hubspot:
              access_token: ${MISSING_TWO}
              poll_interval: often
        """,
    )
    out = io.StringIO()
    assert run_check(path, out) == 2
    assert out.getvalue().splitlines() == [
        f"{path}:3: connectors[0].events.secret: environment variable MISSING_ONE is not set",
        f"{path}:5: connectors[1].hubspot.access_token: environment variable MISSING_TWO "
        "is not set",
        f"{path}:6: connectors[1].hubspot.poll_interval: expected a duration like '30s', "
        "got 'often'",
    ]


def test_a_broken_plugin_is_a_problem_of_its_entry_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = registry.entry_points
    broken = EntryPoint("brokencrm", "no_such_module_for_tests:Connector", registry.PLUGIN_GROUP)
    not_a_connector = EntryPoint("oddcrm", "pathlib:Path", registry.PLUGIN_GROUP)

    def with_plugins(*, group: str) -> list[EntryPoint]:
        extra = [broken, not_a_connector] if group == registry.PLUGIN_GROUP else []
        return [*installed(group=group), *extra]

    monkeypatch.setattr(registry, "entry_points", with_plugins)
    path = write(
        tmp_path,
        """\
        connectors:
          - brokencrm: {}
          - oddcrm: {}
        metrics:
          enable: [won_revenu]
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    got = [(p.line, p.path, p.message) for p in caught.value.problems]
    assert got[0][:2] == (2, "connectors[0]")
    assert "'brokencrm' (no_such_module_for_tests:Connector) could not be loaded" in got[0][2]
    assert "ModuleNotFoundError" in got[0][2]
    assert got[1][:2] == (3, "connectors[1]")
    assert "is not a crm_pulse Connector subclass" in got[1][2]
    assert got[2][:2] == (5, "metrics.enable[0]")  # the rest of the file is still checked


@pytest.mark.usefixtures("zendesk_plugin")
def test_check_builds_every_connector_and_places_what_a_constructor_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZENDESK_TOKEN", "zd-secret-token")
    monkeypatch.setenv("SF_SESSION", "00Dsession")
    path = write(
        tmp_path,
        """\
        connectors:
          - zendesk:
              subdomain: acme.zendesk.com
              token: ${ZENDESK_TOKEN}
          - salesforce:
              instance_url: https://acme.my.salesforce.com
              session_id: ${SF_SESSION}
              mapping:
                survey_object: Survey Response
        """,
    )
    out = io.StringIO()
    assert run_check(path, out) == 2
    assert out.getvalue().splitlines() == [
        f"{path}:3: connectors[0].zendesk.subdomain: give the subdomain, not a host name",
        f"{path}:9: connectors[1].salesforce.mapping.survey_object: 'Survey Response' is not a "
        "Salesforce API name",
    ]


def test_check_of_a_missing_file(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_check(str(tmp_path / "nope.yaml"), out) == 2
    assert out.getvalue().startswith(f"{tmp_path / 'nope.yaml'}: cannot read the file")


def test_unresolved_values_are_left_unchecked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        connectors:
          - salesforce:
              instance_url: ${SF_URL}
              session_id: ${SF_SESSION}
              ca_cert: ${SF_CA}
        metrics:
          enable: [win_rate]
        """,
    )
    deployment = load_config(path, resolve_secrets=False)
    assert list(deployment.catalog().metrics) == ["win_rate"]
    settings = deployment.connector("salesforce").settings
    assert isinstance(settings, SalesforceSettings)
    assert settings.instance_url == "${SF_URL}"
    assert isinstance(settings.session_id, SecretStr)
    # resolved, the same file is checked in full
    problems = problems_of(path, {"SF_URL": "ftp://nowhere", "SF_SESSION": "s" * 16, "SF_CA": "x"})
    assert [p.path for p in problems] == [
        "connectors[0].salesforce.instance_url",
        "connectors[0].salesforce.ca_cert",
    ]
