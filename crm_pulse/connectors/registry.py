"""Finding connector plugins: the ``crm_pulse.connectors`` entry-point group.

A third party adds a CRM by publishing a package with::

    [project.entry-points."crm_pulse.connectors"]
    mycrm = "mycrm_pulse:MyCrmConnector"

where ``MyCrmConnector`` subclasses :class:`~crm_pulse.connectors.protocols.Connector`. The
deployment file then accepts ``- mycrm: {...}`` under ``connectors``.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from ..errors import ConfigError, ConfigProblem
from .protocols import Connector

__all__ = ["PLUGIN_GROUP", "build_connector", "connector_class", "connector_kinds"]

PLUGIN_GROUP = "crm_pulse.connectors"


def connector_kinds() -> list[str]:
    """Every registered connector kind."""
    return sorted({ep.name for ep in entry_points(group=PLUGIN_GROUP)})


def connector_class(kind: str) -> type[Connector]:
    """The plugin class registered for ``kind``; a ConfigError names every kind looked at."""
    found = [ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name == kind]
    if not found:
        known = ", ".join(connector_kinds()) or "none"
        raise ConfigError(
            [
                ConfigProblem(
                    path=f"connectors.{kind}",
                    message=f"no connector plugin named {kind!r} in the entry-point group "
                    f"{PLUGIN_GROUP!r} (installed: {known})",
                )
            ]
        )
    try:
        cls = found[0].load()
    except Exception as exc:  # a broken plugin: say which, without a traceback
        raise ConfigError(
            f"the connector plugin {kind!r} ({found[0].value}) could not be loaded: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(
            f"entry point {kind!r} = {found[0].value} is not a crm_pulse Connector subclass"
        )
    return cls


def build_connector(kind: str, name: str, settings: Any) -> Connector:
    """Build the connector ``name`` of ``kind`` from its settings (a config model or mapping)."""
    return connector_class(kind)(name, settings)
