"""The demo build from the real shared data."""

import numpy as np
import pytest

from workbench.data import demo as demo_data
from workbench.data.demo import DemoDataConfig, build_demo_pairs, truncate_mid_sentence


@pytest.fixture(scope="module")
def small_build(shared_data):
    return build_demo_pairs(shared_data, DemoDataConfig(n_hh_helpful=120, n_hh_harmless=100, n_cross_prompt=80, n_truncated=80))


def test_demo_composition_and_truth(small_build):
    pairs = small_build.pairs
    assert pairs.groupby("construction").size().to_dict() == {"cross_prompt": 80, "hh_human": 220, "truncated": 80}
    assert pairs["pair_id"].is_unique
    known = pairs[pairs["label_known_true"]]
    assert set(known["construction"]) == {"cross_prompt", "truncated"}
    trunc = pairs[pairs["construction"] == "truncated"]
    assert all(c.startswith(r) and len(r) < len(c) for c, r in zip(trunc["chosen"], trunc["rejected"]))
    cross = pairs[pairs["construction"] == "cross_prompt"]
    lengths = np.array([[len(c.split()), len(r.split())] for c, r in zip(cross["chosen"], cross["rejected"])])
    assert np.median(np.abs(lengths[:, 0] - lengths[:, 1]) / lengths.max(axis=1)) < 0.2  # length-matched donors


def test_demo_no_prompt_or_text_crosses_splits(small_build):
    pairs = small_build.pairs
    assert pairs.groupby(pairs["prompt"].map(str))["split"].nunique().max() == 1
    split_of_text = {}
    for row in pairs.itertuples():
        for text in (row.chosen, row.rejected):
            split_of_text.setdefault(text, set()).add(row.split)
    assert max(len(s) for s in split_of_text.values()) == 1


def test_demo_is_deterministic(shared_data, small_build):
    again = build_demo_pairs(shared_data, DemoDataConfig(n_hh_helpful=120, n_hh_harmless=100, n_cross_prompt=80, n_truncated=80))
    assert again.pairs[["pair_id", "split"]].equals(small_build.pairs[["pair_id", "split"]])
    other = build_demo_pairs(shared_data, DemoDataConfig(n_hh_helpful=120, n_hh_harmless=100, n_cross_prompt=80, n_truncated=80, seed=1))
    assert set(other.pairs["pair_id"]) != set(small_build.pairs["pair_id"])


def test_demo_missing_data_dir_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="Shared data not found"):
        build_demo_pairs(tmp_path / "missing")


def test_config_validation_and_smoke():
    with pytest.raises(ValueError, match="fractions must sum to 1"):
        DemoDataConfig(train_fraction=0.9)
    with pytest.raises(ValueError, match="n_truncated must be >= 0"):
        DemoDataConfig(n_truncated=-1)
    assert demo_data.demo_config(smoke=True).n_hh_helpful == demo_data.SMOKE_SIZES["n_hh_helpful"]


def test_truncate_keeps_formatting():
    assert truncate_mid_sentence("one two\n\n- three, four five.", 0.6) == "one two\n\n- three"
