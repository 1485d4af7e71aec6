"""Generate the JSON schemas of the Pipedrive answers crm-pulse reads, from Pipedrive's own
OpenAPI description as published in its official client.

Pipedrive publishes its API as an OpenAPI description and generates its official Node.js client
(github.com/pipedrive/client-nodejs, MIT licence, (C) Pipedrive, Inc.) from it with
openapi-generator: one TypeScript model per schema of the description and, per operation, the
schema of its 200 answer. The description itself is not reachable from our CI, the client is:
this script reads the client's generated models (``src/versions/v{1,2}``) and writes, for the
operations listed in :data:`OPERATIONS`, the response schemas as JSON Schema (draft 7) into
``crm_pulse/sandbox/contracts/pipedrive_schemas.json``, with the source, version, commit and
licence recorded in the file. The simulator's answers are validated against them in the tests.

One deliberate relaxation, written into the file: a property the description marks optional
may also be ``null``. Pipedrive's description omits ``nullable`` on fields its API answers with
``null`` (a deal's ``won_time`` while open, a person's ``org_id`` when it has none), so the
strict reading would refuse real answers. Types, required properties and enumerations are kept.

Usage::

    python scripts/pipedrive_schemas.py --git-dir /path/to/client-nodejs/.git [--rev HEAD]
    python scripts/pipedrive_schemas.py --source-dir /path/to/client-nodejs
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "crm_pulse/sandbox/contracts/pipedrive_schemas.json"

OPERATIONS: dict[str, tuple[str, str, str]] = {
    # "METHOD path" as the simulator routes it -> (API version, API file, operation)
    "GET /api/v2/deals": ("v2", "deals-api.ts", "getDeals"),
    "GET /api/v2/deals/archived": ("v2", "deals-api.ts", "getArchivedDeals"),
    "GET /api/v2/deals/{id}": ("v2", "deals-api.ts", "getDeal"),
    "PATCH /api/v2/deals/{id}": ("v2", "deals-api.ts", "updateDeal"),
    "GET /api/v2/persons": ("v2", "persons-api.ts", "getPersons"),
    "GET /api/v2/persons/{id}": ("v2", "persons-api.ts", "getPerson"),
    "PATCH /api/v2/persons/{id}": ("v2", "persons-api.ts", "updatePerson"),
    "GET /api/v2/organizations": ("v2", "organizations-api.ts", "getOrganizations"),
    "GET /api/v2/organizations/{id}": ("v2", "organizations-api.ts", "getOrganization"),
    "PATCH /api/v2/organizations/{id}": ("v2", "organizations-api.ts", "updateOrganization"),
    "GET /api/v2/activities": ("v2", "activities-api.ts", "getActivities"),
    "GET /api/v2/activities/{id}": ("v2", "activities-api.ts", "getActivity"),
    "GET /api/v2/dealFields": ("v2", "deal-fields-api.ts", "getDealFields"),
    "POST /api/v2/dealFields": ("v2", "deal-fields-api.ts", "addDealField"),
    "GET /api/v2/personFields": ("v2", "person-fields-api.ts", "getPersonFields"),
    "POST /api/v2/personFields": ("v2", "person-fields-api.ts", "addPersonField"),
    "GET /api/v2/organizationFields": ("v2", "organization-fields-api.ts", "getOrganizationFields"),
    "POST /api/v2/organizationFields": (
        "v2",
        "organization-fields-api.ts",
        "addOrganizationField",
    ),
    "GET /api/v2/activityFields": ("v2", "activity-fields-api.ts", "getActivityFields"),
    "GET /v1/users/me": ("v1", "users-api.ts", "getCurrentUser"),
    "GET /v1/users": ("v1", "users-api.ts", "getUsers"),
}

_PROPERTY = re.compile(r"^\s+'(?P<name>[^']+)'(?P<optional>\??):\s*(?P<type>.+?);\s*$")
_IMPORT = re.compile(r"import \{ (?P<name>\w+) \} from '\./(?P<file>[\w.-]+)';")
_CONST = re.compile(r"export const (?P<name>\w+Const) = \{(?P<body>.*?)\} as const;", re.S)


class Reader:
    """Files of the client at one revision (from a git directory or a work tree)."""

    def __init__(self, git_dir: str | None, rev: str, source_dir: str | None) -> None:
        self.git_dir, self.rev, self.source_dir = git_dir, rev, source_dir

    def read(self, path: str) -> str:
        if self.source_dir is not None:
            return (Path(self.source_dir) / path).read_text()
        return subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "show", f"{self.rev}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def describe(self) -> dict[str, str]:
        package = json.loads(self.read("package.json"))
        info = {"name": package["name"], "version": package["version"]}
        info["license"] = package.get("license", "")
        if self.git_dir is not None:
            info["commit"] = subprocess.run(
                ["git", "--git-dir", str(self.git_dir), "rev-parse", self.rev],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        info["openapi_generator"] = self.read(".openapi-generator/VERSION").strip()
        return info


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "<{([":
            depth += 1
        elif ch in ">})]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


class Converter:
    def __init__(self, reader: Reader, version: str) -> None:
        self.reader = reader
        self.version = version
        self.definitions: dict[str, Any] = {}
        self._files: dict[str, str] = {}  # model name -> file stem

    def _model_file(self, name: str) -> str:
        if name in self._files:
            return self._files[name]
        stem = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()
        stem = re.sub(r"(?<=[a-z])(?=[0-9])", "", stem)
        return stem

    def _source(self, name: str) -> str:
        return self.reader.read(f"src/versions/{self.version}/models/{self._model_file(name)}.ts")

    def ref(self, name: str) -> dict[str, Any]:
        if name not in self.definitions:
            self.definitions[name] = {}  # placeholder against cycles
            self.definitions[name] = self._model(name)
        return {"$ref": f"#/definitions/{self.version}.{name}"}

    def _model(self, name: str) -> dict[str, Any]:
        text = self._source(name)
        for match in _IMPORT.finditer(text):
            self._files[match["name"]] = match["file"]
        consts = {m["name"]: re.findall(r":\s*'([^']*)'", m["body"]) for m in _CONST.finditer(text)}
        alias = re.search(rf"export type {name} = (.+?);\s*$", text, re.M)
        if alias is not None:
            expression = alias[1].strip()
            if "&" in expression and "{" not in expression:
                return {"allOf": [self._type(p, consts) for p in _split_top(expression, "&")]}
            return self._type(expression, consts)
        body = re.search(rf"export interface {name} \{{(.*?)^\}}", text, re.S | re.M)
        if body is None:
            raise SystemExit(f"no interface or type {name} in its model file")
        properties: dict[str, Any] = {}
        required: list[str] = []
        for line in body[1].splitlines():
            prop = _PROPERTY.match(line)
            if prop is None:
                continue
            schema = self._type(prop["type"], consts)
            if prop["optional"]:
                schema = _nullable(schema)  # see the module docstring
            else:
                required.append(prop["name"])
            properties[prop["name"]] = schema
        out: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            out["required"] = required
        return out

    def _type(self, text: str, consts: dict[str, list[str]]) -> dict[str, Any]:
        text = text.strip()
        options = _split_top(text, "|")
        if len(options) > 1:
            schemas = [self._type(o, consts) for o in options if o != "undefined"]
            return {"anyOf": schemas}
        if text.startswith("(") and text.endswith(")"):
            return self._type(text[1:-1], consts)
        if text in ("number",):
            return {"type": "number"}
        if text in ("string", "Date"):
            return {"type": "string"}
        if text == "boolean":
            return {"type": "boolean"}
        if text == "null":
            return {"type": "null"}
        if text in ("any", "object", "unknown"):
            return {}
        if text.startswith("'") and text.endswith("'"):
            return {"const": text[1:-1]}
        if text.startswith("Array<") and text.endswith(">"):
            return {"type": "array", "items": self._type(text[6:-1], consts)}
        if text.startswith("Set<") and text.endswith(">"):
            return {"type": "array", "items": self._type(text[4:-1], consts)}
        if text.startswith("{ [key: string]:"):
            inner = text[len("{ [key: string]:") : text.rindex(";")].strip()
            return {"type": "object", "additionalProperties": self._type(inner, consts)}
        if text in consts:
            return {"enum": consts[text]}
        if re.fullmatch(r"[A-Z]\w*", text):
            return self.ref(text)
        raise SystemExit(f"unknown TypeScript type {text!r}")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "null" or schema == {}:
        return schema
    if "anyOf" in schema and {"type": "null"} in schema["anyOf"]:
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def response_type(reader: Reader, version: str, api_file: str, operation: str) -> str:
    text = reader.read(f"src/versions/{version}/api/{api_file}")
    found = re.search(rf"async {operation}\(.*?Promise<(\w+)>>", text)
    if found is None:
        raise SystemExit(f"no operation {operation} in {api_file}")
    return found[1]


def generate(reader: Reader) -> dict[str, Any]:
    converters = {v: Converter(reader, v) for v in ("v1", "v2")}
    operations: dict[str, str] = {}
    for route, (version, api_file, operation) in OPERATIONS.items():
        model = response_type(reader, version, api_file, operation)
        operations[route] = converters[version].ref(model)["$ref"]
    definitions: dict[str, Any] = {}
    for version, converter in converters.items():
        for name, schema in converter.definitions.items():
            definitions[f"{version}.{name}"] = schema
    return {
        "$comment": (
            "Generated by scripts/pipedrive_schemas.py from Pipedrive's OpenAPI description as "
            "published in its official client; do not edit by hand. Optional properties also "
            "accept null (the description omits nullable where the API answers null)."
        ),
        "source": {
            "repository": "https://github.com/pipedrive/client-nodejs",
            "copyright": "(C) Pipedrive, Inc.; the models are generated from Pipedrive's OpenAPI "
            "description and distributed under the MIT licence",
            **reader.describe(),
        },
        "operations": operations,
        "definitions": definitions,
    }


def main(argv: list[str] | None = None, write: Callable[[str], Any] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--git-dir", help="the client's git directory (bare or .git)")
    parser.add_argument("--rev", default="HEAD", help="revision to read (default HEAD)")
    parser.add_argument("--source-dir", help="or: a work tree of the client")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    if not args.git_dir and not args.source_dir:
        parser.error("give --git-dir or --source-dir")
    data = generate(Reader(args.git_dir, args.rev, args.source_dir))
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    (write or Path(args.out).write_text)(text)
    print(f"{len(data['operations'])} operations, {len(data['definitions'])} schemas -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
