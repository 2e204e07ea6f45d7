"""Attribute tagging: every pair gets the paper's 5-tuple (category, objectivity, controversiality,
desired attributes, annotation guideline), from one of three taggers behind one interface.

* `EmbeddedTagger` — the offline default, no LLM: zero-shot similarity of the conversation's last user
  turn to label descriptions with the offline MiniLM, adjusted by cheap signals (code, math notation,
  refusal language, harmful-request words, question form, creative and role-play verbs). Guideline and
  desired attributes come from per-category templates. Fast; its output is marked ``heuristic``.
* `LLMTagger` — any OpenAI-compatible chat-completions endpoint (`workbench.llm.client`), JSON-schema
  output validated against `workbench.data.taxonomy`.
* `LocalTransformersTagger` — a local causal LM (GPU users with weights on disk) with constrained
  decoding: enum fields are chosen among the allowed values by likelihood, free-text fields are
  generated and JSON-escaped, so the output is valid JSON by construction.

`tag_pairs` runs any of them durably: results are stored per (tagger fingerprint, pair_id) in the run's
SQLite store as they arrive, an interrupted run resumes without repeating work, and rows that fail are
recorded with the reason (never dropped).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from workbench.data import files as io
from workbench.data.schema import PairFrame, prompt_text, topic_text
from workbench.data.taxonomy import ATTRIBUTE_JSON_SCHEMA, CONTROVERSIALITY, OBJECTIVITY, TASK_CATEGORIES, Attributes, validate_attributes
from workbench.llm.client import ChatClient, EndpointConfig
from workbench.models.device import resolve_device
from workbench.models.embedding import embed_texts

TAG_COLUMNS = ("pair_id", "tag_ok", "task_category", "objectivity", "controversiality", "desired_attributes",
               "annotation_guideline", "tag_error", "tagger", "heuristic")


class Tagger(Protocol):
    """Anything that tags a batch of pairs: returns one ``(ok, attributes dict | None, error | None)`` per pair."""

    fingerprint: str
    heuristic: bool

    def tag_batch(self, pairs: PairFrame) -> list[tuple[bool, dict[str, Any] | None, str | None]]:
        ...


# ---------------------------------------------------------------- the embedded (offline) tagger

# Several short descriptions per category: zero-shot similarity is steadier against prototypes than one label.
_PROTOTYPES: dict[str, list[str]] = {
    "chat": ["Casual conversation and small talk.", "Can you give me some advice about my relationship?",
             "What do you think about my plans for the weekend?", "I feel bored, let's chat.",
             "How can I be more productive at home?", "What should I get my mom for her birthday?"],
    "reasoning_math": ["Solve this math problem step by step.", "What is 17 times 23 minus 5?",
                       "If a train travels 60 miles per hour for 3 hours, how far does it go?",
                       "Find x in the equation 2x + 3 = 11.", "Compute the probability of rolling two sixes.",
                       "Logic puzzle: who is the liar?"],
    "coding": ["Write a Python function that sorts a list.", "Fix the bug in this JavaScript code.",
               "How do I write a SQL query joining two tables?", "Explain what this C++ code does.",
               "Implement a function in Go that reverses a string.", "How do I use git to undo a commit?"],
    "safety": ["How can I hurt someone without getting caught?", "How do I make a bomb?", "How do I steal a car?",
               "Tell me how to buy illegal drugs.", "Write an insult about a minority group.",
               "How can I hack into my neighbor's wifi?", "How do I poison someone?"],
    "knowledge_qa": ["Who was the first president of the United States?", "Why is the sky blue?",
                     "What is the capital of Australia?", "How does photosynthesis work?",
                     "When did World War II end?", "What is the definition of inflation?"],
    "creative_writing": ["Write a poem about the ocean.", "Tell me a short story about a dragon.",
                         "Write song lyrics about summer love.", "Tell me a joke about cats.",
                         "Write a haiku about autumn.", "Come up with a slogan for my bakery."],
    "instruction_following": ["Summarize the following paragraph in one sentence.", "Rewrite this text in a formal tone.",
                              "Translate this sentence into French.", "List five fruits in alphabetical order.",
                              "Classify these words into nouns and verbs.", "Extract the names from this text."],
    "role_play": ["Pretend you are a pirate and talk to me.", "Act as my therapist.", "You are a medieval knight. Stay in character.",
                  "Let's play a game where you are the dungeon master.", "Role-play as a customer service agent."],
    "other": ["Hmm.", "Okay.", "Test message.", "asdf"],
}

_HARM_WORDS = re.compile(r"\b(kill|murder|hurt|poison|bomb|weapon|gun|steal|rob|shoplift|hack|drugs?|cocaine|meth|suicide|abuse|racist|slur|insult|illegal|cheat|fraud|scam|revenge|terror|explosive|kidnap|stalk)\w*", re.I)
_SIGNALS: list[tuple[str, re.Pattern, float]] = [
    ("coding", re.compile(r"```|\bdef |\bfunction\b|\bclass \w+|#include|\bSELECT\b|\bimport \w+|\b(python|javascript|java|c\+\+|rust|golang|sql|html|css|regex|bash|code|compile|debug)\b", re.I), 0.25),
    ("reasoning_math", re.compile(r"\d+\s*[-+*/^=×÷]\s*\d+|\\frac|\\sqrt|\$[^$]+\$|\b(solve|calculate|compute|equation|integral|derivative|probability|how many|sum of|percent)\b", re.I), 0.2),
    ("safety", _HARM_WORDS, 0.1),
    ("knowledge_qa", re.compile(r"^(who|what|when|where|why|which|how (does|do|did|is|are|was|were|many|much))\b.*\?\s*$", re.I | re.S), 0.12),
    ("creative_writing", re.compile(r"\b(write|compose|create|tell) (me )?(a |an )?(short |funny )?(poem|story|song|lyrics|haiku|limerick|joke|slogan|essay|letter|script)", re.I), 0.2),
    ("role_play", re.compile(r"\b(pretend|act as|role[- ]?play|you are (a|an|my) |stay in character|let's play)\b", re.I), 0.25),
    ("instruction_following", re.compile(r"\b(summari[sz]e|rewrite|rephrase|paraphrase|translate|list \d+|in \d+ words|bullet points|classify|extract|convert|format)\b", re.I), 0.2),
]
_REFUSAL = re.compile(r"\b(I can(no|')t|I won't|I'm sorry, but|I am sorry, but|not able to help|against my|I cannot|I do not feel comfortable|unethical|illegal)\b", re.I)
_DIVISIVE = re.compile(r"\b(abortion|religio\w*|god|politic\w*|democrat\w*|republican\w*|trump|biden|immigra\w*|gun control|racis\w*|gay|transgender|vaccin\w*|death penalty|israel|palestin\w*|feminis\w*|capital punishment)\b", re.I)

_TEMPLATES: dict[str, tuple[list[str], str]] = {
    "chat": (["helpful", "friendly", "relevant", "concise"],
             "Prefer the response that engages with what the user actually said, is kind and useful, and does not ramble or invent facts."),
    "reasoning_math": (["correct final answer", "clear reasoning", "no arithmetic errors"],
                       "Check the final answer first: a correct answer beats a wrong one regardless of style; then prefer clearer, verifiable steps."),
    "coding": (["correct code", "runs as written", "explains the approach", "handles edge cases"],
               "Prefer code that is correct and would run; check it against the request and edge cases before judging explanation or style."),
    "safety": (["harmless", "refuses clearly harmful help", "non-judgmental", "offers safe alternatives"],
               "If the request seeks harm, prefer the response that declines without lecturing and, where possible, redirects to safe help; never prefer operational harmful detail."),
    "knowledge_qa": (["factually accurate", "directly answers", "well organised"],
                     "Verify the facts: an accurate answer beats a fluent but wrong one; then prefer the more direct and complete answer."),
    "creative_writing": (["creative", "follows the requested form", "engaging", "original"],
                         "Prefer the response that fulfils the requested form and topic with more originality and craft; length alone is not quality."),
    "instruction_following": (["follows every constraint", "faithful to the input", "correct format"],
                              "List the explicit constraints (format, length, content) and prefer the response that satisfies more of them faithfully."),
    "role_play": (["stays in character", "engaging", "consistent persona", "appropriate content"],
                  "Prefer the response that keeps the requested persona consistently and moves the interaction forward, without breaking safety norms."),
    "other": (["helpful", "relevant"], "Prefer the response that better serves the user's evident intent."),
}


@dataclass
class EmbeddedTagger:
    """Offline zero-shot tagger (see module docstring). Heuristic by design: check it against the
    hand-labeled set (``data/tagging_gold``) before trusting it."""

    embedder_name: str = ""
    cache: Any = None
    batch_size: int = 64
    heuristic: bool = True

    def __post_init__(self) -> None:
        self.fingerprint = f"embedded:{self.embedder_name or 'all-MiniLM-L6-v2'}:v1"
        self._proto_map: dict[str, np.ndarray] | None = None

    def category_scores(self, texts: list[str]) -> np.ndarray:
        """(n, n_categories) scores: max cosine similarity to a category's prototypes, plus signal boosts."""
        emb = embed_texts(texts, model_name=self.embedder_name, cache=self.cache, batch_size=self.batch_size, progress=False)
        cats = list(TASK_CATEGORIES)
        proto = self._prototypes_by_category()
        scores = np.stack([(emb @ proto[c].T).max(axis=1) for c in cats], axis=1)
        for j, c in enumerate(cats):
            for cat, pattern, boost in _SIGNALS:
                if cat == c:
                    scores[:, j] += np.array([boost if pattern.search(t) else 0.0 for t in texts])
        return scores

    def _prototypes_by_category(self) -> dict[str, np.ndarray]:
        if self._proto_map is None:
            self._proto_map = {c: embed_texts(_PROTOTYPES[c], model_name=self.embedder_name, progress=False) for c in TASK_CATEGORIES}
        return self._proto_map

    def tag_batch(self, pairs: PairFrame) -> list[tuple[bool, dict[str, Any] | None, str | None]]:
        texts = [topic_text(p) for p in pairs["prompt"]]
        scores = self.category_scores(texts)
        cats = list(TASK_CATEGORIES)
        out = []
        for i, (text, chosen, rejected) in enumerate(zip(texts, pairs["chosen"], pairs["rejected"])):
            category = cats[int(np.argmax(scores[i]))]
            refusal = bool(_REFUSAL.search(chosen) or _REFUSAL.search(rejected))
            harmful = bool(_HARM_WORDS.search(text))
            if category != "safety" and harmful and refusal:
                category = "safety"  # a harm word alone is weak evidence; with a refusal in either response it is strong
            objective = category in ("reasoning_math", "coding", "knowledge_qa") or (
                category == "instruction_following" and bool(re.search(r"\d|\b(exactly|only|must|format)\b", text, re.I)))
            # Controversiality is about whether the *better response* is contested (data/tagging_gold's
            # convention; a harmful request that one response refuses is clear-cut). Surface cues only
            # detect divisive topics; "medium" (style disagreements) needs an LLM tagger.
            controversy = "high" if _DIVISIVE.search(text) else "low"
            attrs, guideline = _TEMPLATES[category]
            if controversy == "high":
                guideline += " The topic is divisive or safety-critical: prefer balanced, careful responses over one-sided ones."
            out.append((True, Attributes(category, "objective" if objective else "subjective", controversy,
                                         tuple(attrs), guideline).to_dict(), None))
        return out


