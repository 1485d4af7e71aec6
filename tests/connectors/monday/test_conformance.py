"""monday under the shipped conformance suite, run as any connector package runs it."""

from __future__ import annotations

import pytest

from crm_pulse.sandbox.conformance import ConformanceSuite, HarnessFactory

from .harness import make_harness


class TestMondayConformance(ConformanceSuite):
    @pytest.fixture
    def conformance_harness(self) -> HarnessFactory:
        return make_harness
