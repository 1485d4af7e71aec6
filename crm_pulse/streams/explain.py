"""``crm-pulse explain --config FILE``: which records make a number, from a running (or
stopped) deployment's state: the embedded runtime's state file, or for the Faust runtime the
``records`` table's changelog topic in Kafka (:mod:`.faust.changelog`, read without joining the
workers' group). The state holds each record's last applied fields (those its measures read)
and stage history; :func:`record_states` turns them into the record states
:func:`crm_pulse.metrics.explain.explain` reads. Nothing is written.

The embedded runtime reads only the records of the group asked about, through the group index
(:mod:`crm_pulse.metrics.groupindex`): in memory for the status page's drill-down
(:func:`explain_store`), from the state file's ``record_groups`` table for ``crm-pulse explain
--config`` (:mod:`.embedded.groups`; a file whose table is not current, because no runtime of
this version has started on it yet, is read whole as before). The Faust runtime's records are
a changelog topic, which has no lookup by key: it is read whole (docs/faust.md says why).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..config.models import Deployment
from ..errors import ConfigError
from ..metrics.catalog import Catalog, CompiledMetric
from ..metrics.explain import Explanation, explain, question
from ..metrics.groupindex import GroupIndex, metric_objects
from ..metrics.measures import Group
from ..metrics.reference import RecordState
from ..metrics.state import Key, StateStore
from .embedded.checkpoints import events_after_checkpoint
from .embedded.database import Database, StateError
from .embedded.groups import group_record_keys, index_current, object_record_keys
from .embedded.rebuild import rebuild_due
from .embedded.state import SQLiteStore, entry_problem, loads_state

__all__ = ["explain_deployment", "explain_store", "record_states"]


def record_states(catalog: Catalog, items: Iterable[tuple[Key, Any]]) -> Iterator[RecordState]:
    """Record states from engine state entries (``("r", source, object, id)`` keys)."""
    for key, state in items:
        if key[0] != "r" or state[1] is None:
            continue  # not a record, or deleted
        obj = key[2]
        reads = catalog.reads.get(obj)
        if reads is None or len(reads) != len(state[1]):
            continue  # an object no metric of this catalog reads
        values = dict(zip(reads, state[1], strict=True))
        values.setdefault("source", key[1])
        stays = catalog.stays.get(obj)
        history = (
            [{stays.field: h[1], stays.entered: h[2]} for h in (state[3] or ())]
            if stays is not None
            else []
        )
        yield (key[1], key[2], key[3]), values, history


def explain_store(
    catalog: Catalog,
    store: StateStore,
    index: GroupIndex,
    metric: str,
    window: str,
    group: Group,
    as_of: int,
) -> Explanation:
    """Explain a value from a live state and its group index: reads the records of
    ``group`` only (every record of the metric's objects for the company-wide group)."""
    compiled, _win = question(catalog, metric, window, group)
    keys = index.candidates(compiled, group)
    items = [(key, store.get(key)) for key in keys]
    states = list(record_states(catalog, ((k, v) for k, v in items if v is not None)))
    return explain(catalog, states, metric, window, group, as_of, states=True)


def _file_records(
    db: Database, catalog: Catalog, compiled: CompiledMetric, group: Group
) -> list[tuple[Key, Any]] | None:
    """The records of ``group`` read from the state file through its ``record_groups``
    table (None: the table is not current; the caller reads every record)."""
    index = GroupIndex(catalog)
    conn = db.conn
    if not index_current(conn, index):
        return None
    texts: set[str] = set()
    for obj in metric_objects(compiled):
        terms = index.query(obj, group)
        if terms is None:
            texts.update(object_record_keys(conn, obj))
        else:
            texts.update(group_record_keys(conn, terms))
    out: list[tuple[Key, Any]] = []
    for text in sorted(texts):
        row = conn.execute("SELECT key, value FROM state WHERE k = ?", (text,)).fetchone()
        if row is None:
            continue  # gone since (a hash collision or a deleted record): not a candidate
        try:
            key, value = loads_state(row[0]), loads_state(row[1])
        except Exception as exc:
            raise ValueError(f"key {text[:60]!r}: not readable ({exc})") from None
        problem = entry_problem(key, value)
        if problem is not None:
            raise ValueError(f"key {text[:60]!r}: {problem}")
        out.append((key, value))
    out.sort(key=lambda item: tuple(str(x) for x in item[0]))
    return out


def _group_or_every(
    db: Database, catalog: Catalog, compiled: CompiledMetric, group: Group
) -> list[tuple[Key, Any]]:
    """The group's records through the file's group index or, without a current one, every
    entry of the state file (after the checks that read the whole file)."""
    found = _file_records(db, catalog, compiled, group)
    if found is not None:
        return found
    db.check()
    store = SQLiteStore()
    store.load(db.conn)
    return list(store.items())


def explain_deployment(
    deployment: Deployment, metric: str, window: str, group: Group, as_of: int
) -> Explanation:
    """Explain a value from the deployment's state (read only): the embedded runtime's state
    file, or a Faust deployment's ``records`` table in Kafka."""
    catalog = deployment.catalog()
    if deployment.runtime.kind == "faust":
        from .faust.definitions import tables_differ

        differ = asyncio.run(tables_differ(deployment))
        if differ is not None:  # the records hold the fields other definitions read
            raise ConfigError(
                f"runtime.faust.app_id: metric definitions changed since the tables of app "
                f"{deployment.runtime.faust.app_id!r} were built ({differ}); explain from the "
                "events instead (crm-pulse explain with an events file)"
            )
        items = asyncio.run(_faust_state(deployment))
        states = list(record_states(catalog, items))
        return explain(catalog, states, metric, window, group, as_of, states=True)
    path = Path(deployment.runtime.state_path)
    if not path.exists():
        raise ConfigError(f"runtime.state_path: no state file at {path} (has the deployment run?)")
    due = rebuild_due(str(path), catalog, deployment.window_specs())
    if due is not None:  # its records hold the fields other definitions read
        raise ConfigError(
            f"runtime.state_path: {path}: {due}. Start the runtime once, or explain from the "
            "log: crm-pulse events export --config FILE > events.jsonl, then crm-pulse explain "
            "with events.jsonl"
        )
    compiled, _win = question(catalog, metric, window, group)  # before the file is read
    if events_after_checkpoint(str(path)) > 0:  # the log moved past the file's state
        from .embedded.commands import current_state

        store = current_state(deployment, str(path)).store
        assert store.index is not None
        return explain_store(catalog, store, store.index, metric, window, group, as_of)
    # the checks that read the whole file wait: each record read is checked as it is read
    db = Database(path, create=False, check=False)
    try:
        try:
            items = db.call(lambda: _group_or_every(db, catalog, compiled, group))
        except ValueError as exc:
            raise StateError(db.path, "table state", str(exc)[:200]) from None
    finally:
        db.close()
    states = list(record_states(catalog, items))
    return explain(catalog, states, metric, window, group, as_of, states=True)


async def _faust_state(deployment: Deployment) -> list[tuple[Key, Any]]:
    """The engine state held by a Faust deployment's ``records`` table (its changelog)."""
    from aiokafka.errors import KafkaError

    from .faust.app import kafka_servers
    from .faust.changelog import changelog_topic, read_changelog, state_items

    settings = deployment.runtime.faust
    topic = changelog_topic(settings.app_id, "records")
    try:
        entries = await read_changelog(kafka_servers(settings.broker), topic, settings.partitions)
    except (LookupError, TimeoutError) as exc:
        raise ConfigError(f"runtime.faust: {exc}") from None
    except (KafkaError, OSError) as exc:
        raise ConfigError(f"runtime.faust.broker: cannot read {topic}: {exc}") from None
    return list(state_items(entries))
