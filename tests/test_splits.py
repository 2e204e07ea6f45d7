"""Dedup, grouped deterministic splits, label-state changes."""

import pandas as pd
import pytest

from workbench.data.pairs import records_to_pairs
from workbench.data.splits import assign_splits, deduplicate, set_label_state


def _frame(n_prompts=40, per_prompt=3):
    recs = [{"prompt": f"question {q}", "chosen": f"good {q}.{k}", "rejected": f"bad {q}.{k}"}
            for q in range(n_prompts) for k in range(per_prompt)]
    return records_to_pairs(list(enumerate(recs, 1)), where="mem", source="mem")[0]


def test_splits_grouped_deterministic_and_near_fractions():
    pairs = _frame()
    a = assign_splits(pairs, fractions={"train": 0.7, "gold": 0.15, "test": 0.15}, seed=1)
    b = assign_splits(pairs.sample(frac=1, random_state=3), fractions={"train": 0.7, "gold": 0.15, "test": 0.15}, seed=1)
    assert a.set_index("pair_id")["split"].to_dict() == b.set_index("pair_id")["split"].to_dict()  # row order irrelevant
    assert a.groupby(a["prompt"].map(str))["split"].nunique().max() == 1
    counts = a["split"].value_counts()
    assert abs(counts["train"] - 84) <= 3 and abs(counts["gold"] - 18) <= 3 and abs(counts["test"] - 18) <= 3
    c = assign_splits(pairs, fractions={"train": 0.7, "gold": 0.15, "test": 0.15}, seed=2)
    assert (c["split"] != a["split"]).any()


def test_split_fraction_errors():
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(_frame(), fractions={"train": 0.5, "test": 0.2})
    with pytest.raises(ValueError, match="Unknown split names"):
        assign_splits(_frame(), fractions={"train": 0.5, "valid": 0.5})


def test_dedup_counts_repeats_and_conflicts():
    pairs = _frame(3, 1)
    flipped = pairs.iloc[[0]].assign(chosen=pairs["rejected"].iloc[0], rejected=pairs["chosen"].iloc[0])
    both = pd.concat([pairs, pairs.iloc[[1]], flipped], ignore_index=True)
    out, rep = deduplicate(both)
    assert len(out) == 3 and out["chosen"].iloc[0] == pairs["chosen"].iloc[0]  # first occurrence wins
    assert (rep.n_exact_duplicates, rep.n_label_conflicts, rep.conflict_ids) == (1, 1, (pairs["pair_id"].iloc[0],))


def test_set_label_state_flip_keeps_id_and_records_provenance():
    pairs = _frame(2, 1)
    pid = pairs["pair_id"].iloc[0]
    out = set_label_state(pairs, [pid], "flipped", by="reviewer:ana", at="2026-01-01T00:00:00+00:00")
    row = out.set_index("pair_id").loc[pid]
    assert (row["chosen"], row["rejected"]) == ("bad 0.0", "good 0.0")
    assert (row["label_state"], row["label_by"], row["label_at"]) == ("flipped", "reviewer:ana", "2026-01-01T00:00:00+00:00")
    assert out.set_index("pair_id").loc[pairs["pair_id"].iloc[1], "label_state"] == "original"
    dropped = set_label_state(out, [pid], "dropped", by="rule")
    assert len(dropped) == 2  # dropped pairs stay, marked
    with pytest.raises(ValueError, match="Unknown label state"):
        set_label_state(pairs, [pid], "deleted", by="x")
    with pytest.raises(ValueError, match="not in the frame"):
        set_label_state(pairs, ["nope"], "verified", by="x")
