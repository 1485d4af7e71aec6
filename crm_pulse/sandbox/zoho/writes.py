"""Update Records (PUT, at most 100, per-record results, 207 when mixed), notified to watching
channels."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .model import _COMMON, _STANDARD, API_USER, _error
from .webhooks import _Webhooks


class _Writes(_Webhooks):
    """The records write API."""

    async def _update(self, request: web.Request) -> web.Response:
        module = self._module(request)
        if module is None:
            return _error(400, "INVALID_MODULE", "the module name given seems to be invalid")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "INVALID_DATA", "body is not JSON")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            return _error(400, "REQUIRED_PARAM_MISSING", "data is missing", param="data")
        if len(data) > 100:
            return _error(400, "LIMIT_EXCEEDED", "cannot update more than 100 records", limit=100)
        results = []
        with self._lock:
            known = {a for a, _, _ in _STANDARD[module] + _COMMON} | set(self.custom[module])
            for item in data:
                rid = str(item.get("id", ""))
                record = self.records[module].get(rid)
                unknown = [k for k in item if k != "id" and k not in known]
                if record is None:
                    results.append(
                        self._failure(
                            "INVALID_DATA", "the related id given seems to be invalid", "id"
                        )
                    )
                elif unknown:
                    results.append(self._failure("INVALID_DATA", "invalid data", unknown[0]))
                else:
                    values = {k: v for k, v in item.items() if k != "id"}
                    self.updates.append((module, rid, values))
                    self.update(module, rid, values, by=API_USER)
                    results.append(
                        {
                            "code": "SUCCESS",
                            "details": {
                                "Modified_Time": record["Modified_Time"],
                                "Modified_By": {"name": "crm-pulse", "id": API_USER["id"]},
                                "Created_Time": record["Created_Time"],
                                "id": rid,
                            },
                            "message": "record updated",
                            "status": "success",
                        }
                    )
        ok = sum(1 for r in results if r["status"] == "success")
        if ok and self.notify_api_writes:
            done = [
                str(item.get("id"))
                for item, r in zip(data, results, strict=True)
                if r["status"] == "success"
            ]
            self._notify_later(module, done)
        status = 200 if ok == len(results) else 207 if ok else 400
        return web.json_response({"data": results}, status=status)

    @staticmethod
    def _failure(code: str, message: str, api_name: str) -> dict[str, Any]:
        return {
            "code": code,
            "details": {"api_name": api_name, "json_path": f"$.data[0].{api_name}"},
            "message": message,
            "status": "error",
        }
