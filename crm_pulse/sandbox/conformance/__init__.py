"""The connector conformance suite, shipped for every connector package to run.

A connector package runs it against its own simulator (served on 127.0.0.1, real HTTP) by
subclassing :class:`ConformanceSuite` in one of its test modules and providing the
``conformance_harness`` fixture: a function that returns an async context manager yielding a
:class:`Harness` (the connector built against the simulator, and ways to change the simulator)::

    # tests/test_conformance.py of a connector package
    import pytest
    from crm_pulse.sandbox.conformance import ConformanceSuite

    from .harness import make_harness      # () -> AsyncContextManager[MyHarness]

    class TestConformance(ConformanceSuite):
        @pytest.fixture
        def conformance_harness(self):
            return make_harness

The tests are plain (synchronous) pytest tests that run each check on a fresh event loop, so no
asyncio plugin is needed. A check for a part the connector does not have (``source``,
``receiver``, ``sink``, ``provisioner`` left None) or for something the simulator cannot do
(:attr:`Harness.deletes`, :attr:`Harness.rate_limits`, :attr:`Harness.bad_records`,
:attr:`Harness.faults`) is **skipped**, not failed.

The module is also a pytest plugin (``pytest_plugins = ["crm_pulse.sandbox.conformance"]``
or ``-p crm_pulse.sandbox.conformance``): it registers the ``conformance`` marker its tests
carry, so ``pytest -m conformance`` runs only them. The built-in connectors run it the same
way (``tests/connectors/<kind>/test_conformance.py`` in crm-pulse's repository).

"Deal" means the CRM's deal-like object (HubSpot deals, Salesforce Opportunity, Pipedrive
deals); its canonical events have ``object == "deal"`` and ``id`` equal to the CRM's id.
"""

from .harness import Harness, HarnessFactory, drain
from .suite import ConformanceSuite, pytest_configure

__all__ = ["ConformanceSuite", "Harness", "HarnessFactory", "drain", "pytest_configure"]
