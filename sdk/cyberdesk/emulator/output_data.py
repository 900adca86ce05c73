"""Generated `output_data` for a workflow with an `output_schema`: deterministic and conforming.

A real agent fills the schema from what it read on screen; the emulator makes values that conform to it from
the run alone, so a seed and the same inputs give the same outputs. Keywords honoured, first match wins:
`const`, `default`, `examples[0]`, `enum[0]`, then `type` (object properties, arrays of `minItems` elements
(default 1, capped by `maxItems`), `minimum`/`maximum`, string `format` date / date-time / email / uuid).
A top-level property named like one of the run's resolved inputs echoes that input (the "look up X" pattern).
Other strings are `"<field>-<run seq>-<n>"`, `n` counting per field within the output, so they are unique
across array elements and across runs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from itertools import count
from typing import Any

_MAX_DEPTH = 12


def parse_output_schema(text: str | None) -> dict[str, Any] | None:
    """The workflow's schema as a mapping, or None when it is unset or not a JSON object (plain outputs)."""
    if not text:
        return None
    try:
        schema = json.loads(text)
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def generate_output(schema: Mapping[str, Any], *, run_id: str, seq: int, inputs: Mapping[str, Any]) -> Any:
    return _Generator(run_id, seq, inputs).value(schema, "value", 0, top=True)


class _Generator:
    def __init__(self, run_id: str, seq: int, inputs: Mapping[str, Any]) -> None:
        self.run_id = run_id
        self.seq = seq
        self.inputs = inputs
        self.counters: dict[str, count[int]] = {}

    def _next(self, name: str) -> int:
        return next(self.counters.setdefault(name, count(1)))

    def value(self, schema: Any, name: str, depth: int, *, top: bool = False) -> Any:
        if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
            return self._string(name, {})
        for keyword in ("const", "default"):
            if keyword in schema:
                return schema[keyword]
        for keyword in ("examples", "enum"):
            choices = schema.get(keyword)
            if isinstance(choices, list) and choices:
                return choices[0]
        kind = schema.get("type")
        if isinstance(kind, list):  # ["string", "null"]: the first non-null type
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind == "object":
            return self._object(schema, depth, top)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind in ("integer", "number"):
            return self._number(schema, name, kind)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(name, schema)

    def _object(self, schema: Mapping[str, Any], depth: int, top: bool) -> dict[str, Any]:
        properties = schema.get("properties")
        out: dict[str, Any] = {}
        for key, sub in (properties or {}).items() if isinstance(properties, Mapping) else ():
            if top and key in self.inputs and not _has_fixed_value(sub):
                out[key] = self.inputs[key]
            else:
                out[key] = self.value(sub, str(key), depth + 1)
        return out

    def _array(self, schema: Mapping[str, Any], name: str, depth: int) -> list[Any]:
        low = schema.get("minItems", 1)
        size = low if isinstance(low, int) and low >= 0 else 1
        high = schema.get("maxItems")
        if isinstance(high, int) and high >= 0:
            size = min(size, high)
        items = schema.get("items", {})
        return [self.value(items, _singular(name), depth + 1) for _ in range(size)]

    def _number(self, schema: Mapping[str, Any], name: str, kind: str) -> int | float:
        n = self._next(name)
        low, high = schema.get("minimum"), schema.get("maximum")
        value: int | float = n if not isinstance(low, int | float) else low + n - 1
        if isinstance(high, int | float) and value > high:
            value = high
        return int(value) if kind == "integer" else float(value)

    def _string(self, name: str, schema: Mapping[str, Any]) -> str:
        n = self._next(name)
        fmt = schema.get("format")
        if fmt == "date":
            return f"2026-01-{(n - 1) % 28 + 1:02d}"
        if fmt == "date-time":
            return f"2026-01-{(n - 1) % 28 + 1:02d}T00:00:00Z"
        if fmt == "email":
            return f"{name}-{self.seq}-{n}@example.com"
        if fmt == "uuid":
            return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.run_id}/{name}/{n}"))
        return f"{name}-{self.seq}-{n}"


def _has_fixed_value(schema: Any) -> bool:
    return isinstance(schema, Mapping) and any(k in schema for k in ("const", "default", "examples", "enum"))


def _singular(name: str) -> str:
    """Elements of `claims` are named `claim`, so strings read `claim_id-3-1`, not `claims-3-1`."""
    return name[:-1] if name.endswith("s") and len(name) > 1 else name
