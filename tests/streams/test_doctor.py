"""``crm-pulse doctor`` and ``check`` against a sandbox HubSpot: a checklist with what to do."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_pulse import cli
from crm_pulse.config import load_config_text
from crm_pulse.errors import RetriableError
from crm_pulse.sandbox import FakeHubSpot, FakeServer, TestCA
from crm_pulse.streams.doctor import doctor
from crm_pulse.streams.embedded.runtime import build_connectors
from tests.ports import free_port as _free_port

TOKEN = "pat-doctor-token"


@pytest.fixture
def portal() -> Iterator[tuple[FakeHubSpot, FakeServer]]:
    fake = FakeHubSpot(TOKEN, app_secret="doctor-app-secret")
    fake.search_per_second = None
    fake.create("companies", {"name": "Home"})
    fake.add_property("companies", "crm_pulse_won")
    with FakeServer(fake.app(), ca=TestCA()) as server:
        yield fake, server


def _text(server: FakeServer, tmp_path: Path, port: int, *, secret: bool = True) -> str:
    ca = server.ca.cert_path if server.ca else ""
    app = ', app_secret: "${S}"' if secret else ""
    return f"""
connectors:
  - hubspot: {{access_token: "${{T}}"{app}, base_url: "{server.url}", ca_cert: "{ca}", objects: [companies, deals]}}
writeback:
  - {{metric: won_revenue, window: quarter, target: {{connector: hubspot, object: companies, record: "1001", field: crm_pulse_won}}}}
  - {{metric: win_rate, window: quarter, target: {{connector: hubspot, object: companies, record: "1001", field: crm_pulse_rate}}}}
