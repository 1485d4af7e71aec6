"""The fields API: standard, common and custom fields (the Deals Stage picklist with forecast
type, category and probability), and custom fields created up to the edition's limit."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .model import _COMMON, _STANDARD, _error
from .state import _Org


class _Fields(_Org):
    """``settings/fields``."""

    def _field_list(self, module: str) -> list[dict[str, Any]]:
        out = []
        for api, label, kind in _STANDARD[module] + _COMMON:
            field: dict[str, Any] = {
                "api_name": api,
                "field_label": label,
                "display_label": label,
                "data_type": kind,
                "custom_field": False,
            }
            if module == "Deals" and api == "Stage":
                field["pick_list_values"] = [
                    {
                        "display_value": value,
                        "actual_value": value,
                        "forecast_type": forecast,
                        "forecast_category": {"name": category, "id": str(n)},
                        "probability": probability,
                        "sequence_number": n,
                        "type": "used",
                    }
                    for n, (value, forecast, category, probability) in enumerate(self.stages, 1)
                ]
            out.append(field)
        return out + list(self.custom[module].values())

    async def _fields(self, request: web.Request) -> web.Response:
        module = self._module(request)
        if module is None:
            return _error(400, "INVALID_MODULE", "the module name given seems to be invalid")
        with self._lock:
            return web.json_response({"fields": json.loads(json.dumps(self._field_list(module)))})

    async def _create_field(self, request: web.Request) -> web.Response:
        module = self._module(request)
        if module is None:
            return _error(400, "INVALID_MODULE", "the module name given seems to be invalid")
        body = await request.json()
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, list) or len(fields) != 1 or not isinstance(fields[0], dict):
            return _error(400, "INVALID_DATA", "fields must hold one field", param="fields")
        spec = fields[0]
        label, kind = spec.get("field_label"), spec.get("data_type")
        if not label or kind not in ("double", "currency", "integer", "text", "date"):
            return _error(400, "MANDATORY_NOT_FOUND", "field_label and data_type are required")
        with self._lock:
            if len(self.custom[module]) >= self.custom_field_limit:
                return _error(
                    400,
                    "LIMIT_EXCEEDED",
                    "custom field limit of the edition reached",
                    limit=self.custom_field_limit,
                )
            if any(f["field_label"] == label for f in self._field_list(module)):
                return _error(400, "DUPLICATE_DATA", "duplicate data", api_name="field_label")
            api = self.add_field(module, str(label), str(kind))
            created = self.custom[module][api]
        return web.json_response(
            {
                "fields": [
                    {
                        "code": "SUCCESS",
                        "details": {"id": created["id"], "api_name": api},
                        "message": "field created",
                        "status": "success",
                    }
                ]
            },
            status=201,
        )