# ---------------------------------------------------------------- the LLM tagger (any OpenAI-compatible endpoint)

PROMPT_VERSION = "v1"


def tagging_messages(prompt: Sequence[dict[str, str]], chosen: str, rejected: str, *, max_chars: int = 2000) -> list[dict[str, str]]:
    """Chat messages asking an LLM for the 5-tuple of one pair, as JSON matching the taxonomy schema."""
    def clip(s: str) -> str:
        return s if len(s) <= max_chars else s[: max_chars // 2] + " […] " + s[-max_chars // 2:]

    describe = lambda d: "\n".join(f"- {k}: {v}" for k, v in d.items())  # noqa: E731
    system = (
        "You annotate preference data for reward-model training. For the conversation and the two candidate responses, "
        "return ONLY a JSON object with these fields:\n"
        f"task_category (one of):\n{describe(TASK_CATEGORIES)}\n"
        f"objectivity (one of):\n{describe(OBJECTIVITY)}\n"
        f"controversiality (one of):\n{describe(CONTROVERSIALITY)}\n"
        "desired_attributes: 1-6 short phrases naming qualities a good response to THIS prompt should have.\n"
        "annotation_guideline: 1-3 sentences of instance-specific criteria an annotator should use to decide which response is better.\n"
        f"JSON schema: {json.dumps(ATTRIBUTE_JSON_SCHEMA)}"
    )
    user = (f"Conversation:\n{clip(prompt_text(prompt))}\n\nCandidate A:\n{clip(chosen)}\n\nCandidate B:\n{clip(rejected)}\n\n"
            "Return the JSON object.")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


class LLMTagger:
    """Tags through `workbench.llm.client.ChatClient` (bounded concurrency, retries, validated JSON)."""

    heuristic = False

    def __init__(self, client: Any):
        self.client = client
        self.fingerprint = f"llm:{client.cfg.model}:{PROMPT_VERSION}"

    def tag_batch(self, pairs: PairFrame) -> list[tuple[bool, dict[str, Any] | None, str | None]]:
        batch = [tagging_messages(p, c, r) for p, c, r in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"])]
        results = self.client.complete_many(batch, schema=ATTRIBUTE_JSON_SCHEMA, validate=validate_attributes, progress=False)
        out = []
        for res in results:
            if res.ok:
                out.append((True, res.parsed.to_dict(), None))
            else:
                out.append((False, None, res.error))
        return out


# ---------------------------------------------------------------- local transformers tagger (constrained)


class LocalTransformersTagger:
    """A local causal LM with constrained decoding: the output is valid JSON for the schema by construction.

    Enum fields: every allowed value is scored by the model's log-likelihood after the prompt and the
    JSON prefix so far, and the best is written (decoding restricted to the enum). Free-text fields:
    greedy generation stopped at a quote or newline, then JSON-escaped. Meant for a GPU with weights on
    disk; works (slowly, and with meaningless tags) with a tiny random model on CPU, which the tests use.
    """

    heuristic = False

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "local", max_new_tokens: int = 48):
        import torch

        self.model, self.tokenizer, self.max_new_tokens = model.eval(), tokenizer, max_new_tokens
        self.device = next(model.parameters()).device
        self.fingerprint = f"local:{name}:{PROMPT_VERSION}"
        self._torch = torch

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _logprob(self, prefix: list[int], continuation: list[int]) -> float:
        torch = self._torch
        ids = torch.tensor([prefix + continuation], device=self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids).logits[0, len(prefix) - 1: -1].float().log_softmax(-1)
        return float(logits[torch.arange(len(continuation)), torch.tensor(continuation, device=self.device)].sum())

    def _choose(self, prefix: list[int], options: Sequence[str]) -> str:
        scores = [self._logprob(prefix, self._ids(json.dumps(o))) / max(1, len(self._ids(json.dumps(o)))) for o in options]
        return options[int(np.argmax(scores))]

    def _generate_text(self, prefix: list[int]) -> str:
        torch = self._torch
        ids = torch.tensor([prefix], device=self.device)
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.max_new_tokens,
                                      do_sample=False, pad_token_id=self.tokenizer.pad_token_id or 0)
        text = self.tokenizer.decode(out[0, len(prefix):], skip_special_tokens=True)
        text = re.split(r'["\n]', text, maxsplit=1)[0].strip()
        return text or "helpful"

    def tag_one(self, prompt: Sequence[dict[str, str]], chosen: str, rejected: str) -> dict[str, Any]:
        messages = tagging_messages(prompt, chosen, rejected, max_chars=1000)
        if getattr(self.tokenizer, "chat_template", None):
            head = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            head = "\n\n".join(m["content"] for m in messages) + "\n\n"
        doc: dict[str, Any] = {}
        text = head + "{"
        for i, name in enumerate(("task_category", "objectivity", "controversiality")):
            text += ("" if i == 0 else ", ") + f'"{name}": '
            options = list({"task_category": TASK_CATEGORIES, "objectivity": OBJECTIVITY, "controversiality": CONTROVERSIALITY}[name])
            doc[name] = self._choose(self._ids(text), options)
            text += json.dumps(doc[name])
        text += ', "desired_attributes": ["'
        doc["desired_attributes"] = [self._generate_text(self._ids(text))]
        text += doc["desired_attributes"][0] + '"], "annotation_guideline": "'
        doc["annotation_guideline"] = self._generate_text(self._ids(text))
        return validate_attributes(json.loads(json.dumps(doc))).to_dict()

    def tag_batch(self, pairs: PairFrame) -> list[tuple[bool, dict[str, Any] | None, str | None]]:
        out = []
        for p, c, r in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"]):
            try:
                out.append((True, self.tag_one(p, c, r), None))
            except Exception as e:  # noqa: BLE001 - one bad row must not stop the batch; the reason is kept
                out.append((False, None, f"{type(e).__name__}: {e}"))
        return out


