"""The events ingress under the shipped conformance suite (receiving only: the rest is skipped)."""

from __future__ import annotations

import pytest

from crm_pulse.sandbox.conformance import ConformanceSuite, HarnessFactory

from .harness import make_harness


class TestEventsConformance(ConformanceSuite):
    @pytest.fixture
    def conformance_harness(self) -> HarnessFactory:
        return make_harness
