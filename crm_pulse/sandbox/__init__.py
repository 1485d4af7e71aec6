"""Vendor simulators: local CRMs faithful to the vendors' published contracts.

They serve real HTTP(S) on 127.0.0.1 so that the real client libraries can be tested against
them, and they are what ``crm-pulse demo`` and ``crm-pulse sandbox`` run. Nothing in
:mod:`crm_pulse.connectors` imports this package: connectors talk to real CRMs.

* :mod:`.hubspot` -- :class:`FakeHubSpot` (CRM v3 objects, search, batch, properties, webhooks)
* :mod:`.salesforce` -- :class:`FakeSalesforce` (REST, SOQL, Bulk 2.0, Tooling, Outbound Messages)
* :mod:`.pipedrive` -- :class:`FakePipedrive` (API v2, v1 field definitions, webhooks v2)
* :mod:`.monday` -- :class:`FakeMonday` (GraphQL API v2 read by :mod:`.graphql`, monday CRM
  board templates, cursors that expire, complexity budget, JWT-signed webhooks)
* :mod:`.server` -- :class:`FakeServer` (serve a simulator on a free port in a thread) and
  :class:`TestCA` (a throw-away certificate authority for HTTPS, made with trustme)
* :mod:`.company` -- :class:`Sandbox`, the simulators seeded with one demo company
"""

from .company import HOME_COMPANY, HOME_ORGANIZATION, Sandbox, SandboxStats
from .hubspot import FakeHubSpot
from .monday import FakeMonday
from .pipedrive import FakePipedrive
from .salesforce import FakeSalesforce
from .server import FakeServer, TestCA

__all__ = [
    "HOME_COMPANY",
    "HOME_ORGANIZATION",
    "FakeHubSpot",
    "FakeMonday",
    "FakePipedrive",
    "FakeSalesforce",
    "FakeServer",
    "Sandbox",
    "SandboxStats",
    "TestCA",
]
