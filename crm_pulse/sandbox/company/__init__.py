"""The seeded demo company: the simulators of HubSpot, Pipedrive, Salesforce, monday and Zoho CRM, filled with one company.

:class:`Sandbox` starts FakeHubSpot (HTTPS, with a throw-away CA) and FakePipedrive on
127.0.0.1, fills them with a year of one reproducible company (accounts, contacts, deals
through a pipeline with new business, upsells and renewals, tickets, calls, meetings and
e-mails, NPS and CSAT answers), and can then make live changes and deliver them as signed
webhooks (HubSpot v3 signatures, Pipedrive HTTP Basic, monday JWT, Zoho channel tokens) to a
runtime. ``live``
names the CRMs whose changes are made (``crm-pulse demo --crms``; default: all).

``environment()`` gives the variables ``crm_pulse/sandbox/demo.yaml`` reads (URLs, tokens,
secrets).
"""

from .live import Sandbox
from .model import HOME_COMPANY, HOME_ORGANIZATION, SandboxStats

__all__ = ["HOME_COMPANY", "HOME_ORGANIZATION", "Sandbox", "SandboxStats"]
