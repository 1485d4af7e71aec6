"""``GET query`` / ``queryAll``: SOQL run against the records, answered in pages linked by
``nextRecordsUrl``."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from .model import _error, _Page
from .soql import Query, SoqlError, check_types, evaluate, parse_soql, sort_value
from .state import _Org


class _Query(_Org):
    """The REST query API."""

    def _public(
        self, sobject: str, record: Mapping[str, Any], fields: Sequence[str]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": sobject,
                "url": f"/services/data/v{self.api_version}/sobjects/{sobject}/{record['Id']}",
            }
        }
        for name in fields:
            out[name] = record.get(name)
        return out

    def _select(self, soql: str, all_rows: bool) -> tuple[Query, list[dict[str, Any]]]:
        """Run a query: the parsed query and the matching rows, ordered and limited."""
        query = parse_soql(soql)
        with self._lock:
            schema = self.schema.get(query.sobject)
            if schema is None:
                raise SoqlError(
                    "INVALID_TYPE",
                    f"sObject type '{query.sobject}' is not supported. If you are attempting to "
                    "use a custom object, be sure to append the '__c' after the entity name.",
                )
            for name in [*query.fields, *(o[0] for o in query.order)]:
                if name not in schema:
                    raise SoqlError(
                        "INVALID_FIELD",
                        f"No such column '{name}' on entity '{query.sobject}'. If you are "
                        "attempting to use a custom field, be sure to append the '__c' after "
                        "the custom field name.",
                    )
            check_types(query.where, schema, query.sobject)
            rows = [
                dict(r)
                for r in self.records[query.sobject].values()
                if (all_rows or not r["IsDeleted"]) and evaluate(query.where, r, schema)
            ]
        for name, desc, nulls_last in reversed(query.order):
            ftype = schema[name]
            present = [r for r in rows if r.get(name) is not None]
            absent = [r for r in rows if r.get(name) is None]
            present.sort(key=functools.partial(sort_value, name, ftype), reverse=desc)
            rows = present + absent if nulls_last else absent + present
        if query.limit is not None:
            rows = rows[: query.limit]
        return query, rows

    async def _query(self, request: web.Request) -> web.Response:
        soql = request.query.get("q")
        if not soql:
            return _error(400, "MALFORMED_QUERY", "A query string has to be specified", {})
        all_rows = request.path.rstrip("/").endswith("queryAll")
        query, rows = self._select(soql, all_rows)
        if query.count:
            return web.json_response({"totalSize": len(rows), "done": True, "records": []})
        public = [self._public(query.sobject, r, query.fields) for r in rows]
        return web.json_response(self._page(public, all_rows, 0))

    def _page(self, records: list[dict[str, Any]], all_rows: bool, start: int) -> dict[str, Any]:
        chunk = records[start : start + self.page_size]
        done = start + len(chunk) >= len(records)
        body: dict[str, Any] = {"totalSize": len(records), "done": done, "records": chunk}
        if not done:
            with self._lock:
                locator = f"01g{next(self._cursor_ids):012d}AAA"
                self._cursors[locator] = _Page(records, all_rows)
            kind = "queryAll" if all_rows else "query"
            body["nextRecordsUrl"] = (
                f"/services/data/v{self.api_version}/{kind}/{locator}-{start + len(chunk)}"
            )
        return body

    async def _more(self, request: web.Request) -> web.Response:
        locator, _, offset = request.match_info["locator"].rpartition("-")
        with self._lock:
            page = self._cursors.pop(locator, None)
        if page is None or not offset.isdigit():
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator", self._limits())
        return web.json_response(self._page(page.records, page.all_rows, int(offset)))
