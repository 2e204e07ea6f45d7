"""Parse and check JSON answers of LLMs: the first JSON value in a reply, checked with `jsonschema`.

Split from `workbench.llm.client` (which re-exports both) so the parsing rules can be read and tested
on their own. `check_schema` is `jsonschema`'s Draft 2020-12 validator with messages that name the field.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match

_THINK_RE = re.compile(r"<think>.*?(</think>|\Z)", re.S | re.I)
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)


def extract_json(text: str | None) -> Any:
    """Extract the first JSON value from model output.

    `jsonschema` checks a decoded value; finding that value in a chatty reply is this function's job:
    it tolerates ``<think>...</think>`` reasoning blocks, ```` ```json ```` fences and prose around the
    JSON. Prefers the whole (stripped) text, then fenced blocks, then the first ``{...}`` (then ``[...]``)
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


def check_schema(value: Any, schema: dict) -> None:
    """Check ``value`` against a JSON Schema (Draft 2020-12, by `jsonschema`); raise ValueError naming the field.

    Of several errors, `jsonschema`'s `best_match` picks the one reported. ``format`` is not checked
    (jsonschema's default).

    Args:
        value: The decoded JSON.
        schema: The JSON schema.

    Raises:
        ValueError: ``"schema: field 'a.b[0]' ..."`` describing what is wrong and the value found, or
            ``"schema is not a valid ..."`` when ``schema`` itself is malformed.
    """
    error = best_match(schema_validator(schema).iter_errors(value))
    if error is not None:
        raise ValueError(f"schema: {_explain(error)}")


def schema_validator(schema: dict) -> Draft202012Validator:
    """The (cached) validator of ``schema``; ValueError when the schema itself is not valid JSON Schema."""
    try:
        key = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError) as exc:  # not JSON-serialisable
        raise ValueError(f"schema is not a valid JSON Schema: {exc}") from None
    return _validator(key)


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Draft202012Validator:
    schema = json.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)  # ~1 ms: once per schema, hence the cache
    except SchemaError as exc:
        raise ValueError(f"schema is not a valid JSON Schema (Draft 2020-12): {exc.message}") from None
    return Draft202012Validator(schema)


def _explain(error: ValidationError) -> str:
    """One line for a `jsonschema` error: the field's path, the rule, the value found."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    rule, bound, got = error.validator, error.validator_value, error.instance
    if rule == "required":
        missing = next((name for name in bound if name not in got), "?")
        return f"field '{_join(path, missing)}' is required but missing (got keys {sorted(got)[:10]!r})"
    if rule == "additionalProperties" and bound is False:
        allowed = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        extra = next((k for k in got if k not in allowed and not any(re.search(p, k) for p in patterns)), "?")
        return f"field '{_join(path, extra)}' is not allowed (allowed: {sorted(allowed)!r})"
    where = f"field '{path}'" if path else "the top-level value"
    sized = len(got) if isinstance(got, (str, list)) else None
    says = {
        "type": lambda: f"should be {' or '.join(map(str, bound if isinstance(bound, list) else [bound]))}, "
                        f"got {type(got).__name__} {_short(got)}",
        "enum": lambda: f"must be one of {bound!r}, got {_short(got)}",
        "const": lambda: f"must be {bound!r}, got {_short(got)}",
        "minimum": lambda: f"must be >= {bound}, got {got!r}",
        "maximum": lambda: f"must be <= {bound}, got {got!r}",
        "exclusiveMinimum": lambda: f"must be > {bound}, got {got!r}",
        "exclusiveMaximum": lambda: f"must be < {bound}, got {got!r}",
        "minLength": lambda: f"must have at least {bound} characters, got {sized}",
        "maxLength": lambda: f"must have at most {bound} characters, got {sized}",
        "minItems": lambda: f"must have at least {bound} items, got {sized}",
        "maxItems": lambda: f"must have at most {bound} items, got {sized}",
    }.get(rule)
    return f"{where} {says() if says else error.message}"


def _join(path: str, name: Any) -> str:
    return f"{path}.{name}" if path else str(name)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