# ---------------------------------------------------------------- durable driver


@dataclass(frozen=True)
class TagConfig:
    """How `tag_pairs` runs: chunk size (one durable commit per chunk) and failure handling."""

    chunk_size: int = 256  # an interruption loses at most one chunk of work
    retry_failed: bool = False  # re-tag rows whose earlier attempt failed

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}.")


def tag_pairs(pairs: PairFrame, tagger: Tagger, *, store: Any, cfg: TagConfig = TagConfig(), progress: bool = True) -> pd.DataFrame:
    """Tag every pair, durably; return one row per pair with `TAG_COLUMNS`.

    Args:
        pairs: canonical pairs.
        tagger: `EmbeddedTagger`, `LLMTagger` or `LocalTransformersTagger`.
        store: a `workbench.data.files.ResultStore`; pairs already tagged by this tagger fingerprint are not
            tagged again (resume), failed ones only with ``cfg.retry_failed``.

    Example: ``tags = tag_pairs(pairs, EmbeddedTagger(), store=ResultStore(run.file("tags.sqlite"), "tags"))``.
    """
    def work(chunk: PairFrame) -> list[tuple[bool, dict[str, Any]]]:
        return [(ok, {"attributes": attrs, "error": err}) for ok, attrs, err in tagger.tag_batch(chunk)]

    done = store.process(tagger.fingerprint, pairs, work, chunk_size=cfg.chunk_size, redo_failed=cfg.retry_failed,
                         desc=f"tagging ({tagger.fingerprint})", progress=progress)
    ids = pairs["pair_id"].tolist()
    rows = []
    for pid in ids:
        rec = done[pid]
        attrs = rec.get("attributes") or {}
        rows.append({"pair_id": pid, "tag_ok": rec["ok"], "task_category": attrs.get("task_category"),
                     "objectivity": attrs.get("objectivity"), "controversiality": attrs.get("controversiality"),
                     "desired_attributes": attrs.get("desired_attributes"), "annotation_guideline": attrs.get("annotation_guideline"),
                     "tag_error": rec.get("error"), "tagger": tagger.fingerprint, "heuristic": tagger.heuristic})
    return pd.DataFrame(rows, columns=list(TAG_COLUMNS))


