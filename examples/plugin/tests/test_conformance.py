"""The TinyCRM plugin passes crm-pulse's shipped conformance suite."""

from __future__ import annotations

import pytest

from crm_pulse.sandbox.conformance import ConformanceSuite, HarnessFactory

from .harness import make_harness


class TestTinyCrmConformance(ConformanceSuite):
    @pytest.fixture
    def conformance_harness(self) -> HarnessFactory:
        return make_harness
