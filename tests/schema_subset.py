"""A small JSON Schema validator for the keywords this project's schemas use.

Both published schemas (reports and scenario files) are checked with it, so no validator
dependency is needed; each test also asserts its schema uses only ``KEYWORDS``.
"""

from __future__ import annotations

import re

ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "default"}
KEYWORDS = ANNOTATIONS | {"$ref", "type", "enum", "const", "pattern", "minimum", "minItems", "required",
                          "properties", "additionalProperties", "propertyNames", "items", "allOf", "anyOf",
                          "oneOf", "not", "if", "then"}
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def errors(value, schema, root: dict, where: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (empty when it is valid)."""
    if schema is True or schema is False:
        return [] if schema else [f"{where}: not allowed"]
    out: list[str] = []
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        out += errors(value, target, root, where)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](value) for t in types):
            return out + [f"{where}: {value!r:.40} is not {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        out.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and TYPES["number"](value) and value < schema["minimum"]:
        out.append(f"{where}: {value} is below {schema['minimum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{where}: fewer than {schema['minItems']} items")
        for n, item in enumerate(value):
            out += errors(item, schema.get("items", True), root, f"{where}[{n}]")
    if isinstance(value, dict):
        out += [f"{where}.{key}: missing" for key in schema.get("required", []) if key not in value]
        properties = schema.get("properties", {})
        for key, item in value.items():
            if "propertyNames" in schema:
                out += errors(key, schema["propertyNames"], root, f"{where}.{key} (name)")
            if key in properties:
                out += errors(item, properties[key], root, f"{where}.{key}")
            elif "additionalProperties" in schema:
                out += errors(item, schema["additionalProperties"], root, f"{where}.{key}")
    for sub in schema.get("allOf", []):
        out += errors(value, sub, root, where)
    if "anyOf" in schema and all(errors(value, sub, root, where) for sub in schema["anyOf"]):
        out.append(f"{where}: matches none of {len(schema['anyOf'])} alternatives")
    if "oneOf" in schema and sum(not errors(value, sub, root, where) for sub in schema["oneOf"]) != 1:
        out.append(f"{where}: does not match exactly one of {len(schema['oneOf'])} alternatives")
    if "not" in schema and not errors(value, schema["not"], root, where):
        out.append(f"{where}: matches what is excluded")
    if "if" in schema and not errors(value, schema["if"], root, where):
        out += errors(value, schema.get("then", True), root, where)
    return out


def keywords(node, names: bool = False):
    """Every keyword used in a schema (keys of properties and $defs are names, not keywords)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not names:
                yield key
            yield from keywords(value, names=not names and key in ("properties", "$defs"))
    elif isinstance(node, list):
        for item in node:
            yield from keywords(item)
