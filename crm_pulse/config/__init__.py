"""The deployment file: one YAML file, validated into pydantic models.

::

    from crm_pulse.config import load_config

    deployment = load_config("deploy.yaml")      # ConfigError lists every problem
    catalog = deployment.catalog()                # built-ins (enable/disable) + your metrics
    events = deployment.config_events()           # quotas and spend as canonical events

See ``examples/deploy.yaml`` for every section, commented. Each connector's settings model
lives with the connector (``crm_pulse/connectors/<kind>/settings.py``) and is found through
the ``crm_pulse.connectors`` entry points (:func:`settings_model`).
"""

from .base import CONFIG_SOURCE, ConfigModel
from .check import run_check
from .connectors import ConnectorEntry, ConnectorSettings, VendorSettings, settings_model
from .deployment import Deployment
from .durations import Duration, format_duration, parse_duration
from .loader import load_config, load_config_text
from .mappings import (
    ActivityTypeMapping,
    DealTypeMapping,
    FieldOverrides,
    LifecycleMapping,
    SurveyTypeMapping,
)
from .metrics import MetricsSection, QuotaEntry, SpendEntry
from .runtime import FaustSettings, RetrySettings, RuntimeSection
from .secrets import EnvValue, Secret
from .writeback import RecordMatch, WritebackRule, WritebackTarget

__all__ = [
    "CONFIG_SOURCE",
    "ActivityTypeMapping",
    "ConfigModel",
    "ConnectorEntry",
    "ConnectorSettings",
    "DealTypeMapping",
    "Deployment",
    "Duration",
    "EnvValue",
    "FaustSettings",
    "FieldOverrides",
    "LifecycleMapping",
    "MetricsSection",
    "QuotaEntry",
    "RecordMatch",
    "RetrySettings",
    "RuntimeSection",
    "Secret",
    "SpendEntry",
    "SurveyTypeMapping",
    "VendorSettings",
    "WritebackRule",
    "WritebackTarget",
    "format_duration",
    "load_config",
    "load_config_text",
    "parse_duration",
    "run_check",
    "settings_model",
]
