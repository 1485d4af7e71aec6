"""scripts/pipedrive_schemas.py reads openapi-generator's TypeScript models into JSON Schema."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import jsonschema
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pipedrive_schemas.py"

FILES = {
    "package.json": json.dumps({"name": "pipedrive", "version": "1.2.3", "license": "MIT"}),
    ".openapi-generator/VERSION": "6.2.1\n",
    "src/versions/v2/api/deals-api.ts": (
        "        async getDeals(limit?: number, ): Promise<(axios?: AxiosInstance, basePath?: "
        "string) => Promise<GetDealsResponse>> {\n"
    ),
    "src/versions/v2/models/get-deals-response.ts": (
        "import { BaseResponse } from './base-response';\n"
        "import { GetDealsResponseAllOf } from './get-deals-response-all-of';\n"
        "export type GetDealsResponse = BaseResponse & GetDealsResponseAllOf;\n"
    ),
    "src/versions/v2/models/base-response.ts": (
        "export interface BaseResponse {\n    'success'?: boolean;\n}\n"
    ),
    "src/versions/v2/models/get-deals-response-all-of.ts": (
        "import { Deal } from './deal';\n"
        "export interface GetDealsResponseAllOf {\n"
        "    'data'?: Array<Deal>;\n"
        "}\n"
    ),
    "src/versions/v2/models/deal.ts": (
        "export interface Deal {\n"
        "    'id': number;\n"
        "    'title'?: string;\n"
        "    'probability'?: number | null;\n"
        "    'label_ids'?: Array<number>;\n"
        "    'status'?: DealStatusConst;\n"
        "    'custom_fields'?: { [key: string]: any | undefined; };\n"
        "}\n"
        "export const DealStatusConst = {\n"
        "    open: 'open',\n"
        "    won: 'won'\n"
        "} as const;\n"
    ),
}


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pipedrive_schemas", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generator_reads_models_into_json_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    script = _script()
    monkeypatch.setattr(
        script, "OPERATIONS", {"GET /api/v2/deals": ("v2", "deals-api.ts", "getDeals")}
    )
    written: list[str] = []
    assert script.main(["--source-dir", str(tmp_path)], write=written.append) == 0
    data = json.loads(written[0])
    assert data["source"]["version"] == "1.2.3" and data["source"]["license"] == "MIT"
    assert data["operations"] == {"GET /api/v2/deals": "#/definitions/v2.GetDealsResponse"}
    schema = {"$ref": data["operations"]["GET /api/v2/deals"], "definitions": data["definitions"]}

    def ok(answer: object) -> bool:
        return jsonschema.Draft7Validator(schema).is_valid(answer)

    deal = {"id": 1, "title": None, "probability": None, "label_ids": [3], "status": "won"}
    assert ok({"success": True, "data": [deal, {"id": 2, "custom_fields": {"k": {"v": 1}}}]})
    assert not ok({"data": [{"title": "no id"}]})  # required
    assert not ok({"data": [{"id": "1"}]})  # a number, never a string
    assert not ok({"data": [{"id": 1, "status": "deleted"}]})  # the enumeration
    assert not ok({"data": [{"id": 1, "label_ids": ["3"]}]})
