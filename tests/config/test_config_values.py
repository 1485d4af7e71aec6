"""Small value types of the deployment file: durations, references, connector settings."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from crm_pulse.config import (
    Deployment,
    EnvValue,
    format_duration,
    parse_duration,
)
from crm_pulse.config.secrets import resolve_references, scrub
from crm_pulse.connectors.salesforce.settings import SalesforceSettings


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        (" 10s ", 10.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("often", "expected a duration like '30s', got 'often'"),
        ("30", "expected a duration like '30s', got '30'"),
        ("5 m", "expected a duration like '30s', got '5 m'"),
        ("-5s", "expected a duration like '30s', got '-5s'"),
        (30, "expected a duration like '30s', got 30 (add a unit: ms, s, m, h or d)"),
        (None, "expected a duration like '30s', got None"),
    ],
)
def test_bad_durations(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"), [(30.0, "30s"), (5400.0, "90m"), (0.25, "250ms"), (86400.0, "1d")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_resolve_references() -> None:
    data = {
        "a": "${X}",
        "b": ["x-${Y}-${X}", "$${X}"],
        "c": 5,
        "d": "${MISSING}",
        "e": "${bad name}",
    }
    result = resolve_references(data, {"X": "one", "Y": "two"})
    assert result.data["a"] == "one" and isinstance(result.data["a"], EnvValue)
    assert repr(result.data["a"]) == "'${X}'"  # the reference, never the value
    assert result.data["b"] == ["x-two-one", "${X}"]
    assert [(m.path, m.variable) for m in result.missing] == [(("d",), "MISSING")]
    assert result.malformed and result.malformed[0][0] == ("e",)
    assert ("d",) in result.unresolved_paths and ("a",) not in result.unresolved_paths
    assert scrub("got 'one-two'", result.values) == "got 'one-two'"  # short values stay
    long = resolve_references({"k": "${K}"}, {"K": "secret-value"})
    assert scrub("bad: secret-value!", long.values) == "bad: ${K}!"


def test_unresolved_mode_resolves_what_is_set_and_reports_nothing_missing() -> None:
    result = resolve_references({"a": "${X}", "b": "${Y}"}, {"X": "one"}, resolve=False)
    assert result.data["a"] == "one" and result.data["b"] == "${Y}" and not result.missing
    assert result.unresolved_paths == {("b",)}


def test_salesforce_login_choices() -> None:
    base = {"instance_url": "https://x.my.salesforce.com"}
    SalesforceSettings.model_validate({**base, "session_id": "s"})
    SalesforceSettings.model_validate({**base, "client_id": "c", "client_secret": "s"})
    for bad in ({}, {"session_id": "s", "client_id": "c"}, {"client_id": "c"}):
        with pytest.raises(ValidationError):
            SalesforceSettings.model_validate({**base, **bad})
    settings = SalesforceSettings.model_validate({**base, "session_id": "s", "api_version": 60.0})
    assert settings.api_version == "60.0"
    assert isinstance(settings.session_id, SecretStr)


def test_models_built_in_code_accept_plain_secrets() -> None:
    deployment = Deployment.model_validate(
        {"connectors": [{"events": {"secret": "k"}}], "metrics": {"enable": ["win_rate"]}}
    )
    assert deployment.check_references() == []
    assert list(deployment.catalog().metrics) == ["win_rate"]


def test_json_schema_is_available() -> None:
    schema = Deployment.model_json_schema()
    assert set(schema["properties"]) == {
        "version",
        "timezone",
        "fiscal_year_start",
        "connectors",
        "metrics",
        "writeback",
        "runtime",
    }


def test_validation_error_text_never_shows_input() -> None:
    with pytest.raises(ValidationError) as info:
        Deployment.model_validate(
            {
                "connectors": [
                    {
                        "salesforce": {
                            "instance_url": "https://x.my.salesforce.com",
                            "session_id": "SESSION-SECRET-VALUE",
                            "client_id": "c",
                        }
                    }
                ]
            }
        )
    assert "not both" in str(info.value)
    assert "SESSION-SECRET-VALUE" not in str(info.value)