def tag_accuracy(tags: pd.DataFrame, gold: pd.DataFrame) -> pd.DataFrame:
    """Per-field accuracy of tags against hand labels (joined on pair_id), with counts."""
    merged = gold.merge(tags, on="pair_id", suffixes=("_gold", ""))
    rows = {}
    for field_name in ("task_category", "objectivity", "controversiality"):
        rows[field_name] = {"accuracy": float((merged[f"{field_name}_gold"] == merged[field_name]).mean()), "n": len(merged)}
    return pd.DataFrame(rows).T


TAGGER_KINDS = ("embedded", "llm", "local")


def make_tagger(kind: str = "embedded", *, endpoint: Any = None, local_model_path: str = "", cache: Any = None,
                embedder_name: str = "") -> Tagger:
    """Build a tagger from notebook parameters.

    Args:
        kind: ``embedded`` (offline default), ``llm`` (needs ``endpoint``, a `workbench.llm.client.EndpointConfig`)
            or ``local`` (needs ``local_model_path``, a causal LM folder).
    """
    if kind == "embedded":
        return EmbeddedTagger(embedder_name=embedder_name, cache=cache)
    if kind == "llm":
        return LLMTagger(ChatClient((endpoint or EndpointConfig()).resolved()))
    if kind == "local":
        if not local_model_path:
            raise ValueError("tagger='local' needs local_model_path: a folder with a causal LM and its tokenizer.")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(local_model_path).to(resolve_device("auto"))
        return LocalTransformersTagger(model, AutoTokenizer.from_pretrained(local_model_path), name=local_model_path.rstrip("/").split("/")[-1])
    raise ValueError(f"Unknown tagger {kind!r}; choose one of {list(TAGGER_KINDS)}.")


