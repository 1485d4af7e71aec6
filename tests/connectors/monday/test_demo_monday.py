"""`crm-pulse demo --crms` includes monday and checks its fields against replay."""

from __future__ import annotations

import io

from crm_pulse.cli import main


def test_demo_with_monday_only_checks_its_fields() -> None:
    out = io.StringIO()
    assert main(["demo", "--seconds", "2", "--no-live", "--crms", "monday"], out=out) == 0
    text = out.getvalue()
    assert "backfill monday" in text and "backfill hubspot" not in text
    assert "created numbers column 'Won revenue QTD'" in text
    assert "check: all 2 custom fields" in text
    assert "demo-monday-token" not in text and "signing-secret" not in text


def test_demo_refuses_an_unknown_crm() -> None:
    out = io.StringIO()
    assert main(["demo", "--no-live", "--crms", "monday,mondya"], out=out) == 2
    assert "not mondya" in out.getvalue()
