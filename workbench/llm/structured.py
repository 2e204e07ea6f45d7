"""Parse and check JSON answers of LLMs: the first JSON value in a reply, and a JSON-schema subset.

Split from `workbench.llm.client` (which re-exports both) so the parsing rules can be read and tested
on their own. Not a full JSON-Schema validator: the keywords handled are listed in `check_schema`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_THINK_RE = re.compile(r"<think>.*?(</think>|\Z)", re.S | re.I)
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)


def extract_json(text: str | None) -> Any:
    """Extract the first JSON value from model output.

    Tolerates ``<think>...</think>`` reasoning blocks, ```` ```json ```` fences and prose around the JSON.
    Prefers the whole (stripped) text, then fenced blocks, then the first ``{...}`` (then ``[...]``)
    that decodes.

    Args:
        text: The assistant message content.

    Returns:
        The decoded JSON value.

    Raises:
        ValueError: When no JSON value can be found; the message quotes the start of the text.
    """
    if text is None or not text.strip():
        raise ValueError("invalid JSON: the reply is empty")
    body = _THINK_RE.sub("", text).strip()
    candidates = [body] + [m.group(1).strip() for m in _FENCE_RE.finditer(body)]
    for cand in candidates:
        try:
            return json.loads(cand)
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for opener in ("{", "["):
        start = body.find(opener)
        while start != -1:
            try:
                value, _ = decoder.raw_decode(body, start)
                return value
            except json.JSONDecodeError:
                start = body.find(opener, start + 1)
    preview = body[:120].replace("\n", "\\n")
    raise ValueError(f"invalid JSON: no JSON object found in the reply (starts {preview!r})")


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool)
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def check_schema(value: Any, schema: dict, path: str = "") -> None:
    """Check ``value`` against a JSON schema subset; raise ValueError naming the first bad field.

    Supported keywords: ``type`` (one or a list), ``enum``, ``const``, ``properties``, ``required``,
    ``additionalProperties`` (bool or schema), ``items``, ``minItems``, ``maxItems``, ``minimum``,
    ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``, ``minLength``, ``maxLength``, ``anyOf``,
    ``oneOf`` (as anyOf) and local ``$ref`` into ``$defs``/``definitions``. Other keywords are ignored.

    Args:
        value: The decoded JSON.
        schema: The JSON schema.
        path: Location prefix used in messages (callers leave it empty).

    Raises:
        ValueError: ``"schema: field 'a.b[0]' ..."`` describing what is wrong and the value found.
    """
    _check(value, schema, path, schema)


def _check(value: Any, schema: Any, path: str, root: dict) -> None:
    if not isinstance(schema, dict):
        return
    where = f"field '{path}'" if path else "the top-level value"
    if "$ref" in schema:
        ref = schema["$ref"]
        m = re.fullmatch(r"#/(\$defs|definitions)/(.+)", str(ref))
        if m and m.group(2) in root.get(m.group(1), {}):
            _check(value, root[m.group(1)][m.group(2)], path, root)
        return
    for key in ("anyOf", "oneOf"):
        if key in schema:
            errors = []
            for sub in schema[key]:
                try:
                    _check(value, sub, path, root)
                    break
                except ValueError as exc:
                    errors.append(str(exc))
            else:
                raise ValueError(f"schema: {where} matches none of the {key} alternatives ({'; '.join(errors)})")
    typ = schema.get("type")
    if typ is not None:
        types = typ if isinstance(typ, list) else [typ]
        if not any(_TYPES.get(t, lambda v: True)(value) for t in types):
            raise ValueError(f"schema: {where} should be {' or '.join(map(str, types))}, got "
                             f"{type(value).__name__} {_short(value)}")
    if "enum" in schema and value not in schema["enum"]:
        raise ValueError(f"schema: {where} must be one of {schema['enum']!r}, got {_short(value)}")
    if "const" in schema and value != schema["const"]:
        raise ValueError(f"schema: {where} must be {schema['const']!r}, got {_short(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, bad, rule in (("minimum", lambda v, b: v < b, ">="), ("maximum", lambda v, b: v > b, "<="),
                               ("exclusiveMinimum", lambda v, b: v <= b, ">"),
                               ("exclusiveMaximum", lambda v, b: v >= b, "<")):
            bound = schema.get(key)
            if isinstance(bound, (int, float)) and not isinstance(bound, bool) and bad(value, bound):
                raise ValueError(f"schema: {where} must be {rule} {bound}, got {value!r}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise ValueError(f"schema: {where} must have at least {schema['minLength']} characters, got {len(value)}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise ValueError(f"schema: {where} must have at most {schema['maxLength']} characters, got {len(value)}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise ValueError(f"schema: {where} must have at least {schema['minItems']} items, got {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise ValueError(f"schema: {where} must have at most {schema['maxItems']} items, got {len(value)}")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                _check(item, schema["items"], f"{path}[{i}]", root)
    if isinstance(value, dict):
        props = schema.get("properties", {}) or {}
        for name in schema.get("required", []) or []:
            if name not in value:
                inner = f"{path}.{name}" if path else name
                raise ValueError(f"schema: field '{inner}' is required but missing "
                                 f"(got keys {sorted(value)[:10]!r})")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            inner = f"{path}.{name}" if path else str(name)
            if name in props:
                _check(item, props[name], inner, root)
            elif extra is False:
                raise ValueError(f"schema: field '{inner}' is not allowed (allowed: {sorted(props)!r})")
            elif isinstance(extra, dict):
                _check(item, extra, inner, root)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


