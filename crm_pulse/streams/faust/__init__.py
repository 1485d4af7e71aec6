"""The Faust runtime (faust-streaming on Kafka): see :mod:`.app` and docs/faust.md."""

from __future__ import annotations

from typing import Any

from ...config.models import Deployment
from .app import FaustPipeline, create_app, event_key, kafka_servers, target_key
from .deadletters import dead_letter_topic

__all__ = ["FaustPipeline", "create_app", "ensure_topics", "event_key", "run_worker", "target_key"]


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
    pipeline = FaustPipeline(deployment, data_dir=data_dir.path, **kwargs)
    asyncio.run(ensure_topics(pipeline))
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
    worker.execute_from_commandline()


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
