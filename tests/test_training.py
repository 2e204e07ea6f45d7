"""Reward-model training: BT loss values, TRL agreement, tiny-model training, LoRA merge, resume, fast head."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import make_pairs
from transformers import AutoModelForSequenceClassification

from workbench.data import files as io
from workbench.models.loss import bt_loss
from workbench.models.scoring import ScoreConfig, load_reward_model, score_pairs
from workbench.models.training import RMTrainConfig, gold_metrics, train_reward_model
from workbench.runs.folder import start_run
from workbench.runs.stores import EmbeddingCache

TINY = dict(max_steps=6, batch_size=4, eval_steps=3, max_length=64, learning_rate=1e-3, bf16="off")


def test_bt_loss_known_values():
    r_c, r_r = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    expected = np.mean([np.log1p(np.exp(-2.0)), np.log(2.0), np.log1p(np.exp(2.0))])
    assert bt_loss(r_c, r_r).item() == pytest.approx(expected, rel=1e-6)
    margin = torch.tensor([1.0, 1.0, 1.0])
    with_margin = np.mean([np.log1p(np.exp(-1.0)), np.log1p(np.e), np.log1p(np.exp(3.0))])
    assert bt_loss(r_c, r_r, margin=margin).item() == pytest.approx(with_margin, rel=1e-6)
    centered = bt_loss(r_c, r_r, center_coefficient=0.1).item()
    assert centered == pytest.approx(expected + 0.1 * np.mean([4.0, 0.0, 0.0]), rel=1e-6)


def test_trl_reward_trainer_loss_is_our_bt_loss(tiny_decoder):
    """We rely on TRL's compute_loss; check it computes exactly the BT loss on a known batch."""
    import datasets
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_decoder).eval()
    tok = AutoTokenizer.from_pretrained(tiny_decoder)
    ds = datasets.Dataset.from_dict({"chosen_ids": [[5, 6, 7], [8, 9]], "rejected_ids": [[10, 11], [12, 13, 14, 15]]})
    args = RewardConfig(output_dir="/tmp/unused", use_cpu=True, bf16=False, report_to="none", center_rewards_coefficient=0.05)
    trainer = RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    batch = trainer.data_collator([ds[0], ds[1]])
    loss = trainer.compute_loss(model, dict(batch)).item()
    with torch.no_grad():
        rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    assert loss == pytest.approx(bt_loss(rewards[:2], rewards[2:], center_coefficient=0.05).item(), rel=1e-5)


def test_gold_metrics_per_category():
    m = gold_metrics(np.array([1.0, -1.0, 2.0]), ["a", "b", "a"])
    assert m == {"gold_accuracy": pytest.approx(2 / 3), "gold_margin": pytest.approx(2 / 3), "gold_accuracy/a": 1.0, "gold_accuracy/b": 0.0}


@pytest.fixture(scope="module")
def trained(tiny_decoder, tmp_path_factory):
    pairs = make_pairs(40)
    out = tmp_path_factory.mktemp("rm")
    before = {k: v.clone() for k, v in AutoModelForSequenceClassification.from_pretrained(tiny_decoder).state_dict().items()}
    result = train_reward_model(pairs.iloc[:30], pairs.iloc[30:], cfg=RMTrainConfig(backbone=str(tiny_decoder), **TINY),
                                output_dir=out, progress=False)
    return result, pairs, before


def test_tiny_decoder_trains_saves_and_reloads(trained):
    result, pairs, before = trained
    losses = result.history["loss"].dropna()
    assert len(losses) and np.isfinite(losses).all()
    after = AutoModelForSequenceClassification.from_pretrained(result.model_dir).state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) == len(before)  # every parameter moved (full fine-tuning)
    assert result.metrics["steps"] == 6 and result.metrics["best_checkpoint"].endswith(("checkpoint-3", "checkpoint-6"))
    assert not (result.model_dir.parent / "checkpoints").exists()  # cleaned up once the model is saved
    evals = result.history.dropna(subset=["eval_gold_accuracy"])
    assert result.metrics["gold_accuracy"] == pytest.approx(evals["eval_gold_accuracy"].max())
    assert {"eval_gold_accuracy/a", "eval_gold_accuracy/b"} <= set(evals.columns)
    card = (result.model_dir / "README.md").read_text()
    assert "Bradley-Terry" in card and '"n_train": 30' in card
    # plain transformers + our scorer agree with the recorded best gold accuracy
    scores = score_pairs(load_reward_model(result.model_dir), pairs.iloc[30:], cfg=ScoreConfig(max_length=64, dtype="fp32"), progress=False)
    assert (scores["margin"] > 0).mean() == pytest.approx(result.metrics["gold_accuracy"])


