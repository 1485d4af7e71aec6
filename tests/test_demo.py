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
