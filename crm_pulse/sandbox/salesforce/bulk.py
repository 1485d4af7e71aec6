"""Bulk API 2.0 query jobs: created, checked until complete (or failed), results as CSV
paged with ``Sforce-Locator``."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from .model import _error, sf_time
from .query import _Query


class _Bulk(_Query):
    """Bulk API 2.0 query jobs (their rows come from the same SOQL as the REST query)."""

    async def _bulk_create(self, request: web.Request) -> web.Response:
        body = await request.json()
        operation = body.get("operation") if isinstance(body, dict) else None
        if operation not in ("query", "queryAll") or not body.get("query"):
            return _error(400, "INVALIDJOB", "operation query or queryAll and a query", {})
        if body.get("columnDelimiter", "COMMA") != "COMMA":
            return _error(400, "FEATURENOTENABLED", "the fake writes COMMA-delimited CSV", {})
        query, rows = self._select(str(body["query"]), operation == "queryAll")
        if query.count or query.order:
            return _error(
                400, "INVALIDJOB", "Bulk queries support neither COUNT() nor ORDER BY here", {}
            )
        job = f"750{next(self._cursor_ids):012d}AAA"
        with self._lock:
            self.bulk_jobs[job] = [
                [_csv_value(self.schema[query.sobject].get(f), r.get(f)) for f in query.fields]
                for r in rows
            ]
            self._bulk_fields[job] = list(query.fields)
            failure = self._bulk_failures.pop(0) if self._bulk_failures else None
            self.bulk_states[job] = {"state": "UploadComplete", "checks": 0, "error": failure}
        return web.json_response(
            {**self._bulk_info(job, query.sobject, operation), "state": "UploadComplete"}
        )

    def _bulk_info(self, job: str, sobject: str, operation: str) -> dict[str, Any]:
        created = sf_time(self.now_ms())
        return {
            "id": job,
            "operation": operation,
            "object": sobject,
            "createdById": "005000000000001AAA",
            "createdDate": created,
            "systemModstamp": created,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }

    async def _bulk_job(self, request: web.Request) -> web.Response:
        """Job info: UploadComplete -> InProgress -> JobComplete (or Failed), one step per
        status check."""
        job = request.match_info["job"]
        with self._lock:
            rows = self.bulk_jobs.get(job)
            state = self.bulk_states.get(job)
            if rows is None or state is None:
                return _error(404, "NOT_FOUND", "The requested resource does not exist", {})
            state["checks"] += 1
            if state["state"] in ("UploadComplete", "InProgress"):
                done = state["checks"] >= self.bulk_checks
                final = "Failed" if state["error"] else "JobComplete"
                state["state"] = final if done else "InProgress"
            info: dict[str, Any] = {
                "id": job,
                "operation": "query",
                "object": "",
                "state": state["state"],
                "concurrencyMode": "Parallel",
                "contentType": "CSV",
                "apiVersion": float(self.api_version),
                "lineEnding": "LF",
                "columnDelimiter": "COMMA",
                "numberRecordsProcessed": len(rows) if state["state"] == "JobComplete" else 0,
                "retries": 0,
                "totalProcessingTime": 0,
            }
            if state["state"] == "Failed":
                info["errorMessage"] = state["error"]
        return web.json_response(info)

    async def _bulk_results(self, request: web.Request) -> web.Response:
        job = request.match_info["job"]
        with self._lock:
            rows = self.bulk_jobs.get(job)
            fields = self._bulk_fields.get(job, [])
            state = (self.bulk_states.get(job) or {}).get("state")
        if rows is None:
            return _error(404, "NOT_FOUND", "The requested resource does not exist", {})
        if state != "JobComplete":
            return _error(412, "JOB_NOT_COMPLETE", f"Job {job} is not complete: {state}", {})
        try:
            size = int(request.query.get("maxRecords", "50000"))
            start = int(request.query.get("locator") or 0)
        except ValueError:
            return _error(400, "INVALID_LOCATOR", "invalid locator", {})
        chunk = rows[start : start + size]
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(fields)
        writer.writerows(chunk)
        end = start + len(chunk)
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Sforce-Locator": str(end) if end < len(rows) else "null",
                "Sforce-NumberOfRecords": str(len(chunk)),
            },
        )


def _csv_value(ftype: str | None, value: Any) -> str:
    """A value as Bulk API 2.0 CSV writes it: nulls empty, checkboxes true/false, times in Z."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if ftype == "datetime":
        return str(value).replace("+0000", "Z")
    return str(value)
