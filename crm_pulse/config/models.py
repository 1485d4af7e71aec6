"""The deployment file's models, by section (kept as one import place for existing code).

New code imports from the module of the subject: :mod:`.base` (the strict base model and
value types), :mod:`.mappings` (CRM value -> canonical value), :mod:`.connectors` (connector
entries and the settings bases), :mod:`.metrics`, :mod:`.writeback`, :mod:`.runtime`,
:mod:`.deployment` (the whole file) and :mod:`.checks` (checks across sections). Each
connector's own settings model lives next to it, in ``crm_pulse/connectors/<kind>/settings.py``.
"""

from .base import CONFIG_SOURCE, ConfigModel
from .connectors import ConnectorEntry, ConnectorSettings, VendorSettings, settings_model
from .deployment import Deployment
from .mappings import (
    ActivityTypeMapping,
    DealTypeMapping,
    FieldOverrides,
    LifecycleMapping,
    SurveyTypeMapping,
)
from .metrics import MetricsSection, QuotaEntry, SpendEntry
from .runtime import FaustSettings, RetrySettings, RuntimeSection
from .writeback import RecordMatch, WritebackRule, WritebackTarget

__all__ = [
    "CONFIG_SOURCE",
    "ActivityTypeMapping",
    "ConfigModel",
    "ConnectorEntry",
    "ConnectorSettings",
    "DealTypeMapping",
    "Deployment",
    "FaustSettings",
    "FieldOverrides",
    "LifecycleMapping",
    "MetricsSection",
    "QuotaEntry",
    "RecordMatch",
    "RetrySettings",
    "RuntimeSection",
    "SpendEntry",
    "SurveyTypeMapping",
    "VendorSettings",
    "WritebackRule",
    "WritebackTarget",
    "settings_model",
]
