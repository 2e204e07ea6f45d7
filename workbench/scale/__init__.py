"""Curation of pools too large for memory, one parquet shard at a time, locally or on Ray.

`shards` (the shard format and the per-shard worker) < `index` (retrieval over the shards' vectors) and
`ray_backend` (the same worker as Ray actors) < `pool` (run a whole pool, read it back, map it). The names below
are the public API: ``from workbench import scale; scale.curate_pool(...)``.
"""

from workbench.scale.index import (
                                   IndexConfig,
                                   ShardedExactSearch,
                                   ShardedIndex,
                                   ShardedVectors,
                                   build_index,
                                   compare_with_exact,
                                   retrieve_at_scale,
)
from workbench.scale.pool import (
                                   curate_pool,
                                   decision_summary,
                                   error_map_frame,
                                   map_sample,
                                   map_whole_pool,
                                   scale_metrics,
                                   train_pool_rms,
                                   write_training_set,
)
from workbench.scale.shards import SCALE_EMBEDDER, ScaleConfig, ShardWorker, list_shards, read_curated, shard_pair_file

__all__ = ["SCALE_EMBEDDER", "IndexConfig", "ScaleConfig", "ShardWorker", "ShardedExactSearch", "ShardedIndex",
           "ShardedVectors", "build_index", "compare_with_exact", "curate_pool", "decision_summary",
           "error_map_frame", "list_shards", "map_sample", "map_whole_pool", "read_curated", "retrieve_at_scale",
           "scale_metrics", "shard_pair_file", "train_pool_rms", "write_training_set"]