runtime: {{state_path: "{tmp_path}/s.sqlite", listen: "127.0.0.1:{port}"}}
"""


async def test_a_healthy_deployment_passes_and_names_the_missing_field(
    portal: tuple[FakeHubSpot, FakeServer], tmp_path: Path
) -> None:
    _, server = portal
    deployment = load_config_text(_text(server, tmp_path, _free_port()), env={"T": TOKEN, "S": "x"})
    out = io.StringIO()
    assert await doctor(deployment, out) == 0
    text = out.getvalue()
    assert "[ok  ] hubspot: credentials accepted; reading works" in text
    assert "[ok  ] hubspot owners (crm.objects.owners.read): owners readable" in text
    assert "[ok  ] hubspot field: companies.crm_pulse_won (money) exists" in text
    assert "[warn] hubspot field: companies.crm_pulse_rate (rate) does not exist yet" in text
    assert "`crm-pulse provision` creates it" in text
    assert "webhooks accepted at /webhooks/hubspot" in text
    assert "is free" in text and "will be created" in text
    assert text.rstrip().endswith("next: crm-pulse provision")
    assert not (tmp_path / "s.sqlite").exists()  # doctor creates no state


async def test_a_private_app_without_the_owners_scope_fails_with_what_to_do(
    portal: tuple[FakeHubSpot, FakeServer], tmp_path: Path
) -> None:
    """The source goes on without owners (a warning in the log), so doctor is where the admin
    learns the adoption metrics would stay empty; ``owners: false`` turns the check off."""
    fake, server = portal
    fake.missing_scopes.add("crm.objects.owners.read")
    deployment = load_config_text(_text(server, tmp_path, _free_port()), env={"T": TOKEN, "S": "x"})
    out = io.StringIO()
    assert await doctor(deployment, out) == 1
    text = out.getvalue()
    assert "[ok  ] hubspot: credentials accepted; reading works" in text
    assert "[FAIL] hubspot owners (crm.objects.owners.read): owners cannot be read" in text
    assert "active_users" in text
    assert "-> add the crm.objects.owners.read scope to the private app, or set owners: false" in (
        text
    )
    off = _text(server, tmp_path, _free_port()).replace(
        "objects: [companies, deals]", "owners: false, objects: [companies, deals]"
    )
    out = io.StringIO()
    assert await doctor(load_config_text(off, env={"T": TOKEN, "S": "x"}), out) == 0
    assert "owners" not in out.getvalue()


async def test_a_bad_token_a_busy_port_and_no_webhook_secret_fail_with_what_to_do(
    portal: tuple[FakeHubSpot, FakeServer], tmp_path: Path
) -> None:
    _, server = portal
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        text = _text(server, tmp_path, port, secret=False)
        deployment = load_config_text(text, env={"T": "not-the-token"})
        out = io.StringIO()
        assert await doctor(deployment, out) == 1
    lines = out.getvalue()
    assert "[FAIL] hubspot: HubSpot refused" in lines and "token and scopes" in lines
    assert "-> fix the credentials or permissions" in lines
    assert f"[FAIL] listen: 127.0.0.1:{port} is already in use" in lines
    assert "-> stop the other process or change runtime.listen" in lines
    assert "[warn] hubspot: no webhook secret set" in lines and "-> set app_secret" in lines
    assert "not-the-token" not in lines
    assert "check(s) failed" in lines


async def test_an_unreachable_crm_names_the_url_and_the_cause(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    text = (
        "connectors:\n  - hubspot: {access_token: '${T}', "
        f"base_url: 'https://127.0.0.1:{port}', objects: [deals]}}\n"
    )
    connector = build_connectors(load_config_text(text, env={"T": "x"}))["hubspot"]
    assert connector.source is not None
    try:
        with pytest.raises(RetriableError) as exc:
            async for _ in connector.source.poll(None):
                pass
    finally:
        await connector.aclose()
    message = str(exc.value)
    assert f"https://127.0.0.1:{port}/crm/v3/pipelines/deals" in message
    assert "refused" in message.lower()
    assert "MaxRetryError" not in message


def test_check_reports_every_problem_in_one_pass(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        "connectors:\n"
        "  - hubspot: {access_token: '${T}', objects: [deals]}\n"
        "  - pipedrive: {api_token: '${T}', objects: [deals]}\n"
        "writeback:\n"
        "  - {metric: nosuch_metric, window: fortnight, target: {connector: hubspot, "
        "object: companies, record: '1', field: f1}}\n"
        "  - {metric: win_rate, window: quarter, group: owner_id, target: {connector: hubspot, "
        "object: owners, field: f2}}\n"
        "  - {metric: win_rate, window: quarter, group: owner_id, target: {connector: pipedrive, "
        "object: user, field: Win rate}}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    env = {"T": "x"}
    import os

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        code = cli.main(["check", "--config", str(tmp_path / "d.yaml")], out, err)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
    text = out.getvalue()
    assert code == 2
    assert "d.yaml:5: writeback[0].window" in text
    assert "d.yaml:5: writeback[0].metric: unknown metric 'nosuch_metric'" in text
    assert "d.yaml:6: writeback[1].target.object: HubSpot owners take no custom properties" in text
    assert "d.yaml:7: writeback[2].target.object: Pipedrive users take no custom fields" in text


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "timezone: UTC\n"])
def test_check_refuses_a_file_that_sets_nothing_up(tmp_path: Path, text: str) -> None:
    (tmp_path / "d.yaml").write_text(text)
    out = io.StringIO()
    assert cli.main(["check", "--config", str(tmp_path / "d.yaml")], out, io.StringIO()) == 2
    assert "d.yaml:1:" in out.getvalue()


async def test_a_target_field_of_the_wrong_type_fails(
    portal: tuple[FakeHubSpot, FakeServer], tmp_path: Path
) -> None:
    fake, server = portal
    fake.add_property("companies", "crm_pulse_rate", "string")
    deployment = load_config_text(_text(server, tmp_path, _free_port()), env={"T": TOKEN, "S": "x"})
    out = io.StringIO()
    assert await doctor(deployment, out) == 1
    text = out.getvalue()
    assert (
        "[FAIL] hubspot field: companies.crm_pulse_rate (rate) is a string property, not a "
        "number: the value cannot be written to it" in text
    )
    assert "-> point the rule at another field" in text
    assert "[ok  ] hubspot field: companies.crm_pulse_won (money) exists" in text


async def test_a_busy_ops_listen_address_fails_with_what_to_do(
    portal: tuple[FakeHubSpot, FakeServer], tmp_path: Path
) -> None:
    """Issue 13's runtime.ops_listen is checked like runtime.listen."""
    _, server = portal
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ops = busy.getsockname()[1]
        text = _text(server, tmp_path, _free_port()).replace(
            'listen: "127.0.0.1:', f'ops_listen: "127.0.0.1:{ops}", listen: "127.0.0.1:'
        )
        deployment = load_config_text(text, env={"T": TOKEN, "S": "x"})
        out = io.StringIO()
        assert await doctor(deployment, out) == 1
    lines = out.getvalue()
    assert f"[FAIL] ops_listen: 127.0.0.1:{ops} is already in use" in lines
    assert "-> stop the other process or change runtime.ops_listen" in lines
    assert "[ok  ] listen: " in lines


async def test_zoho_without_the_users_scope_fails_with_what_to_do(tmp_path: Path) -> None:
    """Zoho's ZohoCRM.users.READ says which user crm-pulse writes as (its own changes are no
    one's adoption); doctor tries it like HubSpot's owners scope."""
    from crm_pulse.sandbox import FakeZoho

    fake = FakeZoho()
    with FakeServer(fake.app(), ca=TestCA()) as server:
        ca = server.ca.cert_path if server.ca else ""
        text = f"""
connectors:
  - zoho: {{client_id: "${{I}}", client_secret: "${{S}}", refresh_token: "${{R}}", api_url: "{server.url}", accounts_url: "{server.url}", ca_cert: "{ca}", objects: [Deals]}}
runtime: {{state_path: "{tmp_path}/s.sqlite", listen: "127.0.0.1:{_free_port()}"}}
"""
        env = {"I": fake.client_id, "S": fake.client_secret, "R": fake.refresh_token}
        out = io.StringIO()
        await doctor(load_config_text(text, env=env), out)
        assert "[ok  ] zoho users (ZohoCRM.users.READ): writes as user" in out.getvalue()
        fake.missing_scopes.add("ZohoCRM.users.READ")
        out = io.StringIO()
        assert await doctor(load_config_text(text, env=env), out) == 1
        lines = out.getvalue()
        assert "[FAIL] zoho users (ZohoCRM.users.READ): the API user cannot be read" in lines
        assert "-> add the ZohoCRM.users.READ scope to the grant" in lines
