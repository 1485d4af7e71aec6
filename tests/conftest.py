"""Suite-wide: every answer a vendor simulator gives is checked against the vendor's types.

:mod:`crm_pulse.sandbox.contracts` validates each answer (HubSpot: hubspot-api-client's
models; Pipedrive: schemas generated from its OpenAPI description; Salesforce: schemas from
its documentation); a test during which a simulator answered outside its vendor's contract
fails, listing the answers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm_pulse.sandbox import contracts


def pytest_configure(config: pytest.Config) -> None:
    contracts.enable()


@pytest.fixture(autouse=True)
def _vendor_contracts() -> Iterator[None]:
    contracts.take()
    yield
    found = contracts.take()
    if found:
        shown = "\n".join(f"  {v}" for v in found[:20])
        more = f"\n  ... and {len(found) - 20} more" if len(found) > 20 else ""
        pytest.fail(f"simulator answers break the vendors' contracts:\n{shown}{more}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts = contracts.checked()
    if counts:
        shown = ", ".join(f"{vendor} {n}" for vendor, n in sorted(counts.items()))
        terminalreporter.write_line(f"simulator answers checked against vendor contracts: {shown}")
