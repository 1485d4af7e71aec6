"""The README's main command: the demo ends with the sandbox fields equal to replay."""

from __future__ import annotations

import io

from crm_pulse.cli import main


def test_demo_runs_and_its_check_passes() -> None:
    out = io.StringIO()
    assert main(["demo", "--seconds", "3", "--no-live"], out=out) == 0
    text = out.getvalue()
    assert "backfill hubspot" in text or "sandbox" in text
    assert "check: all" in text and "equal `crm-pulse replay`" in text
    assert "demo-hubspot-token" not in text and "demo-pipedrive-token" not in text


def test_demo_crms_selects_the_crms_and_checks_their_fields() -> None:
    out = io.StringIO()
    assert main(["demo", "--seconds", "2", "--no-live", "--crms", "zoho,pipedrive"], out=out) == 0
    text = out.getvalue()
    assert "Zoho CRM at https://127.0.0.1:" in text and "HubSpot at" not in text
    # two Pipedrive and two Zoho fields: every one equals replay
    assert "check: all 4 custom fields" in text, text[-800:]
    assert "demo-zoho-client-secret" not in text and "1000.demo-zoho-refresh" not in text
