"""The deployment file: one YAML file, validated into pydantic models.

::

    from crm_pulse.config import load_config

    deployment = load_config("deploy.yaml")      # ConfigError lists every problem
    catalog = deployment.catalog()                # built-ins (enable/disable) + your metrics
    events = deployment.config_events()           # quotas and spend as canonical events

See ``examples/deploy.yaml`` for every section, commented.
"""

from .check import run_check
from .durations import Duration, format_duration, parse_duration
from .loader import load_config, load_config_text
from .models import (
    CONFIG_SOURCE,
    ConnectorEntry,
    ConnectorSettings,
    Deployment,
    EventsSettings,
    FaustSettings,
    HubSpotSettings,
    MetricsSection,
    PipedriveSettings,
    QuotaEntry,
    RuntimeSection,
    SalesforceSettings,
    SpendEntry,
    WritebackRule,
    WritebackTarget,
    plugin_kinds,
)
from .secrets import EnvValue, Secret

__all__ = [
    "CONFIG_SOURCE",
    "ConnectorEntry",
    "ConnectorSettings",
    "Deployment",
    "Duration",
    "EnvValue",
    "EventsSettings",
    "FaustSettings",
    "HubSpotSettings",
    "MetricsSection",
    "PipedriveSettings",
    "QuotaEntry",
    "RuntimeSection",
    "SalesforceSettings",
    "Secret",
    "SpendEntry",
    "WritebackRule",
    "WritebackTarget",
    "format_duration",
    "load_config",
    "load_config_text",
    "parse_duration",
    "plugin_kinds",
    "run_check",
]