GOLD_TAGS_FILE = "data/tagging_gold/pairs.jsonl"


def load_tagging_gold(data_dir: str | None = None) -> tuple[PairFrame, pd.DataFrame]:
    """The committed hand-labeled tagging set: (pairs re-read from shared/data by pair_id, labels frame)."""
    labels = pd.read_json(io.REPO_ROOT / GOLD_TAGS_FILE, lines=True, dtype=False)
    data = io.shared_data_dir(data_dir)
    frames = []
    for source, group in labels.groupby("source"):
        if source in ("filtered", "rewardbench"):
            path = data / "rewardbench" / "filtered.jsonl.gz"
        else:  # HH-RLHF file sources are named after their folder, e.g. "helpful-base"
            path = data / "hh_rlhf" / source / "test.jsonl.gz"
        pairs, _ = io.read_pairs(path, strict=False)
        frames.append(pairs[pairs["pair_id"].isin(set(group["pair_id"]))])
    pairs = pd.concat(frames, ignore_index=True).drop_duplicates("pair_id")
    missing = set(labels["pair_id"]) - set(pairs["pair_id"])
    if missing:
        raise ValueError(f"{GOLD_TAGS_FILE}: {len(missing)} pair_ids not found in {data}, e.g. {sorted(missing)[:3]}.")
    return pairs.set_index("pair_id").loc[labels["pair_id"]].reset_index(), labels


