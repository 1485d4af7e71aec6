"""monday answers against monday's documented GraphQL types and error formats.

A GraphQL answer has the shape of its query, so each answer is checked against a JSON Schema
built from the request's selection (read with :mod:`..graphql`) and the types below, written
from monday's API reference (developer.monday.com/api-reference/reference/<page>, named beside
each type) for the operations crm-pulse uses. GraphQL rules apply: every selected field is in
the answer (null only where the type is nullable, ``!`` marks non-null), nothing else is, and
a field the type does not have is a problem (monday would refuse the query). Scalars follow
monday's encoding: ``ID`` is a string, ``JSON`` a JSON text (column values), ``Date`` and
``ISO8601DateTime`` ISO texts.

Errors are checked against the documented formats (developer.monday.com/api-reference/docs/
error-handling): the GraphQL ``errors`` list (``message``, ``extensions.code``) of 2025-01 and
later, the old top-level ``error_code`` / ``error_message`` / ``status_code`` body, the 500 body
``{"error_message", "status_code"}``; ``COMPLEXITY_BUDGET_EXHAUSTED`` carries an integer
``retry_in_seconds`` (changelog "Breaking change: Updated complexity budget exhausted error"),
the old ``ComplexityException`` message says "reset in N seconds" (changelog "Bug fix: Changes
to ComplexityException error reverted").
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..graphql import Field, GraphQLError, parse

__all__ = ["ENUMS", "TYPES", "problems", "schema_for"]

_STRING: dict[str, Any] = {"type": "string"}
SCALARS: dict[str, dict[str, Any]] = {
    "ID": {"type": "string", "minLength": 1},
    "String": _STRING,
    "Int": {"type": "integer"},
    "Float": {"type": "number"},
    "Boolean": {"type": "boolean"},
    "JSON": _STRING,  # a JSON text: column values' ``value`` (reference/column-values-v2)
    "Date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}"},
    "ISO8601DateTime": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T"},
}

ENUMS: dict[str, list[str]] = {
    # reference/other-types "State"
    "State": ["active", "all", "archived", "deleted"],
    # reference/column-types-reference "ColumnType"
    "ColumnType": [
        "auto_number",
        "board_relation",
        "button",
        "checkbox",
        "color_picker",
        "country",
        "creation_log",
        "date",
        "dependency",
        "doc",
        "direct_doc",
        "dropdown",
        "email",
        "file",
        "formula",
        "group",
        "hour",
        "integration",
        "item_assignees",
        "item_id",
        "last_updated",
        "link",
        "location",
        "long_text",
        "mirror",
        "name",
        "numbers",
        "people",
        "person",
        "phone",
        "progress",
        "rating",
        "status",
        "subtasks",
        "tags",
        "team",
        "text",
        "time_tracking",
        "timeline",
        "unsupported",
        "vote",
        "week",
        "world_clock",
    ],
    # reference/webhooks "WebhookEventType"
    "WebhookEventType": [
        "change_column_value",
        "change_name",
        "change_specific_column_value",
        "change_status_column_value",
        "change_subitem_column_value",
        "change_subitem_name",
        "column_created",
        "create_item",
        "create_subitem",
        "create_subitem_update",
        "create_update",
        "delete_update",
        "edit_update",
        "item_archived",
        "item_deleted",
        "item_moved_to_any_group",
        "item_moved_to_specific_group",
        "item_restored",
        "move_subitem",
        "subitem_archived",
        "subitem_deleted",
    ],
}

TYPES: dict[str, dict[str, str]] = {
    "Query": {  # reference/boards, reference/items, reference/items-page, reference/complexity
        "boards": "[Board]",
        "items": "[Item]",
        "next_items_page": "ItemsResponse!",
        "complexity": "Complexity",
    },
    "Mutation": {  # reference/column-values-v2, reference/columns, reference/webhooks
        "change_multiple_column_values": "Item",
        "create_column": "Column",
        "create_webhook": "Webhook",
    },
    "Board": {  # reference/boards "Fields"
        "id": "ID!",
        "name": "String!",
        "state": "State!",
        "description": "String",
        "columns": "[Column]",
        "items_count": "Int",
        "items_page": "ItemsResponse!",
        "updated_at": "ISO8601DateTime",
        "url": "String!",
        "workspace_id": "ID",
    },
    "Column": {  # reference/columns "Fields"
        "id": "ID!",
        "title": "String!",
        "type": "ColumnType!",
        "settings_str": "String!",
        "archived": "Boolean!",
        "description": "String",
        "width": "Int",
    },
    "Item": {  # reference/items "Fields"
        "id": "ID!",
        "name": "String!",
        "state": "State",
        "created_at": "Date",
        "updated_at": "Date",
        "board": "Board",
        "column_values": "[ColumnValue!]!",
        "creator_id": "String!",
        "email": "String!",
        "relative_link": "String",
        "url": "String!",
    },
    "ColumnValue": {  # reference/column-values-v2 "Fields" (the ColumnValue interface)
        "id": "ID!",
        "type": "ColumnType!",
        "text": "String",
        "value": "JSON",
        "column": "Column!",
    },
    "ItemsResponse": {  # reference/items-page "Fields": cursor null on the last page
        "cursor": "String",
        "items": "[Item!]!",
    },
    "Complexity": {  # reference/complexity "Fields"
        "before": "Int!",
        "after": "Int!",
        "query": "Int!",
        "reset_in_x_seconds": "Int!",
    },
    "Webhook": {  # reference/webhooks "Fields"
        "id": "ID!",
        "board_id": "ID!",
        "event": "WebhookEventType!",
        "config": "String",
    },
}


class _AskedBadly(Exception):
    """The query selects what monday's types do not have."""


