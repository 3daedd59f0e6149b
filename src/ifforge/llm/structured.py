"""JSON schemas for structured outputs (`structured: json`) in the one form every backend reads: OpenAI's
`response_format` (`openai` sends it as is; `vllm` and `hf_local` read its schema, see `types.json_schema`)."""

from __future__ import annotations

from typing import Any, Dict, Optional


def _strict(schema: Any) -> bool:
    """OpenAI's strict mode takes objects whose properties are all required and closed; a free-form map
    (`additionalProperties` with a schema) is enforced by vLLM and xgrammar but only guided there."""
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            props = schema.get("properties")
            if props is None or schema.get("additionalProperties", True) is not False \
                    or set(schema.get("required", ())) != set(props):
                return False
        return all(_strict(v) for v in schema.values())
    if isinstance(schema, list):
        return all(_strict(v) for v in schema)
    return True


def response_format(name: str, schema: Dict[str, Any]) -> Dict[str, Any]:
    """The OpenAI `response_format` for a JSON schema."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": _strict(schema)}}


def string_list(least: Optional[int] = None, most: Optional[int] = None,
                longest: Optional[int] = None) -> Dict[str, Any]:
    item: Dict[str, Any] = {"type": "string"} if longest is None else {"type": "string", "maxLength": longest}
    schema: Dict[str, Any] = {"type": "array", "items": item}
    if least:
        schema["minItems"] = least
    if most is not None:
        schema["maxItems"] = most
    return schema


def obj(**properties: Any) -> Dict[str, Any]:
    """A closed JSON-schema object whose properties are all required."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}
