"""``/crm/v3/objects``: search, list, batch read and batch update."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .answers import _batch_answer, _error, _public, _too_many
from .model import _WRITABLE_BUILTINS, BATCH_MAX, SEARCH_PAGE_MAX, SEARCH_RESULTS_MAX
from .search import FILTER_GROUPS_MAX, FILTERS_PER_GROUP_MAX, FILTERS_TOTAL_MAX, _match, _sorter
from .state import _State


class _Objects(_State):
    """Records: search, list, batch read, batch update."""

    async def _search(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        body = await request.json()
        self.search_bodies.append(body)
        limit = int(body.get("limit", 10))
        after = int(body.get("after") or 0)
        if limit > SEARCH_PAGE_MAX:
            return _error(400, "VALIDATION_ERROR", f"limit must be <= {SEARCH_PAGE_MAX}")
        if after >= SEARCH_RESULTS_MAX:
            return _error(
                400,
                "VALIDATION_ERROR",
                f"Paging beyond {SEARCH_RESULTS_MAX} results is not supported",
            )
        groups = body.get("filterGroups") or []
        counts = [len(g.get("filters", [])) for g in groups]
        if (
            len(groups) > FILTER_GROUPS_MAX
            or any(n > FILTERS_PER_GROUP_MAX for n in counts)
            or sum(counts) > FILTERS_TOTAL_MAX
        ):
            return _error(
                400,
                "VALIDATION_ERROR",
                f"at most {FILTER_GROUPS_MAX} filterGroups, {FILTERS_PER_GROUP_MAX} filters "
                f"per group and {FILTERS_TOTAL_MAX} filters in all",
            )
        sorts = body.get("sorts") or []
        if len(sorts) > 1:  # HubSpot: "Only one sorting rule can be applied to any search."
            return _error(
                400, "VALIDATION_ERROR", "Only one sorting rule can be applied to any search."
            )
        with self._lock:
            indexed_before = self.clock() - self.index_delay_ms / 1000
            rows = [
                r
                for r in self.records[object_type].values()
                if r.archived_ms is None
                and (self.index_delay_ms == 0 or r.written_at <= indexed_before)
                and (
                    not groups
                    or any(all(_match(r, f) for f in g.get("filters", [])) for g in groups)
                )
            ]
            if sorts:
                # ties of the sort property come in no promised order: here, newest id first,
                # so that a reader relying on an id order among ties loses records
                rows.sort(key=lambda r: int(r.id), reverse=True)
                rows.sort(
                    key=_sorter(str(sorts[0].get("propertyName", ""))),
                    reverse=sorts[0].get("direction") == "DESCENDING",
                )
            end = min(after + limit, SEARCH_RESULTS_MAX)
            page = rows[after:end]
            results = [_public(object_type, r, body.get("properties")) for r in page]
        answer: dict[str, Any] = {"total": len(rows), "results": results}
        if end < len(rows):
            answer["paging"] = {"next": {"after": str(end)}}
        return web.json_response(answer)

    async def _list(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        archived = request.query.get("archived", "false").lower() == "true"
        limit = min(int(request.query.get("limit", "10")), 100)
        after = int(request.query.get("after") or 0)
        names = request.query.getall("properties", [])
        names = [n for part in names for n in part.split(",") if n]
        with self._lock:
            rows = sorted(
                (
                    r
                    for r in self.records[object_type].values()
                    if (r.archived_ms is not None) == archived
                ),
                key=lambda r: int(r.id),
            )
            page = [_public(object_type, r, names) for r in rows[after : after + limit]]
        answer: dict[str, Any] = {"results": page}
        if after + limit < len(rows):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return web.json_response(answer)

    async def _batch_read(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        body = await request.json()
        inputs = body.get("inputs") or []
        if len(inputs) > BATCH_MAX:
            return _too_many(len(inputs), BATCH_MAX)
        results, missing = [], []
        with self._lock:
            for item in inputs:
                record = self.records[object_type].get(str(item.get("id")))
                if record is None or record.archived_ms is not None:
                    missing.append(str(item.get("id")))
                else:
                    results.append(_public(object_type, record, body.get("properties")))
        return _batch_answer(
            results, missing, "Could not get some objects, they may be deleted or not exist."
        )

    async def _batch_update(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        body = await request.json()
        inputs = body.get("inputs") or []
        if len(inputs) > BATCH_MAX:
            return _too_many(len(inputs), BATCH_MAX)
        ids = [str(item.get("id")) for item in inputs]
        if len(set(ids)) != len(ids):
            return _error(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input")
        with self._lock:
            known = self.properties[object_type]
            for item in inputs:
                for name in item.get("properties", {}):
                    if name not in known and name not in _WRITABLE_BUILTINS:
                        return _error(
                            400, "VALIDATION_ERROR", f'Property "{name}" does not exist', {}
                        )
            results, missing = [], []
            for item in inputs:
                rid = str(item.get("id"))
                record = self.records[object_type].get(rid)
                if record is None or record.archived_ms is not None:
                    missing.append(rid)
                    continue
                self.update(object_type, rid, item.get("properties", {}))
                results.append(_public(object_type, record, item.get("properties", {}).keys()))
        return _batch_answer(
            results,
            missing,
            f"Object not found: {', '.join(missing)}",
            with_ids=not self.errors_without_ids,
        )