def schema_for(type_ref: str, selections: list[Field] | None, where: str = "") -> dict[str, Any]:
    """The JSON Schema of the answer to ``selections`` on a value of ``type_ref``."""
    nullable = not type_ref.endswith("!")
    inner = type_ref.removesuffix("!")
    schema: dict[str, Any]
    if inner.startswith("["):
        schema = {"type": "array", "items": schema_for(inner[1:-1], selections, where)}
    elif inner in SCALARS:
        if selections:
            raise _AskedBadly(f"{where}: a selection on the scalar {inner}")
        schema = SCALARS[inner]
    elif inner in ENUMS:
        schema = {"enum": ENUMS[inner]}
    else:
        fields = TYPES[inner]
        if not selections:
            raise _AskedBadly(f"{where or inner}: {inner} needs a selection")
        properties: dict[str, Any] = {}
        for f in selections:
            if f.name not in fields:
                raise _AskedBadly(f"field {f.name!r} does not exist on monday's type {inner}")
            properties[f.alias] = schema_for(fields[f.name], f.selections, f"{inner}.{f.name}")
        schema = {
            "type": "object",
            "properties": properties,
            "required": [f.alias for f in selections if not f.optional],
            "additionalProperties": False,
        }
    return _or_null(schema) if nullable else schema


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also takes null (said in place, so errors name the field)."""
    if "enum" in schema:
        return {"enum": [*schema["enum"], None]}
    return {**schema, "type": [schema["type"], "null"]}


_EXTENSIONS = {"type": "object", "required": ["code"], "properties": {"code": _STRING}}
_GRAPHQL_ERRORS = {
    # docs/error-handling "Error format" (2025-01 and later)
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["message"],
                "properties": {
                    "message": _STRING,
                    "locations": {"type": "array"},
                    "path": {"type": "array"},
                    "extensions": _EXTENSIONS,
                },
            },
        },
        "account_id": {"type": "integer"},
    },
}
_LEGACY_ERROR = {
    # docs/error-handling, versions 2024-10 and earlier: error_code, status_code, error_message,
    # error_data; and the 500 body {"error_message": "Internal server error", "status_code": 500}
    "type": "object",
    "required": ["error_message", "status_code"],
    "properties": {
        "error_code": _STRING,
        "error_message": _STRING,
        "status_code": {"type": "integer"},
        "error_data": {"type": "object"},
        "errors": {"type": "array", "items": _STRING},
        "account_id": {"type": "integer"},
    },
}
_BUDGET = {
    # changelog "Breaking change: Updated complexity budget exhausted error" (2025-07: code and
    # retry_in_seconds) and "Hotfix: ..." (2025-01: also complexity, complexity_budget_left,
    # complexity_budget_limit, status_code 429)
    "type": "object",
    "required": ["code", "retry_in_seconds"],
    "properties": {
        "retry_in_seconds": {"type": "integer", "minimum": 0},
        "complexity": {"type": "integer"},
        "complexity_budget_left": {"type": "integer"},
        "complexity_budget_limit": {"type": "integer"},
        "status_code": {"const": 429},
    },
}
_RESET = re.compile(r"reset in \d+ seconds?")


def _validate(schema: dict[str, Any], data: Any, where: str = "") -> list[str]:
    import jsonschema

    out = []
    for error in jsonschema.Draft7Validator(schema).iter_errors(data):
        path = "/".join(str(p) for p in error.absolute_path) or "(body)"
        out.append(f"{where}{path}: {error.message[:200]}")
    return out


def _errors(data: dict[str, Any]) -> list[str]:
    if "error_message" in data or "error_code" in data:
        found = _validate(_LEGACY_ERROR, data)
        if data.get("error_code") == "ComplexityException" and not _RESET.search(
            str(data.get("error_message"))
        ):
            found.append("ComplexityException without 'reset in N seconds' in error_message")
        return found
    found = _validate(_GRAPHQL_ERRORS, data)
    for error in data.get("errors") or []:
        ext = error.get("extensions") if isinstance(error, dict) else None
        if isinstance(ext, dict) and ext.get("code") == "COMPLEXITY_BUDGET_EXHAUSTED":
            found += _validate(_BUDGET, ext, "errors/extensions/")
    return found


def problems(
    method: str, path: str, status: int, body: bytes, ctype: str, request_body: bytes = b""
) -> list[str]:
    if status >= 500 and "json" not in ctype:
        return []  # a gateway's own page
    if "json" not in ctype:
        return [f"monday answers JSON, got {ctype!r}"]
    try:
        data = json.loads(body)
    except ValueError:
        return ["the body is not JSON"]
    if not isinstance(data, dict):
        return ["the body is not a JSON object"]
    if "errors" in data or "error_message" in data or "error_code" in data:
        return _errors(data)
    if status != 200:
        return [f"HTTP {status} without an error body"]
    if "data" not in data:
        return ["an answer without data or errors"]
    try:
        asked = json.loads(request_body or b"{}")
        variables = asked.get("variables") or {}
        op = parse(str(asked.get("query") or ""), variables if isinstance(variables, dict) else {})
    except (ValueError, AttributeError, GraphQLError) as exc:
        return [f"data answered to a query that cannot be read: {exc}"]
    root = "Mutation" if op.kind == "mutation" else "Query"
    try:
        schema = schema_for(f"{root}!", op.fields)
    except _AskedBadly as exc:
        return [f"the simulator answered a query monday would refuse: {exc}"]
    return _validate(
        {
            "type": "object",
            "required": ["data"],
            "properties": {"data": schema, "account_id": {"type": "integer"}},
        },
        data,
    )
