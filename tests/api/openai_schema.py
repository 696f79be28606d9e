"""Check /v1 replies against OpenAI's published OpenAPI schema.

The schema is data, read from ../shared/openai-openapi/openapi.yaml (never
copied into the repo). Two rewrites make it valid JSON Schema 2020-12, as
WIRE.md §0 explains: OpenAPI 3.0's `nullable: true`, which a 2020-12
validator ignores (so every `null` in a reply would fail), and
`$recursiveRef` in CompoundFilter (draft 2019-09).

This is stricter than the SDK's own strict mode in one way that matters: it
applies `additionalProperties: false` and every `required` list of the spec,
where the SDK's pydantic models allow extras and treat some fields as
optional.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# Beside the checkout, as the eval data is; RAGAPP_OPENAI_SPEC overrides.
SPEC_PATH = Path(
    os.environ.get("RAGAPP_OPENAI_SPEC")
    or Path(__file__).resolve().parents[3] / "shared/openai-openapi/openapi.yaml"
)
BASE = "urn:openai-openapi"


def _nullable(node: Any) -> Any:
    """Rewrite `nullable: true` (OpenAPI 3.0) into JSON Schema's own null."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    if node.pop("$recursiveRef", None) is not None:
        node["$ref"] = "#/components/schemas/CompoundFilter"
    node.pop("$recursiveAnchor", None)
    if not node.pop("nullable", False):
        return node
    if "$ref" in node or any(k in node for k in ("anyOf", "oneOf", "allOf")):
        return {"anyOf": [node, {"type": "null"}]}
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        node["type"] = [*types, "null"] if "null" not in types else types
    if "enum" in node and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]
    return node


@functools.cache
def _registry() -> Registry:
    if not SPEC_PATH.exists():
        pytest.fail(f"OpenAI's schema is missing at {SPEC_PATH}")
    with SPEC_PATH.open() as stream:
        # The C safe loader reads the 3 MB file in a second, the pure one in ten.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        spec = yaml.load(stream, Loader=loader)  # noqa: S506 (a safe loader)
    resource = Resource.from_contents(
        _nullable(spec), default_specification=DRAFT202012
    )
    return Registry().with_resource(BASE, resource)


def schema_errors(name: str, body: Any) -> list[str]:
    """Return how `body` breaks `#/components/schemas/<name>`, or nothing."""
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"{BASE}#/components/schemas/{name}"}, registry=_registry()
    )
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message[:300]}"
        for error in validator.iter_errors(body)
    ]


@functools.cache
def _event_schemas() -> dict[str, str]:
    """Each stream event type's own schema, from ResponseStreamEvent's list."""
    schemas = _registry().contents(BASE)["components"]["schemas"]
    names = {}
    for option in schemas["ResponseStreamEvent"]["anyOf"]:
        name = option["$ref"].rsplit("/", 1)[1]
        for kind in schemas[name]["properties"]["type"].get("enum", []):
            names[kind] = name
    return names


def assert_event_conforms(event: dict[str, Any]) -> None:
    """Check a Responses stream event against the schema of its own type."""
    name = _event_schemas().get(event.get("type"))
    assert name, f"no event of type {event.get('type')!r} in ResponseStreamEvent"
    assert_conforms(name, event)


def assert_conforms(name: str, body: Any) -> None:
    errors = schema_errors(name, body)
    assert not errors, f"not a valid {name}:\n" + "\n".join(errors[:10])
