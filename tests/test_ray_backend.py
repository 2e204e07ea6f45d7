"""Issue #9: the Ray Data backend on a local Ray started by the test (no network) gives the local backend's outputs."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from workbench import scale
from workbench.curation.stage2 import Stage2Config
from workbench.data.synthetic import SyntheticConfig, hh_profile, synthetic_shard, write_synthetic_pool

ray = pytest.importorskip("ray", reason='the Ray extra is not installed (pip install -e ".[scale]")')


def test_ray_backend_writes_the_same_outputs_as_the_local_backend(tmp_path, shared_data):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    profile = hh_profile(shared_data)
    write_synthetic_pool(tmp_path / "pool", SyntheticConfig(n_pairs=900, shard_size=300, n_topics=10, seed=5),
                         profile=profile, progress=False)
    train = synthetic_shard(profile, SyntheticConfig(n_pairs=400, shard_size=400, n_topics=10, seed=6), 0)
    train["split"] = np.where(np.arange(len(train)) % 2 == 0, "gold", "train")
    # RMs on the default embedder (minilm-static), the map on hashing: each embedder keeps its own shard cache
    stage1, gold = scale.train_pool_rms(train, tmp_path / "rms", epochs=2, progress=False)
    local = scale.ScaleConfig.from_params(stage1_rm=str(stage1), gold_rm=str(gold), embedder="hashing",
                              stage2=Stage2Config(margin_band=0.02))
    on_ray = replace(local, backend="ray", workers=2)
    a = scale.curate_pool(tmp_path / "pool", tmp_path / "local", local, progress=False)
    b = scale.curate_pool(tmp_path / "pool", tmp_path / "ray", on_ray, progress=False)
    assert not ray.is_initialized()  # the backend shut down the Ray it started
    cols = ["shard", "pairs", "keep", "flip", "drop"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    for name in ("shard-00000", "shard-00001", "shard-00002"):
        for sub in ("tags", "curated"):
            x = pd.read_parquet(tmp_path / "local" / sub / f"{name}.parquet")
            y = pd.read_parquet(tmp_path / "ray" / sub / f"{name}.parquet")
            if sub == "curated":  # label_at is the time the decision was applied
                assert (x["label_at"] != "").all()
                x, y = x.drop(columns="label_at"), y.drop(columns="label_at")
            pd.testing.assert_frame_equal(x, y, check_exact=True)
        assert np.array_equal(np.load(tmp_path / "local" / "vectors" / f"{name}.npy"),
                              np.load(tmp_path / "ray" / "vectors" / f"{name}.npy"))
    # Resume on Ray: finished shards are not redone.
    again = scale.curate_pool(tmp_path / "pool", tmp_path / "ray", on_ray, progress=False)
    pd.testing.assert_frame_equal(again, b)


def test_a_missing_ray_is_a_clear_error(monkeypatch):
    import builtins

    from workbench.scale import ray_backend

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ImportError, match=r'pip install -e ".\[scale\]"'):
        ray_backend.require_ray()
