"""The LLM judge: the paper's preference-aware labeling (Stage 1 step 3, reused by Stage 2).

For each pair, a judge model sees the conversation, the pair's attributes and annotation guideline,
up to 8 human-labeled similar pairs as few-shot examples, and the two responses as "Candidate 1" /
"Candidate 2" **in an order randomised per call** (seeded by pair and sample, so reruns are identical).
Each model is sampled several times and votes are aggregated first within a model (self-consistency),
then across models (majority of the model labels). Outputs the label, the vote split and the raw
answers, stored durably per (judge fingerprint, pair_id) so an interrupted run repeats no call.

Labels are "chosen" (the current label is right), "rejected" (the judge prefers the rejected response:
a flip candidate), "tie" (valid answers split evenly: an opinion) or "failed" (no sample gave a valid
answer: no opinion at all, e.g. a model that never writes valid JSON). A failed judgement is stored as a
failure and asked again with ``judge_pairs(..., retry_failed=True)``; Stage 1 leaves the pair for people
and Stage 2 decides it without the judge. Judge labels are *silver*, never gold.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from workbench.data.schema import PairFrame, prompt_text

JUDGE_PROMPT_VERSION = "v1"
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string"}, "better": {"type": "integer", "enum": [1, 2]}},
    "required": ["reason", "better"],
    "additionalProperties": False,
}
JUDGE_COLUMNS = ("pair_id", "judge_label", "votes_chosen", "votes_rejected", "n_valid", "model_labels", "raw")
FAILED = "failed"  # judge_label when no sample gave a valid answer (labels: chosen, rejected, tie, failed)


def validate_verdict(raw: Any) -> int:
    """The judge's answer as 1 or 2; raises ValueError naming what is wrong."""
    if not isinstance(raw, dict) or raw.get("better") not in (1, 2, "1", "2"):
        raise ValueError(f"expected {{'better': 1 | 2, 'reason': ...}}, got {raw!r}.")
    return int(raw["better"])


@dataclass(frozen=True)
class JudgeConfig:
    """Sampling and context of the judge."""

    samples: int = 3  # self-consistency votes per model
    temperature: float = 0.7
    max_examples: int = 8  # few-shot human-labeled examples per pair (paper: up to 8)
    max_chars: int = 3000  # per text in the prompt
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}.")


def candidate_order(pair_id: str, sample: int, seed: int) -> bool:
    """True when the chosen response is shown as Candidate 1 in this call (a fair, reproducible coin)."""
    return int(hashlib.sha256(f"{seed}:{pair_id}:{sample}".encode()).hexdigest(), 16) % 2 == 0


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n // 2] + " […] " + text[-n // 2:]


