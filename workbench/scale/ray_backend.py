"""The sharded curation stages as a Ray Data pipeline (``ScaleConfig(backend="ray")``).

``map_batches`` runs over the list of parquet shards with an actor pool: each actor builds one
`workbench.scale.shards.ShardWorker` (the two reward models, the embedder, the tagger: an LLM tagger's own
request concurrency then multiplies by the number of actors) and curates one shard per call, writing the
same per-shard files as the local backend. Outputs are therefore identical, resume works the same way
(finished shards are skipped) and a failed actor only loses its shard in flight.

Ray is an optional extra: ``pip install -e ".[scale]"``. With ``ray_address=""`` a local Ray is started
on this machine (no network); ``"auto"`` joins the cluster this machine belongs to; ``"ray://head:10001"``
connects a client. On a cluster, ``pool_dir`` and ``out_dir`` must be on storage every node sees (NFS, a
mounted bucket).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.scale.shards import ScaleConfig, ShardWorker


def require_ray() -> Any:
    try:
        import ray
    except ImportError as e:  # the extra is optional
        raise ImportError('backend="ray" needs Ray: pip install -e ".[scale]" (or pip install "ray[data]").') from e
    return ray


class _ShardActor:
    """One Ray actor: models loaded once in ``__init__``, one shard per batch row."""

    def __init__(self, cfg: ScaleConfig, out_dir: str, key: str, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.worker = ShardWorker(cfg, Path(out_dir), key)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        import json

        summaries = [self.worker.process(shard) for shard in batch["shard"]]
        return {"shard": [s["shard"] for s in summaries], "summary": [json.dumps(s) for s in summaries]}


def ensure_ray(cfg: ScaleConfig) -> bool:
    """Start or join Ray as ``cfg.ray_address`` says; True when this call started it (so it shuts it down)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    if cfg.ray_address:
        ray.init(address=cfg.ray_address, log_to_driver=False)
    else:
        ray.init(num_cpus=cfg.workers, include_dashboard=False, log_to_driver=False,
                 object_store_memory=256 * 1024 ** 2)  # only shard paths and summaries travel through Ray
    return True


def curate_on_ray(shards: Sequence[Path], out_dir: Path, cfg: ScaleConfig, key: str) -> list[dict[str, Any]]:
    """Run `ShardWorker.process` on every shard with ``cfg.workers`` Ray actors; one summary per shard."""
    import json

    ray = require_ray()
    started = ensure_ray(cfg)
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", cfg.workers)) // cfg.workers)
        dataset = ray.data.from_items([{"shard": str(s)} for s in shards])
        rows = dataset.map_batches(
            _ShardActor, fn_constructor_kwargs={"cfg": cfg, "out_dir": str(out_dir), "key": key, "threads": cpus},
            batch_size=1, num_cpus=cpus, compute=ray.data.ActorPoolStrategy(size=cfg.workers)).take_all()
    finally:
        if started:
            ray.shutdown()
    return [json.loads(r["summary"]) for r in rows]
