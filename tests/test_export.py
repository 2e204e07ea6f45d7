"""Exporting a run's curated set: formats trainers read as they are, a card with the run's numbers, the Hub (#21)."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_chat_tokenizer, make_pairs

from workbench.cli import main as cli_main
from workbench.data import files as io
from workbench.runs import export

DECISIONS = ["keep", "keep", "flip", "drop", "keep", "drop", "flip", "keep", "keep", "keep"]


def _run_folder(tmp_path, pairs: pd.DataFrame) -> tuple:
    """A run folder as notebook 05 leaves it: curated.parquet (pool with decisions + gold/test), metrics."""
    pool = pairs.iloc[:10].copy()
    pool["split"] = "train"
    pool["stage2_decision"] = DECISIONS
    pool["label_state"] = pool["stage2_decision"].map({"keep": "verified", "flip": "flipped", "drop": "dropped"})
    pool["stage2_by"] = "stage2:stage1=models/stage1/iter_2/model;gold=stage2/gold_rm"
    pool["stage2_rule"] = "gold RM + Stage-1 RM agree"
    pool["review_kinds"] = ["human", "", "human", "", "", "", "llm", "", "", ""]
    pool["review_reviewers"] = ["ana", "", "ana", "", "", "", "llm-judge", "", "", ""]
    pool["task_category"] = ["chat", "coding"] * 5
    held = pairs.iloc[10:14].copy()
    held["split"] = ["gold", "gold", "test", "test"]
    run = tmp_path / "run"
    io.write_pairs(pd.concat([pool, held], ignore_index=True), run / "curated.parquet")
    io.write_json({"pool_pairs": 10, "decision_keep": 6, "decision_flip": 2, "decision_drop": 2, "judge": "llm",
                   "judge_failed": 1}, run / "metrics" / "stage2_metrics.json")
    io.write_json({"rounds": 2, "reviewer": "human", "pairs_labelled": 3, "flips_found": 2}, run / "metrics" / "stage1_metrics.json")
    return run, pool, held


def test_training_rows_keep_and_flip_then_heldout():
    pairs = make_pairs(14)
    pool = pairs.iloc[:10].assign(split="train", stage2_decision=DECISIONS)
    held = pairs.iloc[10:].assign(split="gold")
    rows = export.training_rows(pool)
    assert rows["stage2_decision"].tolist() == [d for d in DECISIONS if d != "drop"]
    assert len(export.training_rows(pool, include_dropped=True)) == 10
    both = export.training_rows(pool, heldout=held)
    assert len(both) == 8 + 4 and both["split"].tolist()[-4:] == ["gold"] * 4
    with pytest.raises(ValueError, match="stage2_decision"):
        export.training_rows(pairs)
    assert len(export.trainable_pairs(pd.concat([pool, held]))) == 12  # notebook 06's selection is the same


def test_preference_records_are_trl_conversational_and_openrlhf_whole_conversations():
    pairs = make_pairs(2)
    trl = export.preference_records(pairs, "trl")
    assert trl.loc[0, "prompt"] == [{"role": "user", "content": pairs.loc[0, "prompt"][0]["content"]}]
    assert trl.loc[0, "chosen"] == [{"role": "assistant", "content": pairs.loc[0, "chosen"]}]
    assert trl.loc[0, "pair_id"] == pairs.loc[0, "pair_id"]
    full = export.preference_records(pairs, "openrlhf")
    assert full.loc[0, "rejected"] == pairs.loc[0, "prompt"] + [{"role": "assistant", "content": pairs.loc[0, "rejected"]}]
    assert "prompt" not in full.columns


def test_export_writes_the_file_and_a_card_with_the_runs_numbers(tmp_path, capsys):
    run, pool, held = _run_folder(tmp_path, make_pairs(14))
    result = export.export_run(run, tmp_path / "out" / "train.parquet", export.ExportConfig(include_heldout=True))
    data = pd.read_parquet(result.path)
    assert len(data) == 8 + 4 and result.counts == {"keep": 6, "flip": 2, "drop": 0, "rows": 12}
    assert set(data["split"]) == {"train", "gold", "test"} and data["pair_id"].is_unique
    card = result.card_path.read_text()
    assert card.startswith("---\n# workbench export") and "| all | 6 | 2 | 2 |" in card and "| coding |" in card
    assert "2 pairs labelled by people" in card and "1 pairs labelled by LLM judge" in card and "ana" not in card
    assert "judge failures decided without the judge: 1" in card and "planted" in card  # the pool's source, license unknown
    named = export.export_run(run, tmp_path / "named" / "train.parquet", export.ExportConfig(name_reviewers=True))
    assert "(ana)" in named.card_path.read_text()
    with pytest.raises(ValueError, match="writes a .parquet file"):
        export.export_run(run, tmp_path / "x.jsonl", export.ExportConfig(format="parquet"))
    assert cli_main(["export", str(run), "--format", "jsonl", "--out", str(tmp_path / "cli" / "pairs.jsonl")]) == 0
    assert len(io.load_pairs(tmp_path / "cli" / "pairs.jsonl")) == 8
    capsys.readouterr()
    assert cli_main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "y.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("workbench export: ") and "no curated pairs" in err  # one line, no traceback


@pytest.mark.parametrize("fmt", ["trl", "openrlhf"])
def test_trl_reward_trainer_trains_on_the_exported_file_as_it_is(tmp_path, fmt):
    from transformers import LlamaConfig, LlamaForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    run, _, _ = _run_folder(tmp_path, make_pairs(14))
    result = export.export_run(run, tmp_path / "out" / f"train.{'parquet' if fmt == 'trl' else 'jsonl'}",
                               export.ExportConfig(format=fmt))
    loader = datasets.Dataset.from_parquet if fmt == "trl" else datasets.Dataset.from_json
    ds = loader(str(result.path))  # no column mapping: the file as it is
    tok = make_chat_tokenizer("llama")
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, num_labels=1, pad_token_id=tok.pad_token_id, max_position_embeddings=1024))
    before = model.score.weight.detach().clone()
    args = RewardConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, max_steps=2, use_cpu=True,
                        bf16=False, report_to="none", save_strategy="no", disable_tqdm=True, logging_steps=1)
    trainer = RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    assert len(trainer.train_dataset) == 8  # nothing dropped or lost
    out = trainer.train()
    assert np.isfinite(out.training_loss) and not torch.equal(before, model.score.weight.detach())


def test_push_to_hub_is_private_by_default_and_never_writes_the_token(tmp_path, monkeypatch):
    import huggingface_hub

    run, _, _ = _run_folder(tmp_path, make_pairs(14))
    calls = []

    class RecordingApi:  # the upload boundary only: everything before it is the real export
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw))
            return f"https://huggingface.co/datasets/{repo_id}"

        def upload_file(self, **kw):
            calls.append(("upload", kw["path_in_repo"], kw["repo_id"], open(kw["path_or_fileobj"], "rb").read()))

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ValueError, match=r"needs a Hugging Face token in \$HF_TOKEN"):
        export.export_run(run, tmp_path / "a" / "train.parquet", push_to_hub="me/curated")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_123")
    result = export.export_run(run, tmp_path / "b" / "train.parquet", push_to_hub="me/curated")
    assert result.pushed_to == "https://huggingface.co/datasets/me/curated"
    assert calls[-3][0] == "create" and calls[-3][2]["private"] is True and calls[-3][2]["repo_type"] == "dataset"
    assert [c[1] for c in calls[-2:]] == ["train.parquet", "README.md"]
    written = b"".join(p.read_bytes() for p in (tmp_path / "b").iterdir())
    assert b"hf_secret_token_123" not in written and b"hf_secret_token_123" not in calls[-1][3]


def test_export_of_a_curated_set_built_from_the_real_hh_data(tmp_path, shared_data):
    from workbench.data import demo as demo_data

    pairs = demo_data.build_demo_pairs(shared_data).pairs
    pool = pairs[pairs["split"] == "train"].head(300).copy()
    pool["stage2_decision"] = np.where(np.arange(len(pool)) % 5 == 0, "drop", "keep")
    held = pairs[pairs["split"].isin(["gold", "test"])].head(50)
    run = tmp_path / "run"
    io.write_pairs(pd.concat([pool, held], ignore_index=True), run / "curated.parquet")
    result = export.export_run(run, tmp_path / "out" / "train.jsonl.gz", export.ExportConfig(format="trl"))
    rows = [json.loads(line) for line in __import__("gzip").open(result.path, "rt", encoding="utf-8")]
    assert len(rows) == 240 and all(r["chosen"][0]["role"] == "assistant" and r["prompt"][-1]["role"] == "user" for r in rows)
    card = result.card_path.read_text()
    assert "Anthropic/hh-rlhf" in card and "MIT" in card and "| all | 240 | 0 | 60 |" in card
