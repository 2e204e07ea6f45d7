"""RM Curation Workbench: preference-data curation and reward-model training (Skywork-Reward-V2 style).

Modules, one per pipeline stage: `schema` (pair columns, ids), `pairs` (format parsing and
validation), `io` (all disk access, runs, figures), `splits` (dedup, grouped splits, label states),
`demo_data` (the bundled demo build), `overview` (descriptive numbers), `plots` (figures),
`scoring` (reward-model scores), `training` (BT reward models), `fast_rm` (embedding-head RM),
`embedding` (cached sentence embeddings), `unsloth_backend` (CUDA only), `runner` / `report` / `cli`
(papermill orchestration). Heavy modules (torch, transformers) are imported only when used.
"""

from workbench.demo_data import DemoDataConfig, build_demo_pairs
from workbench.io import load_pairs, read_pairs, start_run, write_pairs
from workbench.pairs import PairError, ReadReport
from workbench.schema import PAIR_COLUMNS, make_pair_id
from workbench.splits import assign_splits, deduplicate, set_label_state

__version__ = "0.1.0"
__all__ = [
    "PAIR_COLUMNS", "DemoDataConfig", "PairError", "ReadReport", "assign_splits", "build_demo_pairs",
    "deduplicate", "load_pairs", "make_pair_id", "read_pairs", "set_label_state", "start_run", "write_pairs",
]
