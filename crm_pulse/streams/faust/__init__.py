"""The Faust runtime (faust-streaming on Kafka): see :mod:`.app` and docs/faust.md."""

from __future__ import annotations

import logging
from typing import Any

from ...config.models import Deployment
from ...errors import ConfigError, ConfigProblem
from .app import FaustPipeline, create_app, event_key, kafka_servers, target_key
from .deadletters import dead_letter_topic

__all__ = ["FaustPipeline", "create_app", "ensure_topics", "event_key", "run_worker", "target_key"]

log = logging.getLogger("crm_pulse.faust")


async def ensure_topics(pipeline: FaustPipeline) -> list[str]:
    """Create the app's topics and table changelogs before any worker subscribes.

    Workers that start together otherwise race: one creates the topics while another has
    already subscribed without them, and Faust ignores a topic missing at subscription.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    settings = pipeline.deployment.runtime.faust
    servers = kafka_servers(str(pipeline.app.conf.broker[0]))
    names = {
        pipeline.events.get_topic_name(): settings.partitions,
        pipeline.deltas.get_topic_name(): settings.partitions,
        pipeline.values.get_topic_name(): settings.partitions,
        pipeline.dead.get_topic_name(): 1,
    }
    changelogs = {
        table.changelog_topic.get_topic_name(): settings.partitions
        for table in (pipeline.record_table, pipeline.aggregate_table, pipeline.writer_table)
    }
    changelogs[dead_letter_topic(settings.app_id)] = 1  # compacted too: one letter per field
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    created = []
    try:
        for name, partitions in {**names, **changelogs}.items():
            # a changelog keeps the last record per key (compacted), like Faust makes it
            config = {"cleanup.policy": "compact"} if name in changelogs else {}
            try:
                response = await admin.create_topics(
                    [NewTopic(name, partitions, 1, topic_configs=config)]
                )
            except TopicAlreadyExistsError:
                continue
            errors = [e for e in getattr(response, "topic_errors", []) if e[1] not in (0, 36)]
            if errors:  # 36: the topic already exists (another worker made it)
                raise RuntimeError(f"could not create Kafka topic {name}: error {errors[0][1]}")
            created.append(name)
    finally:
        await admin.close()
    return created


SESSION_LIMITS = ("group.min.session.timeout.ms", "group.max.session.timeout.ms")


def session_problem(seconds: float, limits: dict[str, int]) -> ConfigProblem | None:
    """``runtime.faust.session_timeout`` outside what the broker allows (``limits``: its
    ``group.min/max.session.timeout.ms``), or None."""
    from ...config.durations import format_duration

    low, high = (limits.get(name) for name in SESSION_LIMITS)
    if (low is None or seconds * 1000 >= low) and (high is None or seconds * 1000 <= high):
        return None
    allowed = (
        f"from {format_duration(low / 1000) if low is not None else '0s'}"
        f"{f' to {format_duration(high / 1000)}' if high is not None else ''}"
    )
    return ConfigProblem(
        "runtime.faust.session_timeout",
        f"the Kafka broker allows session timeouts {allowed} ({SESSION_LIMITS[0]}, "
        f"{SESSION_LIMITS[1]}) and would refuse {format_duration(seconds)} when the worker joins "
        "the group (INVALID_SESSION_TIMEOUT: the worker would run without ever consuming); "
        "change session_timeout or the brokers' setting",
    )


async def broker_session_limits(pipeline: FaustPipeline) -> dict[str, int]:
    """The broker's ``group.min/max.session.timeout.ms`` ({} if it does not say: a cluster
    whose ACLs refuse DescribeConfigs starts the worker as before)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_servers(str(pipeline.app.conf.broker[0])))
    await admin.start()
    try:
        node = str((await admin.describe_cluster())["brokers"][0]["node_id"])
        wanted = ConfigResource(ConfigResourceType.BROKER, node, dict.fromkeys(SESSION_LIMITS))
        response = (await admin.describe_configs([wanted]))[0].to_object()
        entries = response["resources"][0]["config_entries"]
        return {
            e["config_names"]: int(e["config_value"])
            for e in entries
            if e["config_names"] in SESSION_LIMITS and str(e["config_value"] or "").isdigit()
        }
    except Exception:
        log.warning("could not read the broker's session timeout limits", exc_info=True)
        return {}
    finally:
        await admin.close()


def run_worker(
    deployment: Deployment, *, edge: bool = False, loglevel: str = "warning", **kwargs: Any
) -> None:
    """Start a worker in this process. ``crm-pulse worker``: the stream processing only;
    ``crm-pulse run`` with ``kind: faust`` (``edge=True``): also the HTTP server (webhooks,
    ingress, status) and the pollers, forwarding into Kafka (:class:`~.edge.EdgeRuntime`).
    Run one edge and as many workers as there are partitions to share."""
    import asyncio

    from .datadir import claim_data_dir

    settings = deployment.runtime.faust
    data_dir = claim_data_dir(settings.data_dir, settings.app_id)  # held until the process ends
    pipeline = FaustPipeline(
        deployment, data_dir=data_dir.path, instance_id=data_dir.instance_id, **kwargs
    )
    asyncio.run(ensure_topics(pipeline))
    problem = session_problem(
        settings.session_timeout, asyncio.run(broker_session_limits(pipeline))
    )
    if problem is not None:
        raise ConfigError([problem])
    from .definitions import check_definitions

    asyncio.run(check_definitions(pipeline))  # tables built under other definitions: refused
    if edge:
        from ..http import serve_runtime
        from .edge import EdgeRuntime

        async def run_edge() -> None:
            runtime = EdgeRuntime(deployment)
            await runtime.run(asyncio.Event(), serve=serve_runtime)

        pipeline.app.task(run_edge)
    worker = _worker_class()(pipeline.app, loglevel=loglevel, quiet=True)
    _tune_gc()
    worker.execute_from_commandline()


GC_YOUNG = 50_000
"""Allocations between two collections of the youngest generation in a worker (Python's
default is 700)."""


def _tune_gc() -> None:
    """Python's cyclic garbage collector, tuned for a worker: what start-up built (modules, the
    app, the catalog) is set aside for good (``gc.freeze``), and young collections run every
    50,000 allocations instead of 700. A worker allocates a few dozen short-lived containers
    per event (deltas, entries, Faust's events) and holds a batch of them at a time, so with the
    defaults the collector ran about 1,000 times per 20,000 events and took 13 % of a busy
    worker's CPU (measured with ``gc.callbacks`` in ``benchmarks/faust_runtime.py``); with
    these settings, 4 times and under 2 %. Memory is not at stake: what the collector frees
    is reference cycles, a few per batch."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 20, 20)


def _worker_class() -> Any:
    import faust

    class Worker(faust.Worker):
        """Faust's worker without its terminal spinner. The spinner's log handler sets the root
        logger to DEBUG, so every debug call of aiokafka and Faust (several per message sent)
        built a log record that the handler then dropped: 7 % of a busy worker's time."""

        def on_setup_root_logger(self, logger: Any, level: int) -> None:
            self.spinner = None
            super().on_setup_root_logger(logger, level)
            logger.setLevel(level)

    return Worker
