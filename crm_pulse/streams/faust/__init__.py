"""The Faust runtime (faust-streaming on Kafka): see :mod:`.app` and docs/faust.md."""

from __future__ import annotations

from typing import Any

from ...config.models import Deployment
from .app import FaustPipeline, create_app, event_key, target_key

__all__ = ["FaustPipeline", "create_app", "event_key", "run_worker", "target_key"]


def run_worker(deployment: Deployment, *, loglevel: str = "warning", **kwargs: Any) -> None:
    """Start a worker in this process (``crm-pulse worker`` / ``run`` with ``kind: faust``)."""
    import faust

    pipeline = FaustPipeline(deployment, **kwargs)
    faust.Worker(pipeline.app, loglevel=loglevel, quiet=True).execute_from_commandline()
