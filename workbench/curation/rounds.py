"""A run's next review round for people, outside a notebook: the queue notebook 04b would show, routed.

`next_round` reads the run (pairs, tags, the Stage-1 pool, notebook 03's error clusters), computes the next queue
(`workbench.curation.stage1.next_queue`: the seed round until it is labelled, then one train -> retrieve round on
everything in the review log) less the pairs labelled since, routes it (`workbench.curation.routing`) and, when a
judge is given, has the judge label the pairs routed to it (``llm``) or to it and people (``both``, whose people then
see its answer); without a judge, people get the ``llm`` pairs too. What is left for people is what
`workbench.curation.label_studio` pushes; their answers, pulled into the log, make the next call start the next round.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from workbench.curation import pipeline
from workbench.curation.review import ReviewStore
from workbench.curation.routing import RoutedReview, route_pairs, with_suggestions
from workbench.curation.stage1 import SimulationConfig, Stage1Config, Stage1Data, next_queue, simulated_pool
from workbench.data.files import write_frame
from workbench.runs.folder import Run
from workbench.runs.stores import EmbeddingCache


def next_round(run: Run, cfg: Stage1Config, *, embedder: str = "", judge: Any = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(queue with ``route``, info) of the run's next round; info adds ``routes`` (pairs per route), ``llm_to_people``
    (pairs routed ``llm`` given to people for want of a judge) and, per pair routed ``both`` that the judge
    answered, its answer in ``suggestions``. Saves the queue in the run as
    ``label_studio/round_<n>_queue.parquet``.

    Example: ``queue, info = next_round(start_run("runs/demo"), Stage1Config(routing=RoutingConfig()))``.
    """
    pairs, tags = run.load("pairs"), run.load("tags", default=None)
    pool = run.load("stage1_pool", default=None)
    if pool is None:  # the pool exactly as the data gave it: no simulated noise when people review
        pool = simulated_pool(pairs.query("split == 'train'").reset_index(drop=True), SimulationConfig(0.0), seed=cfg.seed)
        run.save("stage1_pool", pool)
    embed = pipeline.pair_embedder(tags, cache=EmbeddingCache(run, f"pairs-{embedder or 'minilm'}"),
                                   cfg=pipeline.CurationConfig(embedder=embedder))
    data = Stage1Data.from_run_artifacts(pairs, pool, tags, embed, error_map=run.load("error_map", default=None),
                                         selection=run.load("error_cluster_selection", default={"pair_ids": []}))
    with ReviewStore(run.file("review.sqlite")) as store:
        queue, info = next_queue(data, store, cfg, output_dir=run.path / "models" / "stage1_interactive",
                                 cache=EmbeddingCache(run, "minilm"))
        # a round asked again (partly answered, or with pairs over a budget) offers what is still unlabelled
        queue = queue[~queue["pair_id"].isin(set(store.labels()["pair_id"]))].reset_index(drop=True)
        queue = route_pairs(queue, cfg.routing) if cfg.routing else queue.assign(route="people", route_rule="no routing")
        to_llm = queue["route"] == "llm"
        if judge is None:  # nobody else to answer them, and an unanswered seed round would never end
            queue.loc[to_llm, "route"] = "people"
        elif cfg.routing:
            RoutedReview(cfg.routing, judge=judge).review(queue, store, iteration=info["round"])
        shown = with_suggestions(pd.DataFrame(index=pd.Index(queue["pair_id"])), store, queue)
    info = {**info, "routes": queue["route"].value_counts().to_dict(), "llm_to_people": int(to_llm.sum()) if judge is None else 0,
            "suggestions": {k: v for k, v in shown["judge_suggestion"].items() if v}}
    write_frame(queue, run.file("label_studio", f"round_{info['round']}_queue.parquet"))
    return queue, info