def majority_baseline(gold: pd.DataFrame) -> dict[str, float]:
    """Accuracy of always answering each field's most common gold value: the bar a tagger must clear."""
    return {f: float(gold[f].value_counts(normalize=True).iloc[0]) for f in ("task_category", "objectivity", "controversiality")}


def examples_per_category(tags: pd.DataFrame, pairs: PairFrame, *, n: int = 3, chars: int = 160) -> pd.DataFrame:
    """Up to ``n`` prompts per task category with their objectivity, controversiality and guideline."""
    frame = tags[tags["tag_ok"]].merge(pairs[["pair_id", "prompt"]], on="pair_id")
    frame["prompt_excerpt"] = frame["prompt"].map(lambda p: topic_text(p)[:chars])
    cols = ["task_category", "prompt_excerpt", "objectivity", "controversiality", "annotation_guideline"]
    return frame.groupby("task_category", group_keys=False).head(n)[cols].sort_values("task_category").reset_index(drop=True)


def gold_accuracy(tagger: Tagger, *, store: Any, data_dir: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """Per-field accuracy of ``tagger`` on the committed hand-labeled set (the first ``limit`` pairs), with the
    majority-label baseline beside it; tags go through ``store`` like any others (resumable)."""
    gold_pairs, gold_labels = load_tagging_gold(data_dir)
    if limit:
        gold_pairs, gold_labels = gold_pairs.head(limit), gold_labels.head(limit)
    acc = tag_accuracy(tag_pairs(gold_pairs, tagger, store=store, progress=False), gold_labels)
    acc["majority_baseline"] = [majority_baseline(gold_labels)[f] for f in acc.index]
    return acc


def tag_metrics(tags: pd.DataFrame, tagger: Tagger, accuracy: pd.DataFrame | None = None) -> dict[str, Any]:
    """Tagging at a glance: counts, gold accuracy per field (when measured) and the LLM's usage (for LLM taggers)."""
    out: dict[str, Any] = {"tagger": tagger.fingerprint, "pairs": len(tags), "tagged": int(tags["tag_ok"].sum()),
                           "failed": int((~tags["tag_ok"]).sum())}
    if accuracy is not None:
        out.update({f"gold_{f}_accuracy": float(accuracy.loc[f, "accuracy"]) for f in accuracy.index})
    usage = getattr(getattr(tagger, "client", None), "usage", None)
    out.update({f"llm_{k}": v for k, v in dict(usage or {}).items()})
    return out
