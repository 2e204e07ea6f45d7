"""Taxonomy validation, the embedded tagger, constrained local tagging, durable resume."""

import pytest
from conftest import make_pairs

from workbench.curation.tagging import EmbeddedTagger, LocalTransformersTagger, TagConfig, tag_accuracy, tag_pairs
from workbench.data.schema import topic_text
from workbench.data.taxonomy import ATTRIBUTE_JSON_SCHEMA, TASK_CATEGORIES, validate_attributes
from workbench.runs.stores import ResultStore

GOOD = {"task_category": "coding", "objectivity": "objective", "controversiality": "low",
        "desired_attributes": ["correct code"], "annotation_guideline": "Prefer code that runs."}


def test_validate_attributes_messages():
    assert validate_attributes(GOOD).task_category == "coding"
    with pytest.raises(ValueError, match=r"field 'task_category' is 'cooking'; allowed"):
        validate_attributes({**GOOD, "task_category": "cooking"})
    with pytest.raises(ValueError, match=r"missing fields \['annotation_guideline'\]"):
        validate_attributes({k: v for k, v in GOOD.items() if k != "annotation_guideline"})
    with pytest.raises(ValueError, match="non-empty list of strings"):
        validate_attributes({**GOOD, "desired_attributes": []})
    with pytest.raises(ValueError, match=r"unexpected fields \['score'\]"):
        validate_attributes({**GOOD, "score": 3})
    assert ATTRIBUTE_JSON_SCHEMA["properties"]["task_category"]["enum"] == list(TASK_CATEGORIES)


def _pairs(prompts):
    from workbench.data.pairs import records_to_pairs

    recs = [{"prompt": p, "chosen": f"answer {i}", "rejected": f"other {i}"} for i, p in enumerate(prompts)]
    return records_to_pairs(list(enumerate(recs, 1)), where="mem", source="mem")[0]


def test_embedded_tagger_obvious_cases(tmp_path):
    pairs = _pairs(["Write a Python function that returns the nth Fibonacci number.",
                    "What is 12 * 13 + 7? Solve step by step.",
                    "How do I make a pipe bomb to hurt my neighbour?",
                    "Write a poem about the sea at night.",
                    "Pretend you are a pirate captain and greet me.",
                    "Translate this sentence into French: I like cheese.",
                    "Who was the first emperor of Rome?",
                    "Should abortion be legal? Give me your opinion."])
    tags = tag_pairs(pairs, EmbeddedTagger(), store=ResultStore(tmp_path / "t.sqlite", "tags"), progress=False)
    assert tags["task_category"].tolist()[:7] == ["coding", "reasoning_math", "safety", "creative_writing", "role_play",
                                                  "instruction_following", "knowledge_qa"]
    assert tags.loc[0, "objectivity"] == "objective" and tags.loc[3, "objectivity"] == "subjective"
    # divisive topic -> high; a harmful request is clear-cut (low) by the hand-labeled set's convention
    assert tags.loc[7, "controversiality"] == "high" and tags.loc[2, "controversiality"] == "low"
    assert tags["heuristic"].all() and tags["tag_ok"].all()
    assert all(len(a) >= 1 for a in tags["desired_attributes"]) and all(tags["annotation_guideline"].str.len() > 20)


def test_topic_text_uses_first_and_last_user_turn():
    prompt = [{"role": "user", "content": "Recipe for chow mein?"}, {"role": "assistant", "content": "Sure..."},
              {"role": "user", "content": "Try again."}]
    assert topic_text(prompt) == "Recipe for chow mein?\n...\nTry again."


class CountingTagger:
    """Wraps a tagger, counts pairs it was asked to tag, and can crash after N chunks (an interruption)."""

    def __init__(self, inner, crash_after=None):
        self.inner, self.crash_after, self.seen, self.chunks = inner, crash_after, 0, 0
        self.fingerprint, self.heuristic = inner.fingerprint, inner.heuristic

    def tag_batch(self, pairs):
        if self.crash_after is not None and self.chunks >= self.crash_after:
            raise KeyboardInterrupt
        self.chunks += 1
        self.seen += len(pairs)
        return self.inner.tag_batch(pairs)


