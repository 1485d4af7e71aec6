"""``/crm/v3/pipelines`` and ``/crm/v3/properties``: pipelines, properties, property groups."""

from __future__ import annotations

from aiohttp import web

from .answers import _error, _property_answer
from .model import _BUILTIN_GROUPS, _PIPELINES_CREATED, _Property
from .state import _State


class _Schema(_State):
    """Pipelines, properties and property groups."""

    async def _pipelines(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        results = []
        for p in self.pipelines.get(object_type, []):
            stages = [
                {
                    "id": sid,
                    "label": label,
                    "metadata": dict(meta),
                    "archived": False,
                    "displayOrder": i,
                    "createdAt": _PIPELINES_CREATED,
                    "updatedAt": _PIPELINES_CREATED,
                    "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                }
                for i, (sid, label, meta) in enumerate(p["stages"])
            ]
            results.append(
                {
                    "id": p["id"],
                    "label": p["label"],
                    "stages": stages,
                    "archived": False,
                    "displayOrder": 0,
                    "createdAt": _PIPELINES_CREATED,
                    "updatedAt": _PIPELINES_CREATED,
                }
            )
        return web.json_response({"results": results})

    async def _properties(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        with self._lock:
            results = [_property_answer(p) for p in self.properties[object_type].values()]
        return web.json_response({"results": results})

    async def _create_property(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        body = await request.json()
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            return _error(400, "VALIDATION_ERROR", f"missing required fields: {', '.join(missing)}")
        with self._lock:
            if (
                body["groupName"] not in self.groups[object_type]
                and body["groupName"] not in _BUILTIN_GROUPS
            ):
                return _error(
                    400, "VALIDATION_ERROR", f"property group {body['groupName']} does not exist"
                )
            if body["name"] in self.properties[object_type]:
                return _error(
                    409, "OBJECT_ALREADY_EXISTS", f"Property named '{body['name']}' already exists."
                )
            extra = {
                k: v
                for k, v in body.items()
                if k not in ("name", "label", "type", "fieldType", "groupName")
            }
            created = _Property(
                body["name"],
                body["label"],
                body["type"],
                body["fieldType"],
                body["groupName"],
                extra,
            )
            self.properties[object_type][body["name"]] = created
        return web.json_response(_property_answer(created), status=201)

    async def _groups(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        with self._lock:
            results = [
                {"name": n, "label": label, "displayOrder": -1, "archived": False}
                for n, label in self.groups[object_type].items()
            ]
        return web.json_response({"results": results})

    async def _create_group(self, request: web.Request) -> web.Response:
        object_type = self._type(request)
        body = await request.json()
        if not body.get("name") or not body.get("label"):
            return _error(400, "VALIDATION_ERROR", "name and label are required")
        with self._lock:
            if body["name"] in self.groups[object_type]:
                return _error(409, "OBJECT_ALREADY_EXISTS", "group exists")
            self.groups[object_type][body["name"]] = body["label"]
        return web.json_response({"displayOrder": -1, **body, "archived": False}, status=201)
