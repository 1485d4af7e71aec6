"""monday settings are checked like every connector's: file and line, all problems at once."""

from __future__ import annotations

import pytest

from crm_pulse.config import load_config_text
from crm_pulse.errors import ConfigError


def test_monday_settings_errors_name_key_and_line() -> None:
    text = """
connectors:
  - monday:
      api_token: plaintext-token
      boards: {deals: {id: "12ab"}}
      api_version: "2025-08"
      signing_secret: "${SECRET}"
      pol_interval: 30s
"""
    with pytest.raises(ConfigError) as info:
        load_config_text(text, env={"SECRET": "s" * 40})
    message = str(info.value)
    assert "api_token" in message and "${" in message
    assert "digits only" in message and ":5:" in message
    assert "api_version" in message
    assert "pol_interval" in message and "poll_interval" in message
    assert "plaintext-token" not in message


def test_a_jwt_needs_its_audience_and_some_board_is_needed() -> None:
    text = """
connectors:
  - monday:
      api_token: "${T}"
      boards: {}
      signing_secret: "${S}"
"""
    with pytest.raises(ConfigError) as info:
        load_config_text(text, env={"T": "t", "S": "s" * 40})
    assert "webhook_url" in str(info.value)


def test_a_valid_monday_section_builds() -> None:
    text = """
connectors:
  - monday:
      api_token: "${T}"
      boards: {deals: {id: 123, columns: {amount: ARR}}, accounts: {id: "456"}}
      stages: {won: [Closed won], lost: [Closed lost]}
      reconcile_every: 10m
"""
    deployment = load_config_text(text, env={"T": "t"})
    (entry,) = deployment.connectors
    settings = next(iter(entry.__pydantic_extra__.values()))
    assert settings.boards.deals.id == "123"
    assert settings.reconcile_every == 600


def test_the_monday_connector_is_built_from_the_public_kit_only() -> None:
    """Like a plugin: crm-pulse is reached only through ``crm_pulse.connectors`` (the kit)."""
    import ast
    from pathlib import Path

    import crm_pulse.connectors.monday as monday

    folder = Path(monday.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 2:  # from .. import X: the kit
                    assert node.module is None, (path.name, node.module)
                assert node.level in (0, 1, 2), (path.name, node.module)
                assert node.level or not (node.module or "").startswith("crm_pulse"), path.name
