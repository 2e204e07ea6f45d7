"""RM Curation Workbench: preference-data curation and reward-model training (Skywork-Reward-V2 style).

The folders are the architecture; each imports only from the ones below it (import-linter checks this in
``make test``):

    cli                 the `workbench` command
    scale               pools too large for memory: shards, a vector index, Ray
    curation | bench    tagging, error clusters, retrieval, review, Stage 1/2, the pipeline, the experiment |
                        benchmark data, upstream scoring rules, evaluation, benchmark plots
    models | llm        device, scoring, training, fast RM, embedders, Unsloth | chat client, JSON output, judge
    runs                a run folder's typed artifacts and stores, the notebook runner, report, export
    data                pair schema, readers, splits, demo and synthetic data, fetching the public data
"""

from workbench.data.demo import DemoDataConfig, build_demo_pairs
from workbench.data.files import load_pairs, read_pairs, write_pairs
from workbench.data.pairs import PairError, ReadReport
from workbench.data.schema import PAIR_COLUMNS, make_pair_id
from workbench.data.splits import assign_splits, deduplicate, set_label_state
from workbench.runs.folder import Run, start_run

__version__ = "0.1.0"
__all__ = [
    "PAIR_COLUMNS", "DemoDataConfig", "PairError", "ReadReport", "Run", "assign_splits", "build_demo_pairs",
    "deduplicate", "load_pairs", "make_pair_id", "read_pairs", "set_label_state", "start_run", "write_pairs",
]
