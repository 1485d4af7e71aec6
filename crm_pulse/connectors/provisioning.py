"""Which custom fields a deployment needs: one :class:`FieldSpec` per write-back target."""

from __future__ import annotations

from ..config.models import Deployment
from .protocols import FieldSpec

__all__ = ["required_fields"]


def required_fields(deployment: Deployment) -> dict[str, list[FieldSpec]]:
    """Connector name -> the custom fields its write-back rules write (deduplicated)."""
    catalog = deployment.catalog()
    out: dict[str, dict[tuple[str, str], FieldSpec]] = {}
    for rule in deployment.writeback:
        target = rule.target
        metric = catalog.metrics.get(rule.metric)
        unit = metric.definition.unit if metric is not None else "number"
        description = metric.definition.description if metric is not None else ""
        which = "" if rule.window == "current" else f" ({rule.which} {rule.window})"
        label = target.label or f"{rule.metric.replace('_', ' ').capitalize()}{which}"
        spec = FieldSpec(
            object=target.object,
            name=target.field,
            label=label[:80],
            unit=unit,
            description=f"crm-pulse: {description}".strip()[:250],
        )
        out.setdefault(target.connector, {}).setdefault((spec.object, spec.name), spec)
    return {name: list(specs.values()) for name, specs in out.items()}
