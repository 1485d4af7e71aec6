"""HubSpot answers against hubspot-api-client's generated models (HubSpot's OpenAPI specs).

Each route the simulator serves is paired with the model the SDK reads its answer into. An
answer is checked twice: deserialised by the SDK's own ``ApiClient`` with client-side
validation on (required properties, enumerations), and walked against the models'
``openapi_types`` with JSON types taken strictly (a number where HubSpot documents a string
id or property value is refused; the SDK would convert it). Rate-limit answers (429) are
checked against the documented body: ``status``, ``message``, ``errorType: RATE_LIMIT``,
``policyName``, ``correlationId``; other errors against the SDK's ``Error`` model.
"""

from __future__ import annotations

import importlib
import json
import re
from datetime import datetime
from typing import Any

__all__ = ["ROUTES", "problems"]

ROUTES: list[tuple[str, re.Pattern[str], str, dict[int, str]]] = [
    # method, path, SDK package, {status: model}
    (
        "POST",
        re.compile(r"^/crm/v3/objects/[^/]+/search$"),
        "crm.objects",
        {200: "CollectionResponseWithTotalSimplePublicObjectForwardPaging"},
    ),
    (
        "GET",
        re.compile(r"^/crm/v3/objects/[^/]+$"),
        "crm.objects",
        {200: "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging"},
    ),
    (
        "POST",
        re.compile(r"^/crm/v3/objects/[^/]+/batch/(read|update)$"),
        "crm.objects",
        {200: "BatchResponseSimplePublicObject", 207: "BatchResponseSimplePublicObjectWithErrors"},
    ),
    (
        "POST",
        re.compile(r"^/crm/v4/associations/[^/]+/[^/]+/batch/read$"),
        "crm.associations.v4",
        {
            200: "BatchResponsePublicAssociationMultiWithLabel",
            207: "BatchResponsePublicAssociationMultiWithLabelWithErrors",
        },
    ),
    (
        "GET",
        re.compile(r"^/crm/v4/objects/[^/]+/[^/]+/associations/[^/]+$"),
        "crm.associations.v4",
        {200: "CollectionResponseMultiAssociatedObjectWithLabelForwardPaging"},
    ),
    (
        "GET",
        re.compile(r"^/crm/v3/owners/?$"),
        "crm.owners",
        {200: "CollectionResponsePublicOwnerForwardPaging"},
    ),
    (
        "GET",
        re.compile(r"^/crm/v3/pipelines/[^/]+$"),
        "crm.pipelines",
        {200: "CollectionResponsePipelineNoPaging"},
    ),
    (
        "GET",
        re.compile(r"^/crm/v3/properties/[^/]+$"),
        "crm.properties",
        {200: "CollectionResponsePropertyNoPaging"},
    ),
    ("POST", re.compile(r"^/crm/v3/properties/[^/]+$"), "crm.properties", {201: "ModelProperty"}),
    (
        "GET",
        re.compile(r"^/crm/v3/properties/[^/]+/groups$"),
        "crm.properties",
        {200: "CollectionResponsePropertyGroupNoPaging"},
    ),
    (
        "POST",
        re.compile(r"^/crm/v3/properties/[^/]+/groups$"),
        "crm.properties",
        {201: "PropertyGroup"},
    ),
]

_PRIMITIVES = {"str": str, "bool": bool}
_clients: dict[str, Any] = {}


class _Answer:
    """What ``ApiClient.deserialize`` reads: an object with ``data``."""

    def __init__(self, data: str) -> None:
        self.data = data


def _client(package: str) -> Any:
    client = _clients.get(package)
    if client is None:
        module = importlib.import_module(f"hubspot.{package}")
        configuration = module.Configuration()
        configuration.client_side_validation = True
        client = _clients[package] = module.ApiClient(configuration=configuration)
    return client


def _model(package: str, name: str) -> Any:
    return getattr(importlib.import_module(f"hubspot.{package}.models"), name)


def _walk(package: str, kind: str, value: Any, where: str, out: list[str]) -> None:
    """JSON types of ``value`` against the SDK type ``kind``; ``None`` is left to the SDK's
    required-property check."""
    if value is None:
        return
    if kind.startswith("list["):
        if not isinstance(value, list):
            out.append(f"{where}: a list expected, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _walk(package, kind[5:-1], item, f"{where}[{i}]", out)
        return
    if kind.startswith("dict["):
        if not isinstance(value, dict):
            out.append(f"{where}: an object expected, got {type(value).__name__}")
            return
        inner = kind[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            _walk(package, inner, item, f"{where}.{key}", out)
        return
    if kind in _PRIMITIVES:
        if not isinstance(value, _PRIMITIVES[kind]):
            out.append(f"{where}: {kind} expected, got {json.dumps(value)[:40]}")
        return
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append(f"{where}: a number expected, got {json.dumps(value)[:40]}")
        return
    if kind == "datetime":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            out.append(f"{where}: an ISO 8601 time expected, got {json.dumps(value)[:40]}")
        return
    if kind in ("object", "date"):
        return
    model = _model(package, kind)
    if not isinstance(value, dict):
        out.append(f"{where}: {kind} (an object) expected, got {type(value).__name__}")
        return
    for attr, attr_kind in model.openapi_types.items():
        key = model.attribute_map[attr]
        if key in value:
            _walk(package, attr_kind, value[key], f"{where}.{key}", out)


def _rate_limit_problems(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return ["a 429 answer must be a JSON object"]
    out = [
        f"429 body lacks {key}"
        for key in ("status", "message", "errorType", "policyName", "correlationId")
        if not isinstance(data.get(key), str)
    ]
    if data.get("errorType") != "RATE_LIMIT":
        out.append(f"429 errorType must be RATE_LIMIT, got {data.get('errorType')!r}")
    return out


def problems(method: str, path: str, status: int, body: bytes, ctype: str) -> list[str]:
    if "json" not in ctype:
        return [f"HubSpot answers JSON, got {ctype or 'no content type'}"] if body else []
    try:
        data = json.loads(body)
    except ValueError:
        return ["the body is not JSON"]
    if status == 429:
        return _rate_limit_problems(data)
    if status >= 400:
        route_package = "crm.objects"
        model_name = "Error"
    else:
        found = [
            (package, models)
            for m, pattern, package, models in ROUTES
            if m == method and pattern.match(path)
        ]
        if not found:
            return [f"no HubSpot model known for {method} {path}"]
        route_package, models = found[0]
        if status not in models:
            return [f"HubSpot documents no {status} answer for {method} {path}"]
        model_name = models[status]
    out: list[str] = []
    try:
        _client(route_package).deserialize(_Answer(body.decode()), model_name)
    except Exception as exc:  # any failure to read it is a finding, never a crash
        out.append(f"{model_name}: {type(exc).__name__}: {exc}")
    try:
        _walk(route_package, model_name, data, model_name, out)
    except Exception as exc:
        out.append(f"{model_name}: {type(exc).__name__}: {exc}")
    return out
