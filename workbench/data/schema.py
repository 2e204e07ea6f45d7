"""The canonical preference-pair schema: column names, label states, ids and frame validation.

One row is one preference pair: a conversation (`prompt`, a list of chat messages) and two final
responses, `chosen` (preferred under the current label) and `rejected`. Every other stage joins its
own columns (tags, scores, embeddings) on `pair_id`.

Deliberately not here: reading or writing files (`workbench.data.files`) and parsing source formats
(`workbench.data.pairs`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TypeAlias

import pandas as pd
import pyarrow as pa

PairFrame: TypeAlias = pd.DataFrame
"""A DataFrame with at least the columns in `PAIR_COLUMNS`, one row per preference pair."""

Message: TypeAlias = dict[str, str]
"""One chat turn: ``{"role": "user" | "assistant" | "system", "content": str}``."""

PAIR_COLUMNS: tuple[str, ...] = (
    "pair_id",  # 16 hex chars, content hash of prompt + the *unordered* responses (see make_pair_id)
    "prompt",  # list[Message]; the conversation up to the compared responses
    "chosen",  # str; preferred response under the current label
    "rejected",  # str
    "source",  # str; where the pair came from (file stem, dataset id, construction name)
    "split",  # str; "train" (unverified pool), "gold", "test" or "" when unassigned
    "label_state",  # one of LABEL_STATES
    "label_by",  # str; who or what set the label state ("source", a reviewer name, a rule)
    "label_at",  # str; ISO-8601 UTC time the label state was set
)

ROLES: frozenset[str] = frozenset({"system", "user", "assistant"})
LABEL_STATES: tuple[str, ...] = ("original", "verified", "flipped", "dropped")
SPLITS: tuple[str, ...] = ("", "train", "gold", "test")

ARROW_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
ARROW_SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),
        ("prompt", pa.list_(ARROW_MESSAGE)),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("label_state", pa.string()),
        ("label_by", pa.string()),
        ("label_at", pa.string()),
    ]
)
"""Arrow types of the canonical columns; extra columns keep the types pandas/Arrow infer."""


def make_pair_id(prompt: Sequence[Message], response_a: str, response_b: str) -> str:
    """Stable 16-hex-char id of a pair, independent of which response is chosen.

    Order-independence is deliberate: flipping a pair keeps its id (so reviews, tags and scores
    stay joined), and the same two responses labelled both ways in two sources collide, which
    `workbench.data.pairs.deduplicate` reports as a label conflict.

    Example: ``make_pair_id(p, "a", "b") == make_pair_id(p, "b", "a")``.
    """
    turns = [[m["role"], m["content"]] for m in prompt]
    payload = json.dumps([turns, sorted([response_a, response_b])], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def prompt_key(prompt: Sequence[Message]) -> str:
    """Hash of the conversation alone; pairs sharing it must land in the same split."""
    turns = [[m["role"], m["content"]] for m in prompt]
    return hashlib.sha256(json.dumps(turns, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def prompt_text(prompt: Sequence[Message]) -> str:
    """The conversation as plain text, for display, lengths and keyword search."""
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def last_user_message(prompt: Sequence[Message]) -> str:
    """The last user message (the text an embedding RM reads for the conversation); the last turn if none."""
    return next((m["content"] for m in reversed(prompt) if m["role"] == "user"), prompt[-1]["content"] if prompt else "")


def topic_text(prompt: Sequence[Message], max_chars: int = 1000) -> str:
    """What the embedded tagger reads: the first user turn (it sets the topic) and, in multi-turn
    conversations, the last one (follow-ups like "thanks, try again" say little on their own)."""
    users = [m["content"] for m in prompt if m["role"] == "user"]
    if not users:
        return prompt_text(prompt)[:max_chars]
    text = users[0] if len(users) == 1 else f"{users[0]}\n...\n{users[-1]}"
    return text[:max_chars]



def validate_pair_frame(pairs: pd.DataFrame, *, where: str = "pairs") -> None:
    """Check the column contract of an in-memory pair frame (not the texts: see `pairs.validate_record`).

    Raises:
        ValueError: naming the missing column, or the first row with a bad label state, split or id.
    """
    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise ValueError(
            f"{where}: missing columns {missing}; got {list(pairs.columns)}. "
            "Build pair frames with workbench.data.pairs.read_pairs or workbench.data.pairs.records_to_pairs."
        )
    for column, allowed in (("label_state", LABEL_STATES), ("split", SPLITS)):
        bad = ~pairs[column].isin(allowed)
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise ValueError(
                f"{where}: row {i}: field {column!r} is {pairs[column].iloc[i]!r}; allowed: {list(allowed)}."
            )
    dup = pairs["pair_id"].duplicated()
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        raise ValueError(
            f"{where}: row {i}: pair_id {pairs['pair_id'].iloc[i]!r} appears more than once; "
            "run workbench.data.pairs.deduplicate first."
        )

# What a reward model's scores of pairs look like (scoring output, score caches).
SCORE_COLUMNS = ("pair_id", "r_chosen", "r_rejected", "margin", "p", "truncated")