def test_interrupted_tagging_resumes_without_repeats(tmp_path):
    pairs = make_pairs(20)
    store_path = tmp_path / "tags.sqlite"
    first = CountingTagger(EmbeddedTagger(), crash_after=2)
    with pytest.raises(KeyboardInterrupt):
        tag_pairs(pairs, first, store=ResultStore(store_path, "tags"), cfg=TagConfig(chunk_size=6), progress=False)
    assert first.seen == 12
    second = CountingTagger(EmbeddedTagger())
    tags = tag_pairs(pairs, second, store=ResultStore(store_path, "tags"), cfg=TagConfig(chunk_size=6), progress=False)
    assert second.seen == 8 and len(tags) == 20 and tags["tag_ok"].all()  # only the 8 untagged pairs
    third = CountingTagger(EmbeddedTagger())
    tag_pairs(pairs, third, store=ResultStore(store_path, "tags"), progress=False)
    assert third.seen == 0


class FailingTagger:
    fingerprint, heuristic = "failing:v1", False

    def tag_batch(self, pairs):
        return [(False, None, "HTTP 500 after 4 retries")] * len(pairs)


def test_failures_are_recorded_with_reason_not_dropped(tmp_path):
    pairs = make_pairs(3)
    tags = tag_pairs(pairs, FailingTagger(), store=ResultStore(tmp_path / "t.sqlite", "tags"), progress=False)
    assert len(tags) == 3 and not tags["tag_ok"].any() and set(tags["tag_error"]) == {"HTTP 500 after 4 retries"}


def test_local_tagger_output_is_schema_valid_by_construction(tiny_decoder, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_decoder)
    cfg = Qwen3Config(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=2048)
    model = AutoModelForCausalLM.from_config(cfg)
    tagger = LocalTransformersTagger(model, tok, name="tiny-random", max_new_tokens=4)
    tags = tag_pairs(make_pairs(2), tagger, store=ResultStore(tmp_path / "t.sqlite", "tags"), progress=False)
    assert tags["tag_ok"].all(), tags["tag_error"].tolist()
    assert set(tags["task_category"]) <= set(TASK_CATEGORIES) and set(tags["objectivity"]) <= {"objective", "subjective"}


def test_tag_accuracy():
    import pandas as pd

    gold = pd.DataFrame({"pair_id": ["a", "b"], "task_category": ["coding", "chat"], "objectivity": ["objective", "subjective"],
                         "controversiality": ["low", "low"]})
    tags = pd.DataFrame({"pair_id": ["a", "b"], "task_category": ["coding", "safety"], "objectivity": ["objective", "subjective"],
                         "controversiality": ["low", "high"]})
    acc = tag_accuracy(tags, gold)
    assert acc.loc["task_category", "accuracy"] == 0.5 and acc.loc["objectivity", "accuracy"] == 1.0


def test_embedded_tagger_beats_majority_on_hand_labels(shared_data, tmp_path):
    """Real data: the committed hand-labeled set re-read from shared/data by pair_id."""
    from workbench.curation.tagging import load_tagging_gold, majority_baseline

    pairs, labels = load_tagging_gold(str(shared_data))
    assert len(pairs) == len(labels) >= 100 and pairs["pair_id"].tolist() == labels["pair_id"].tolist()
    tags = tag_pairs(pairs, EmbeddedTagger(), store=ResultStore(tmp_path / "t.sqlite", "tags"), progress=False)
    acc = tag_accuracy(tags, labels)["accuracy"]
    base = majority_baseline(labels)
    assert acc["task_category"] >= base["task_category"] + 0.2  # measured 0.58 vs 0.28
    assert acc["objectivity"] >= base["objectivity"] + 0.15  # measured 0.77 vs 0.53
    assert acc["controversiality"] >= base["controversiality"]  # measured 0.67 vs 0.66