def test_lora_merged_equals_unmerged(tiny_decoder, tmp_path):
    from peft import PeftModel

    pairs = make_pairs(24)
    result = train_reward_model(pairs.iloc[:20], pairs.iloc[20:], cfg=RMTrainConfig(backbone=str(tiny_decoder), lora_r=4, **TINY),
                                output_dir=tmp_path, progress=False)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_decoder)
    unmerged = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    merged = AutoModelForSequenceClassification.from_pretrained(result.model_dir).eval()
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    with torch.no_grad():
        a, b = unmerged(input_ids=ids).logits, merged(input_ids=ids).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    head = [k for k in unmerged.state_dict() if "modules_to_save" in k and "score" in k]
    assert head, "the new score head must be trained and saved with the adapter"


def test_killed_run_resumes_and_finishes(tiny_decoder, tmp_path):
    pairs = make_pairs(40)
    io.write_pairs(pairs, tmp_path / "pairs.parquet")
    script = textwrap.dedent(f"""
        import os, sys
        from transformers import TrainerCallback
        from workbench.data import files as io
        from workbench.models.training import RMTrainConfig, train_reward_model

        class Kill(TrainerCallback):
            def on_save(self, args, state, control, **kw):
                if state.global_step == 4 and os.environ.get("KILL"):
                    os._exit(137)  # hard kill right after the step-4 checkpoint, no cleanup

        pairs = io.load_pairs(r"{tmp_path / 'pairs.parquet'}")
        cfg = RMTrainConfig(backbone=r"{tiny_decoder}", max_steps=8, batch_size=4, eval_steps=2, max_length=64, bf16="off")
        res = train_reward_model(pairs.iloc[:32], pairs.iloc[32:], cfg=cfg, output_dir=r"{tmp_path / 'rm'}",
                                 callbacks=[Kill()], progress=False)
        print("RESUMED_FROM", res.metrics["resumed_from"], "STEPS", res.metrics["steps"])
    """)
    killed = subprocess.run([sys.executable, "-c", script], env={**__import__("os").environ, "KILL": "1"},
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == 137 and not (tmp_path / "rm" / "model").exists()
    resumed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    line = [x for x in resumed.stdout.splitlines() if x.startswith("RESUMED_FROM")][0]
    assert "checkpoint-4" in line and line.endswith("STEPS 8")
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm" / "model").config.num_labels == 1


def test_changed_config_does_not_resume_silently(tiny_decoder, tmp_path, trained):
    pairs = make_pairs(20)
    train_reward_model(pairs, None, cfg=RMTrainConfig(backbone=str(tiny_decoder), keep_checkpoints=True, **TINY),
                       output_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="checkpoints of a different config"):
        train_reward_model(pairs, None, cfg=RMTrainConfig(backbone=str(tiny_decoder), keep_checkpoints=True,
                                                          **{**TINY, "learning_rate": 1e-4}), output_dir=tmp_path, progress=False)


def test_embedding_head_learns_planted_task(tmp_path):
    pairs = make_pairs(120)
    run = start_run(tmp_path / "run")
    cache = EmbeddingCache(run, "minilm")
    result = train_reward_model(pairs.iloc[:90], pairs.iloc[90:], cfg=RMTrainConfig(kind="embedding_head", head_epochs=40, seed=1),
                                output_dir=tmp_path / "head", cache=cache, progress=False)
    assert result.metrics["gold_accuracy"] >= 0.9
    rm = load_reward_model(result.model_dir)
    scores = score_pairs(rm, pairs.iloc[90:], progress=False)
    assert (scores["margin"] > 0).mean() == pytest.approx(result.metrics["gold_accuracy"])
    assert json.loads((result.model_dir / "workbench_rm.json").read_text())["kind"] == "embedding_head"
    # what the embedder cut (MiniLM keeps 256 tokens) is counted, not hidden: benchmark tables report it
    _, cut = rm.score_sides([[{"role": "user", "content": "q"}]] * 2, ["short answer", "word " * 400], None, progress=False)
    assert cut.tolist() == [False, True]
    assert rm.scoring_conditions() == {"max_length": 256, "dtype": rm.scoring_conditions()["dtype"], "runtime": "torch"}


def test_config_errors():
    with pytest.raises(ValueError, match=r"Unknown kind 'svm'"):
        RMTrainConfig(kind="svm")
    with pytest.raises(ValueError, match="Unknown backend 'tpu'"):
        RMTrainConfig(backend="tpu")
    with pytest.raises(ValueError, match="train has no pairs"):
        train_reward_model(make_pairs(2).iloc[:0], output_dir="/tmp/never")


def test_unsloth_requested_without_gpu_is_clear(tmp_path):
    with pytest.raises(RuntimeError, match="CUDA|unsloth"):
        train_reward_model(make_pairs(4), cfg=RMTrainConfig(backend="unsloth"), output_dir=tmp_path, progress=False)


def test_encoder_rm_plain_transformers_call_matches_scorer(tmp_path):
    """The model card's plain `tok(conversation, response)` call gives the workbench score (token types tied)."""
    from transformers import AutoTokenizer

    pairs = make_pairs(12)
    result = train_reward_model(pairs.iloc[:8], pairs.iloc[8:], cfg=RMTrainConfig(max_steps=2, batch_size=4, eval_steps=2,
                                max_length=64, bf16="off"), output_dir=tmp_path, progress=False)
    tok = AutoTokenizer.from_pretrained(result.model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(result.model_dir).eval()
    row = pairs.iloc[9]
    with torch.no_grad():
        plain = model(**tok(f"user: {row['prompt'][0]['content']}", row["chosen"], return_tensors="pt")).logits[0, 0].item()
    ours = score_pairs(load_reward_model(result.model_dir), pairs.iloc[[9]], cfg=ScoreConfig(max_length=64, dtype="fp32"), progress=False)
    assert ours["r_chosen"].iloc[0] == pytest.approx(plain, abs=1e-5)


def test_padding_free_batch_matches_padded_batch(minilm_path, tmp_path):
    """The packed path (one row, attention within each sequence) gives TRL's padded-batch loss and gradients."""
    import datasets
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from trl import RewardConfig
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from workbench.models import training

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=200, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                     intermediate_size=128, num_labels=1)).eval()  # eval: no dropout
    rows = [{"chosen_ids": [101, *range(5, 5 + n), 102], "rejected_ids": [101, *range(50, 50 + m), 102], "margin": 0.5 * n / m}
            for n, m in [(3, 9), (12, 2), (6, 6)]]
    args = RewardConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", center_rewards_coefficient=0.05)
    trainer_cls, _ = training._make_trainer_class()
    trainer = trainer_cls(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                          processing_class=AutoTokenizer.from_pretrained(minilm_path))

    def loss_and_grads(batch):
        model.zero_grad()
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    padded_loss, padded_grads = loss_and_grads(DataCollatorForPreference(pad_token_id=0)(rows))
    training._register_varlen_attention()
    model.set_attn_implementation(training.VARLEN_ATTENTION)
    packed = training.pack_preference_batch(rows)
    assert packed["input_ids"].shape == (1, sum(len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in rows))
    packed_loss, packed_grads = loss_and_grads(packed)
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    assert packed_grads.keys() == padded_grads.keys()
    for name, grad in padded_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # the same model still scores padded batches (gold evaluation) with SDPA's mask
    with torch.no_grad():
        batch = DataCollatorForPreference(pad_token_id=0)(rows)
        rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(rewards, training.packed_rewards(model, packed).detach(), rtol=1e-5, atol=1e-6)
