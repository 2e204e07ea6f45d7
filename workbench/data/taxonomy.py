"""The preference-attribute taxonomy: the paper's 5-tuple per pair, as a typed record and a JSON schema.

The paper (Skywork-Reward-V2, section 3.1) tags every pair with (1) task category, (2) preference
objectivity, (3) controversiality, (4) desired attributes, (5) an annotation guideline, but does not
publish value lists; this vocabulary is the workbench's own. The JSON schema is what LLM taggers
must return; `validate_attributes` checks any dict against it with field-level messages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TASK_CATEGORIES: dict[str, str] = {
    "chat": "casual conversation, advice, opinions, small talk, everyday help",
    "reasoning_math": "math problems, logic puzzles, step-by-step quantitative reasoning",
    "coding": "writing, explaining, reviewing or debugging source code, shell, SQL",
    "safety": "requests for harmful, illegal, dangerous or unethical help; refusals; sensitive personal harm",
    "knowledge_qa": "factual questions about the world: history, science, geography, definitions, how things work",
    "creative_writing": "stories, poems, jokes, lyrics, slogans, imaginative or stylistic writing",
    "instruction_following": "tasks with explicit format or content constraints: summarise, rewrite, translate, list, classify, extract",
    "role_play": "pretend to be a character or persona, interactive fiction, games",
    "other": "anything that fits none of the above",
}
OBJECTIVITY: dict[str, str] = {
    "objective": "a verifiable correct answer exists (facts, math, code that runs, explicit constraints)",
    "subjective": "quality depends on taste, tone, helpfulness judgement or values",
}
CONTROVERSIALITY: dict[str, str] = {
    "low": "reasonable people would agree on the better response",
    "medium": "preferences may differ (style, verbosity, mild value judgements)",
    "high": "politically, morally or socially divisive, or safety-critical trade-offs",
}
FIELDS = ("task_category", "objectivity", "controversiality", "desired_attributes", "annotation_guideline")

ATTRIBUTE_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "task_category": {"type": "string", "enum": list(TASK_CATEGORIES)},
        "objectivity": {"type": "string", "enum": list(OBJECTIVITY)},
        "controversiality": {"type": "string", "enum": list(CONTROVERSIALITY)},
        "desired_attributes": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 6},
        "annotation_guideline": {"type": "string", "minLength": 1},
    },
    "required": list(FIELDS),
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Attributes:
    """The paper's 5-tuple for one pair."""

    task_category: str
    objectivity: str
    controversiality: str
    desired_attributes: tuple[str, ...] = field(default_factory=tuple)
    annotation_guideline: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["desired_attributes"] = list(self.desired_attributes)
        return d


def validate_attributes(raw: Any) -> Attributes:
    """Check a dict (e.g. parsed LLM output) against the schema; return `Attributes`.

    Raises:
        ValueError: naming the field, the value received and the allowed values.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"attributes must be a JSON object, got {type(raw).__name__}.")
    missing = [f for f in FIELDS if f not in raw]
    if missing:
        raise ValueError(f"missing fields {missing}; required: {list(FIELDS)}.")
    extra = sorted(set(raw) - set(FIELDS))
    if extra:
        raise ValueError(f"unexpected fields {extra}; allowed: {list(FIELDS)}.")
    for name, allowed in (("task_category", TASK_CATEGORIES), ("objectivity", OBJECTIVITY), ("controversiality", CONTROVERSIALITY)):
        value = raw[name]
        if value not in allowed:
            raise ValueError(f"field {name!r} is {value!r}; allowed: {list(allowed)}.")
    attrs = raw["desired_attributes"]
    if not isinstance(attrs, list) or not attrs or not all(isinstance(a, str) and a.strip() for a in attrs):
        raise ValueError(f"field 'desired_attributes' must be a non-empty list of strings, got {attrs!r}.")
    guideline = raw["annotation_guideline"]
    if not isinstance(guideline, str) or not guideline.strip():
        raise ValueError(f"field 'annotation_guideline' must be a non-empty string, got {guideline!r}.")
    return Attributes(raw["task_category"], raw["objectivity"], raw["controversiality"],
                      tuple(a.strip() for a in attrs[:6]), guideline.strip())
