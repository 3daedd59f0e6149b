"""A scripted model for whole-pipeline tests under `structured: json`: it answers any request that carries a
JSON-schema `response_format` with an object that fits that schema (what a grammar-constrained endpoint returns),
and any other request with a short text. Strings are distinct and name the prompt, integers count up along an array
(DeMoRecon's block numbers, Conifer's levels), enums take their first value ("Yes" for every verdict)."""

from __future__ import annotations

import itertools
import json
from typing import Any, Dict


class SchemaModel:
    def __init__(self, answer_prefix: str = "An answer to"):
        self.counter = itertools.count(1)
        self.answer_prefix = answer_prefix

    def __call__(self, body: Dict[str, Any]) -> str:
        prompt = str(body["messages"][-1]["content"])
        fmt = body.get("response_format") or {}
        if fmt.get("type") != "json_schema":
            return f"{self.answer_prefix}: {prompt[:60]}"
        return json.dumps(self.instance(fmt["json_schema"]["schema"], prompt[-40:], 0))

    def instance(self, schema: Dict[str, Any], hint: str, index: int) -> Any:
        if "enum" in schema:
            return schema["enum"][0]
        kind = schema.get("type")
        if kind == "object":
            props = schema.get("properties")
            if props is None:  # a free-form map: one entry
                extra = schema.get("additionalProperties")
                return {"Style": self.instance(extra, hint, 0)} if isinstance(extra, dict) else {}
            return {k: self.instance(v, hint, index) for k, v in props.items()}
        if kind == "array":
            n = max(int(schema.get("minItems", 0)), min(2, int(schema.get("maxItems", 2))))
            return [self.instance(schema.get("items", {}), hint, i) for i in range(n)]
        if kind == "integer":
            value = int(schema.get("minimum", 1)) + index
            return min(value, int(schema["maximum"])) if "maximum" in schema else value
        if kind == "boolean":
            return True
        text = f"Item {next(self.counter)}: {hint}"
        return text[: int(schema["maxLength"])] if "maxLength" in schema else text
