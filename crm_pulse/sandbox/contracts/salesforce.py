"""Salesforce answers against JSON Schemas written from the documented shapes.

Salesforce publishes no machine-readable description of these REST resources that we may use
here, so each schema below is written from the documentation page named beside it (REST API
Developer Guide, Bulk API 2.0 Developer Guide, OAuth docs; API version 59.0+). Only what the
pages document as always present is required; further properties are allowed.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["SCHEMAS", "problems"]

_STRING = {"type": "string"}
_ERRORS = {
    # "Status Codes and Error Responses" (REST API Developer Guide): a list of
    # {"message", "errorCode", "fields"?}
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["message", "errorCode"],
        "properties": {
            "message": _STRING,
            "errorCode": _STRING,
            "fields": {"type": "array", "items": _STRING},
        },
    },
}
_SAVE_RESULT = {
    # "SaveResult" (REST API: sObject Collections, Create a Record): id, success, errors
    "type": "object",
    "required": ["success", "errors"],
    "properties": {
        "id": {"type": ["string", "null"]},
        "success": {"type": "boolean"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["statusCode", "message"],
                "properties": {
                    "statusCode": _STRING,
                    "message": _STRING,
                    "fields": {"type": "array", "items": _STRING},
                },
            },
        },
    },
}
_RECORD = {
    "type": "object",
    "required": ["attributes"],
    "properties": {
        "attributes": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": _STRING, "url": _STRING},
        }
    },
}
_JOB_STATES = ["UploadComplete", "InProgress", "Aborted", "JobComplete", "Failed"]

SCHEMAS: list[tuple[str, re.Pattern[str], dict[str, Any]]] = [
    (
        # REST API Developer Guide, "Execute a SOQL Query" / "QueryAll": totalSize, done,
        # records, nextRecordsUrl while not done
        "GET",
        re.compile(r"^/services/data/v[\d.]+/query(All)?(/[^/]*)?$"),
        {
            "type": "object",
            "required": ["totalSize", "done", "records"],
            "properties": {
                "totalSize": {"type": "integer"},
                "done": {"type": "boolean"},
                "records": {"type": "array", "items": _RECORD},
                "nextRecordsUrl": {"type": "string", "pattern": "^/services/data/"},
            },
            "if": {"properties": {"done": {"const": False}}},
            "then": {"required": ["nextRecordsUrl"]},
        },
    ),
    (
        # Bulk API 2.0 Developer Guide, "Create a Query Job" and "Get Information About a
        # Query Job": id, operation, object, state (+ errorMessage when Failed)
        "POST",
        re.compile(r"^/services/data/v[\d.]+/jobs/query$"),
        {
            "type": "object",
            "required": ["id", "operation", "object", "state", "apiVersion", "contentType"],
            "properties": {
                "id": _STRING,
                "operation": {"enum": ["query", "queryAll"]},
                "state": {"enum": _JOB_STATES},
                "apiVersion": {"type": "number"},
                "contentType": {"const": "CSV"},
            },
        },
    ),
    (
        "GET",
        re.compile(r"^/services/data/v[\d.]+/jobs/query/[^/]+$"),
        {
            "type": "object",
            "required": ["id", "state", "numberRecordsProcessed"],
            "properties": {
                "id": _STRING,
                "state": {"enum": _JOB_STATES},
                "numberRecordsProcessed": {"type": "integer"},
                "errorMessage": _STRING,
            },
            "if": {"properties": {"state": {"const": "Failed"}}},
            "then": {"required": ["errorMessage"]},
        },
    ),
    (
        # REST API Developer Guide, "sObject Describe": name, custom, fields[{name, type, ...}]
        "GET",
        re.compile(r"^/services/data/v[\d.]+/sobjects/[^/]+/describe/?$"),
        {
            "type": "object",
            "required": ["name", "fields"],
            "properties": {
                "name": _STRING,
                "custom": {"type": "boolean"},
                "fields": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "type"],
                        "properties": {"name": _STRING, "type": _STRING},
                    },
                },
            },
        },
    ),
    (
        # Connect REST API Developer Guide, "Users" resource (``chatter/users/me``): the
        # context user's User Detail, with its ``id`` (a User Id) and ``type`` "User"
        "GET",
        re.compile(r"^/services/data/v[\d.]+/chatter/users/me$"),
        {
            "type": "object",
            "required": ["id", "type"],
            "properties": {"id": _STRING, "type": {"const": "User"}, "username": _STRING},
        },
    ),
    (
        # REST API Developer Guide, "Update Multiple Records" (sObject Collections): a list of
        # SaveResults in the order of the records
        "PATCH",
        re.compile(r"^/services/data/v[\d.]+/composite/sobjects$"),
        {"type": "array", "items": _SAVE_RESULT},
    ),
    (
        # REST API Developer Guide, "Create a Record"; Tooling API, "CustomField"
        "POST",
        re.compile(r"^/services/data/v[\d.]+/(tooling/)?sobjects/[^/]+/?$"),
        _SAVE_RESULT,
    ),
    (
        # "OAuth 2.0 Client Credentials Flow for Server-to-Server Integration": access_token,
        # instance_url, token_type, issued_at, signature
        "POST",
        re.compile(r"^/services/oauth2/token$"),
        {
            "type": "object",
            "required": ["access_token", "instance_url", "token_type"],
            "properties": {
                "access_token": _STRING,
                "instance_url": _STRING,
                "token_type": {"const": "Bearer"},
            },
        },
    ),
]


def _validate(schema: dict[str, Any], data: Any) -> list[str]:
    import jsonschema

    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(body)'}: {error.message[:200]}"
        for error in jsonschema.Draft7Validator(schema).iter_errors(data)
    ]


def problems(method: str, path: str, status: int, body: bytes, ctype: str) -> list[str]:
    if path.endswith("/results") and "/jobs/query/" in path and status == 200:
        # Bulk API 2.0 "Get Results for a Query Job": CSV with Sforce-Locator paging
        return [] if ctype == "text/csv" else [f"query results are CSV, got {ctype}"]
    if "json" not in ctype:
        return [] if not body else [f"Salesforce answers JSON here, got {ctype}"]
    try:
        data = json.loads(body)
    except ValueError:
        return ["the body is not JSON"]
    if status >= 400:
        if path == "/services/oauth2/token":  # OAuth errors: {"error", "error_description"}
            return _validate({"type": "object", "required": ["error"]}, data)
        return _validate(_ERRORS, data)
    for m, pattern, schema in SCHEMAS:
        if m == method and pattern.match(path):
            return _validate(schema, data)
    return [f"no Salesforce schema known for {method} {path}"]