def judge_messages(pair: pd.Series, *, chosen_first: bool, attributes: dict[str, Any] | None = None,
                   examples: Sequence[pd.Series] = (), cfg: JudgeConfig = JudgeConfig()) -> list[dict[str, str]]:
    """Chat messages for one judge call; ``chosen_first`` decides which response is Candidate 1.

    Few-shot examples are shown with their human label, each in its own random order too.
    """
    system = ("You are an expert annotator of preference data. Decide which candidate response is better for the "
              "conversation, following the annotation guideline. Judge substance first (correctness, safety, "
              "following instructions), then helpfulness and clarity; ignore length and position. Answer ONLY with a "
              f"JSON object: {json.dumps(JUDGE_SCHEMA)}")
    parts = []
    if attributes:
        parts.append("Task attributes: " + json.dumps({k: attributes.get(k) for k in ("task_category", "objectivity", "controversiality",
                                                                                    "desired_attributes")}, ensure_ascii=False))
        if attributes.get("annotation_guideline"):
            parts.append(f"Annotation guideline: {attributes['annotation_guideline']}")
    for k, ex in enumerate(list(examples)[: cfg.max_examples]):
        first = candidate_order(ex["pair_id"], -1 - k, cfg.seed)
        c1, c2 = (ex["chosen"], ex["rejected"]) if first else (ex["rejected"], ex["chosen"])
        parts.append(f"Example {k + 1} (labeled by a person):\nConversation:\n{_clip(prompt_text(ex['prompt']), 800)}\n"
                     f"Candidate 1:\n{_clip(c1, 600)}\nCandidate 2:\n{_clip(c2, 600)}\nBetter: {1 if first else 2}")
    c1, c2 = (pair["chosen"], pair["rejected"]) if chosen_first else (pair["rejected"], pair["chosen"])
    parts.append(f"Now judge this one.\nConversation:\n{_clip(prompt_text(pair['prompt']), cfg.max_chars)}\n\n"
                 f"Candidate 1:\n{_clip(c1, cfg.max_chars)}\n\nCandidate 2:\n{_clip(c2, cfg.max_chars)}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def aggregate_votes(model_votes: dict[str, list[str]]) -> tuple[str, dict[str, str], Counter]:
    """Self-consistency within each model, then majority across models.

    Args:
        model_votes: model name -> list of per-sample labels ("chosen" / "rejected"); failed samples omitted.

    Returns:
        (final label, per-model labels, total vote counts). No majority -> "tie".

    Example: ``aggregate_votes({"a": ["chosen", "chosen", "rejected"], "b": ["rejected"]})[0] == "tie"``.
    """
    per_model = {}
    for model, votes in model_votes.items():
        c = Counter(votes)
        per_model[model] = "tie" if not votes or c["chosen"] == c["rejected"] else c.most_common(1)[0][0]
    decided = Counter(v for v in per_model.values() if v != "tie")
    if not decided or decided["chosen"] == decided["rejected"]:
        final = "tie"
    else:
        final = decided.most_common(1)[0][0]
    totals = Counter(v for votes in model_votes.values() for v in votes)
    return final, per_model, totals


class LLMJudge:
    """One or more endpoint clients (`workbench.llm.client.ChatClient`) judging pairs."""

    def __init__(self, clients: Sequence[Any], cfg: JudgeConfig = JudgeConfig()):
        if not clients:
            raise ValueError("LLMJudge needs at least one client (one per judge model).")
        self.clients, self.cfg = list(clients), cfg
        models = "+".join(sorted(c.cfg.model for c in self.clients))
        self.fingerprint = f"judge:{models}:{JUDGE_PROMPT_VERSION}:s{cfg.samples}:t{cfg.temperature}:seed{cfg.seed}"

    def judge_batch(self, pairs: PairFrame, *, attributes: dict[str, dict] | None = None,
                    examples: dict[str, Sequence[pd.Series]] | None = None) -> list[dict[str, Any]]:
        """One result dict per pair (label, votes, per-model labels, raw answers)."""
        rows = list(pairs.iterrows())
        calls, index = [], []
        for i, (_, pair) in enumerate(rows):
            for s in range(self.cfg.samples):
                first = candidate_order(pair["pair_id"], s, self.cfg.seed)
                msgs = judge_messages(pair, chosen_first=first, attributes=(attributes or {}).get(pair["pair_id"]),
                                      examples=(examples or {}).get(pair["pair_id"], ()), cfg=self.cfg)
                calls.append(msgs)
                index.append((i, first))
        per_pair: list[dict[str, list]] = [{} for _ in rows]
        raw: list[list] = [[] for _ in rows]
        for client in self.clients:
            results = client.complete_many(calls, validate=validate_verdict, schema=JUDGE_SCHEMA, progress=False,
                                           temperature=self.cfg.temperature)
            for (i, first), res in zip(index, results):
                votes = per_pair[i].setdefault(client.cfg.model, [])
                if res.ok:
                    label = "chosen" if (res.parsed == 1) == first else "rejected"
                    votes.append(label)
                raw[i].append({"model": client.cfg.model, "chosen_first": first, "ok": res.ok,
                               "answer": res.content, "error": res.error})
        out = []
        for i in range(len(rows)):
            final, per_model, totals = aggregate_votes(per_pair[i])
            if totals["chosen"] + totals["rejected"] == 0:
                final = FAILED  # no valid sample: no opinion, not a tie
            out.append({"judge_label": final, "votes_chosen": totals["chosen"], "votes_rejected": totals["rejected"],
                        "n_valid": totals["chosen"] + totals["rejected"], "model_labels": per_model, "raw": raw[i]})
        return out


def judge_pairs(pairs: PairFrame, judge: LLMJudge, *, store: Any, attributes: dict[str, dict] | None = None,
                examples: dict[str, Sequence[pd.Series]] | None = None, chunk_size: int = 64,
                retry_failed: bool = False, progress: bool = True) -> pd.DataFrame:
    """Judge every pair durably (resumable; stored per judge fingerprint); return `JUDGE_COLUMNS` rows.

    A pair no sample answered validly is stored as a failure (``judge_label="failed"``): reruns leave it
    alone unless ``retry_failed=True``, which asks the judge again (as the tagger's ``retry_failed``).
    """
    def work(chunk: PairFrame) -> list[tuple[bool, dict[str, Any]]]:
        return [(r["n_valid"] > 0, r) for r in judge.judge_batch(chunk, attributes=attributes, examples=examples)]

    done = store.process(judge.fingerprint, pairs, work, chunk_size=chunk_size, redo_failed=retry_failed,
                         desc="judging", progress=progress)
    ids = pairs["pair_id"].tolist()
    out = pd.DataFrame([{"pair_id": pid, **{k: done[pid][k] for k in JUDGE_COLUMNS[1:]}} for pid in ids],
                       columns=list(JUDGE_COLUMNS))
    # Stores written before "failed" existed hold n_valid == 0 rows as "tie": read them as what they are.
    out.loc[out["n_valid"] == 0, "judge_label"] = FAILED
    return out
