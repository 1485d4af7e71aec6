"""The company's constants (its home records, boards and reps) and the live changes' counters."""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86_400_000
HOME_COMPANY = "1001"  # the HubSpot company that holds company-wide values
HOME_ORGANIZATION = "101"  # the Pipedrive organization that holds company-wide values
MONDAY_DEALS_BOARD, MONDAY_ACCOUNTS_BOARD = "1000001", "1000002"  # the monday team's boards
HUBSPOT_REPS = ("11", "12", "13", "14")
PIPEDRIVE_REPS = (21, 22)
MONDAY_REPS = (31, 32)
_STAGES = ("appointmentscheduled", "qualifiedtobuy", "contractsent")


@dataclass
class SandboxStats:
    webhooks_sent: int = 0
    webhooks_refused: int = 0
    changes: int = 0
