"""The JSON Schema of the spec language, generated from the models."""

from __future__ import annotations

import json

from planner.spec.models import Spec

SCHEMA_ID = "https://medplan.dev/schema/spec-v1.json"


def spec_schema() -> dict:
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    return schema


def spec_schema_json() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=True) + "\n"
