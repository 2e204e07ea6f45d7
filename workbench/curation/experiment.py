"""Does curation beat the data people already have? The paper's ablation at small scale, against a known truth,
with baselines that get the same information.

Pairs whose true label is known are built from real HH-RLHF conversations (`workbench.data.demo`): a response
vs one written for another conversation (``cross_prompt``), a complete vs a truncated response (``truncated``:
longer wins) and a complete response vs the same one followed by an off-topic paragraph (``padded``: longer
loses), in equal numbers in every split, so "the longer response wins" scores about 0.5 on the test split. Label
noise is injected into the pool by a noise model (`workbench.data.noise`: ``length``, a verbosity-biased
annotator, ``cluster``, a bad annotator batch on a few topics, or ``symmetric``), and the simulated people who
review answer wrongly at ``oracle_error_rate``.

Every condition below is trained with the same fast RM, the same seeds and under both schedules (``fixed``:
``head_epochs`` epochs, gold added to the training set; ``best on gold``: the epoch best on the gold split, which
is then not trained on), and every human-informed condition gets the same human labels, the gold split plus one
review budget:

* ``raw noisy`` (no human labels: the floor; under ``best on gold`` it is "raw with best-epoch selection");
* ``raw + human labels``: the Stage-1-reviewed pairs corrected (dropped ones removed), gold added;
* ``gold only``;
* ``random review``: the same budget spent on uniformly random pool pairs, then the same Stage 2;
* ``cleanlab``: out-of-fold RM probabilities (k folds over the pool, human corrections applied) fed to
  `cleanlab.filter.find_label_issues` on a pairwise -> binary framing with random order; flagged pairs dropped;
* ``curated`` (error-driven Stage 1 + Stage 2, `workbench.curation.pipeline`) and ``curated + recycled``;
* ``curated, disagreement queue``: the design change tried when retrieval alone does not find the noise: the same
  retrieval, but each round's budget goes to the retrieved pairs the round's RM disagrees with most
  (``Stage1Config.rank_by="disagreement"``), then the same Stage 2;
* ``clean (ceiling)``: the pool with its true labels.

Also, cheaply (no RM is trained for it): **routing** (`workbench.curation.routing`) against sending every reviewed
pair to people or to an LLM judge, on one review budget of pool pairs, with simulated people who err more on
objective tasks (facts, maths, code) and a simulated judge who errs more on subjective and controversial ones.

Reported: per condition the mean test accuracy and its 95% CI over seeds, the paired difference of the pipeline
conditions to the strongest baseline with its CI, *longer wins* beside every number, retrieval enrichment (the
noise share of each Stage-1 queue vs the pool vs a random queue of the same size), flip detection of Stage 2 and
cleanlab, and test accuracy per construction.

Entry points: `run_experiment`, notebook ``08_curation_experiment`` and ``workbench experiment``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from workbench.curation import pipeline, plots, stage1, stage2
from workbench.curation.review import OracleReviewer, ReviewStore, apply_labels, review_with
from workbench.curation.routing import RoutingConfig, compare_routing
from workbench.data.demo import DemoDataConfig, build_demo_pairs
from workbench.data.noise import NOISE_MODELS, NoiseConfig, inject_noise, noise_profile
from workbench.data.overview import length_bias
from workbench.data.schema import PairFrame
from workbench.models import scoring, training
from workbench.runs.folder import Run, start_run
from workbench.runs.stores import EmbeddingCache, ResultStore

CONDITIONS = ("raw noisy", "raw + human labels", "gold only", "random review", "cleanlab", "curated",
              "curated + recycled", "curated, disagreement queue", "clean (ceiling)")
BASELINES = ("raw noisy", "raw + human labels", "gold only", "random review", "cleanlab")
PIPELINE = ("curated", "curated + recycled", "curated, disagreement queue")
SCHEDULES = ("fixed", "best on gold")
SAME_REVIEW = ("raw + human labels", "cleanlab", "curated", "curated + recycled")  # Stage 1's reviewed pairs + gold
SAME_BUDGET = ("random review", "curated, disagreement queue")  # the same number of reviews, on other pairs
FINETUNED = ("raw + human labels", "cleanlab", "curated")  # the fine-tuned MiniLM check (one noise model, one seed)


@dataclass(frozen=True)
class ExperimentConfig:
    """The experiment's data, noise, people, budget, baselines and seeds."""

    noise_models: tuple[str, ...] = ("length", "cluster", "symmetric")  # the first is the headline
    noise_rate: float = 0.2  # share of pool labels flipped (seeded per seed)
    noise_concentration: float = 0.8  # length / cluster: share of the flips on the targeted pairs
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    n_cross_prompt: int = 300  # known-truth pairs of each construction, built from HH-RLHF conversations
    n_truncated: int = 300
    n_padded: int = 300
    gold_fraction: float = 0.15  # the gold split's share (test: 0.15, the pool the rest)
    seed_size: int = 60  # human labels in Stage-1 round 0
    labels_per_iteration: int = 40  # human labels per retrieval round
    iterations: int = 3  # -> 60 + 3 * 40 = 180 human labels (the review budget)
    oracle_error_rate: float = 0.1  # the simulated people's own error rate
    judge_error_rate: float = -1.0  # >= 0: a *simulated* LLM judge with this error rate labels Stage 2's unsure pairs
    p_threshold: float = 0.5
    margin_band: float = 0.0
    head_epochs: int = 30
    cleanlab_folds: int = 5
    cluster_groups: int = 8  # cluster noise: k-means clusters of the (conversation, attributes) embeddings
    min_clean_accuracy: float = 0.6  # the clean-label RM must reach this on the test split
    data_seed: int = 0  # the pairs (the same for every seed)
    # The routing table: the paper's principle (objective tasks to the judge, subjective or controversial ones to
    # people), on simulated reviewers whose error rates differ by task category; categories not named err at the rate.
    routing: tuple[str, ...] = ("controversiality == high -> people", "objectivity == subjective -> people",
                                "objectivity == objective -> llm", "* -> people")
    routing_people_errors: tuple[tuple[str, float], ...] = (("knowledge_qa", 0.25), ("reasoning_math", 0.3),
                                                           ("coding", 0.3))  # people unsure of facts, maths, code
    routing_judge_error_rate: float = 0.05
    routing_judge_errors: tuple[tuple[str, float], ...] = (("chat", 0.3), ("creative_writing", 0.3), ("role_play", 0.3),
                                                          ("safety", 0.35), ("other", 0.25))  # a judge unsure of values

    def __post_init__(self) -> None:
        for model in self.noise_models:
            NoiseConfig(model=model, rate=self.noise_rate, concentration=self.noise_concentration)  # validates
        if not self.noise_models:
            raise ValueError(f"noise_models is empty; give at least one of {list(NOISE_MODELS)}.")
        if not self.seeds:
            raise ValueError("seeds is empty; give at least one seed (five for confidence intervals).")
        if self.seed_size < 1:
            raise ValueError(f"seed_size must be >= 1, got {self.seed_size}.")
        if not 0.0 < self.gold_fraction < 0.85:
            raise ValueError(f"gold_fraction must be in (0, 0.85), got {self.gold_fraction}.")
        if self.cleanlab_folds < 2:
            raise ValueError(f"cleanlab_folds must be >= 2, got {self.cleanlab_folds}.")
        stage1.Stage1Config(iterations=self.iterations, seed_size=self.seed_size, labels_per_iteration=self.labels_per_iteration)
        stage2.Stage2Config(p_threshold=self.p_threshold, margin_band=self.margin_band)
        RoutingConfig(rules=self.routing, where="ExperimentConfig.routing")
        for name, rates in (("routing_people_errors", self.routing_people_errors), ("routing_judge_errors", self.routing_judge_errors)):
            OracleReviewer(name=f"ExperimentConfig.{name}", error_rate=self.routing_judge_error_rate, error_by_category=dict(rates))

    @property
    def human_budget(self) -> int:
        return self.seed_size + self.iterations * self.labels_per_iteration

    def noise(self, model: str) -> NoiseConfig:
        return NoiseConfig(model=model, rate=self.noise_rate, concentration=self.noise_concentration)

    def curation_for(self, seed: int) -> pipeline.CurationConfig:
        """The chain's config for one run: Stage 1 spends the review budget, Stage 2 uses the experiment's thresholds,
        a simulated judge when ``judge_error_rate >= 0``."""
        s1 = stage1.Stage1Config(iterations=self.iterations, seed_size=self.seed_size,
                                 labels_per_iteration=self.labels_per_iteration, head_epochs=self.head_epochs, seed=seed)
        s2 = stage2.Stage2Config(p_threshold=self.p_threshold, margin_band=self.margin_band,
                                 head_epochs=self.head_epochs, seed=seed)
        judge = pipeline.JudgeSetup(kind="simulated", error_rate=self.judge_error_rate) if self.judge_error_rate >= 0 \
            else pipeline.JudgeSetup()
        return pipeline.CurationConfig(stage1=s1, stage2=s2, judge=judge)


@dataclass
class ExperimentData:
    """Pairs with a known truth, their tags, (conversation, attributes) embeddings and topic clusters: built once."""

    pairs: PairFrame
    tags: pd.DataFrame
    emb: np.ndarray  # rows aligned with ``pairs``
    groups: np.ndarray  # topic cluster per pair (cluster noise)

    def split(self, name: str) -> tuple[PairFrame, np.ndarray]:
        mask = (self.pairs["split"] == name).to_numpy()
        return self.pairs[mask].reset_index(drop=True), self.emb[mask]

    def pool_groups(self) -> np.ndarray:
        return self.groups[(self.pairs["split"] == "train").to_numpy()]


@dataclass
class ExperimentResult:
    per_seed: pd.DataFrame  # one row per (noise, seed, schedule, condition): test accuracy (all and per construction)
    summary: pd.DataFrame  # per (noise, schedule, condition): mean, 95% CI over seeds, longer-wins, human labels
    paired: pd.DataFrame  # per (noise, schedule): pipeline condition minus the strongest baseline, paired CI
    detection: pd.DataFrame  # per (noise, seed): flip detection of Stage 2 and of cleanlab, noise profile
    enrichment: pd.DataFrame  # per (noise, seed, round): noise share of the Stage-1 queue, the pool, a random queue
    clean_check: dict[str, float]
    finetuned: pd.DataFrame = field(default_factory=pd.DataFrame)  # MiniLM fine-tuned on a few conditions (optional)
    routing: pd.DataFrame = field(default_factory=pd.DataFrame)  # per (noise, seed, policy): routed vs one reviewer
    config: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- data


def experiment_pairs(cfg: ExperimentConfig, data_dir: str | None = None) -> PairFrame:
    """The known-truth pairs: three constructions in equal numbers, the same mix in every split."""
    demo = DemoDataConfig(n_hh_helpful=0, n_hh_harmless=0, n_cross_prompt=cfg.n_cross_prompt, n_truncated=cfg.n_truncated,
                          n_padded=cfg.n_padded, seed=cfg.data_seed, stratify_splits=True,
                          train_fraction=round(0.85 - cfg.gold_fraction, 6), gold_fraction=cfg.gold_fraction, test_fraction=0.15)
    return build_demo_pairs(data_dir, demo).pairs


def topic_groups(emb: np.ndarray, k: int, seed: int = 0, *, n_init: int = 4) -> np.ndarray:
    """k-means topics of the pair embeddings: the units a bad annotator batch covers (cluster noise)."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=min(k, len(emb)), n_init=n_init, random_state=seed).fit_predict(np.asarray(emb, np.float32))


def prepare_data(cfg: ExperimentConfig, run: Run, *, data_dir: str | None = None, pairs: PairFrame | None = None,
                 progress: bool = True) -> ExperimentData:
    """Build (or take) the known-truth pairs, tag and embed them (cached in ``run``), and find their topics."""
    pairs = experiment_pairs(cfg, data_dir) if pairs is None else pairs
    if "label_known_true" in pairs.columns and not pairs["label_known_true"].astype(bool).all():
        raise ValueError("the experiment needs pairs whose label is known to be true (label_known_true); "
                         f"{int((~pairs['label_known_true'].astype(bool)).sum())} are not.")
    pairs = pairs.reset_index(drop=True)
    curation = pipeline.CurationConfig()
    tagger = pipeline.make_tagger_for(curation, cache=EmbeddingCache(run, "minilm"))
    tags = pipeline.tag(pairs, tagger, store=ResultStore(run.file("tags.sqlite"), "tags"), cfg=curation, progress=progress)
    emb = pipeline.embed(pairs, tags, cache=EmbeddingCache(run, "pairs-minilm"), cfg=curation, progress=progress)
    return ExperimentData(pairs=pairs, tags=tags, emb=emb, groups=topic_groups(emb, cfg.cluster_groups, cfg.data_seed))


# ---------------------------------------------------------------- training and testing


def _train(train: PairFrame, gold: PairFrame, schedule: str, out: Path, cfg: ExperimentConfig, seed: int,
           cache: Any) -> Any:
    """A condition's RM. ``fixed``: gold joins the training set, ``head_epochs`` epochs. ``best on gold``: the gold
    split picks the epoch and is not trained on. (``gold only`` trains on gold under both.)"""
    if schedule == "fixed":
        return training.fast_head_rm(train, None, output_dir=out, cache=cache, epochs=cfg.head_epochs, seed=seed)[0]
    return training.fast_head_rm(train, gold, output_dir=out, cache=cache, epochs=cfg.head_epochs, seed=seed)[0]


def test_accuracy(rm: Any, test: PairFrame) -> dict[str, float]:
    """Share of test pairs the RM orders right (a tie counts as wrong), overall and per construction."""
    right = stage2.p_of(rm, test) > 0.5
    out = {"test_accuracy": float(right.mean())}
    if "construction" in test.columns:
        out.update({f"test_accuracy/{c}": float(right[(test["construction"] == c).to_numpy()].mean())
                    for c in sorted(test["construction"].unique())})
    return out


def clean_check(data: ExperimentData, cfg: ExperimentConfig, run: Run) -> dict[str, float]:
    """A clean-label RM on the pool, tested on the test split; raises when it does not clearly beat chance."""
    (pool, _), (gold, _), (test, _) = data.split("train"), data.split("gold"), data.split("test")
    rm = _train(pool, gold, "best on gold", run.file("experiment", "clean_check"), cfg, cfg.seeds[0],
                EmbeddingCache(run, "minilm"))
    acc = test_accuracy(rm, test)["test_accuracy"]
    out = {"clean_test_accuracy": acc, "test_pairs": len(test), "chance": 0.5, "test_longer_wins": length_bias(test)}
    if acc < cfg.min_clean_accuracy:
        raise ValueError(f"a clean-label RM reaches only {acc:.3f} on the test split (< min_clean_accuracy="
                         f"{cfg.min_clean_accuracy}): the truth is not learnable by this RM, so injected noise and its "
                         "curation cannot be measured. Use pairs with a learnable truth or a stronger RM.")
    return out


# ---------------------------------------------------------------- the baselines


def human_corrected(noisy: PairFrame, labelled: PairFrame) -> PairFrame:
    """The pool with the reviewed pairs' labels applied and the pairs people dropped removed."""
    reviewed = labelled.set_index("pair_id")
    out = noisy.set_index("pair_id")
    decided = reviewed.index[reviewed["review_decision"].isin(["keep", "flip"])]
    out.loc[decided, reviewed.columns.intersection(out.columns)] = reviewed.loc[decided, reviewed.columns.intersection(out.columns)]
    dropped = reviewed.index[reviewed["review_decision"] == "drop"]
    return out.drop(index=dropped).reset_index()


def random_review(noisy: PairFrame, budget: int, reviewer: Any, store: ReviewStore, seed: int) -> PairFrame:
    """``budget`` uniformly random pool pairs reviewed by ``reviewer``; returns them with their labels applied."""
    pick = noisy.iloc[np.sort(np.random.default_rng(seed + 31).permutation(len(noisy))[:budget])]
    review_with(reviewer, pick, store, iteration=0)
    labels = store.labels()
    return apply_labels(pick[pick["pair_id"].isin(set(labels["pair_id"]))], labels)


def cleanlab_flags(pool: PairFrame, gold: PairFrame, reviewed_ids: set[str], cfg: ExperimentConfig, seed: int,
                   out: Path, cache: Any) -> np.ndarray:
    """Confident learning on the pool: out-of-fold ``p`` from fast RMs (k folds; each trained on the other folds and
    gold), framed as a binary task with a random order per pair (label 1 = the first shown is preferred), fed to
    `cleanlab.filter.find_label_issues`. Human-reviewed pairs are never flagged. Returns a mask over ``pool``."""
    from cleanlab.filter import find_label_issues

    rng = np.random.default_rng(seed + 53)
    fold = rng.permutation(len(pool)) % cfg.cleanlab_folds
    p = np.zeros(len(pool))
    for k in range(cfg.cleanlab_folds):
        train = pd.concat([pool[fold != k], gold], ignore_index=True)
        rm = training.fast_head_rm(train, None, output_dir=out / f"fold{k}", cache=cache, epochs=cfg.head_epochs,
                                   seed=seed)[0]
        p[fold == k] = stage2.p_of(rm, pool[fold == k])
    first_is_chosen = rng.random(len(pool)) < 0.5
    labels = first_is_chosen.astype(int)  # class 1: the first response shown is the preferred one
    p_first = np.where(first_is_chosen, p, 1 - p)
    issues = find_label_issues(labels, np.column_stack([1 - p_first, p_first]), filter_by="prune_by_noise_rate")
    return np.asarray(issues, bool) & ~pool["pair_id"].isin(reviewed_ids).to_numpy()


def detection(flagged: np.ndarray, noisy: np.ndarray) -> dict[str, float]:
    """Precision / recall / F1 of flagged pairs against the injected flips."""
    tp = int((flagged & noisy).sum())
    prec, rec = tp / max(int(flagged.sum()), 1), tp / max(int(noisy.sum()), 1)
    return {"precision": prec, "recall": rec, "f1": 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec),
            "flagged": int(flagged.sum())}


def enrichment(result: stage1.Stage1Result, noisy: PairFrame, seed: int) -> list[dict[str, Any]]:
    """Per retrieval round: the noise share of its queue, of the pool not yet reviewed, and of a random queue of the
    same size drawn from that pool (the yardstick for error-driven retrieval)."""
    rng = np.random.default_rng(seed + 71)
    is_noisy = dict(zip(noisy["pair_id"], noisy["noise_injected"].astype(bool)))
    seen: set[str] = set()
    rows = []
    for it in sorted(result.queues):
        queue = result.queues[it]
        left = [pid for pid in noisy["pair_id"] if pid not in seen]
        if it > 0 and len(queue) and left:
            draw = rng.choice(len(left), size=min(len(queue), len(left)), replace=False)
            rows.append({"round": it, "queued": len(queue),
                         "queue_noise_share": float(np.mean([is_noisy[p] for p in queue["pair_id"]])),
                         "pool_noise_share": float(np.mean([is_noisy[p] for p in left])),
                         "random_queue_noise_share": float(np.mean([is_noisy[left[i]] for i in draw]))})
        seen |= set(queue["pair_id"])
    return rows


# ---------------------------------------------------------------- one run


def config_key(cfg: ExperimentConfig) -> str:
    """Short hash of everything that shapes a (noise, seed) run: a rerun with other settings in the same folder
    gets fresh review logs instead of resuming oracle answers given to differently-noised labels."""
    fields = {k: v for k, v in asdict(cfg).items() if k not in ("seeds", "noise_models")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]


def _reviewed(labelled: PairFrame) -> PairFrame:
    """The labelled pool pairs a reviewer decided (kept, flipped or dropped): what the review budget bought."""
    return labelled[labelled["review_decision"].isin(["keep", "flip", "drop"])]


def training_sets(data: ExperimentData, cfg: ExperimentConfig, run: Run, work: Path, noisy: PairFrame, seed: int,
                  ) -> tuple[dict[str, PairFrame], dict[str, set[str]], dict[str, Any]]:
    """Every condition's training pool (gold is added by the schedule), the human-labelled pair ids each saw, and
    the mechanism measurements (Stage 1 enrichment, Stage 2 and cleanlab detection)."""
    cache, pair_cache = EmbeddingCache(run, "minilm"), EmbeddingCache(run, "pairs-minilm")
    (pool, pool_emb), (gold, gold_emb) = data.split("train"), data.split("gold")
    curation = cfg.curation_for(seed)
    people = OracleReviewer(error_rate=cfg.oracle_error_rate, seed=seed)
    s1data = stage1.Stage1Data(pool=noisy, gold=gold, pool_emb=pool_emb, gold_emb=gold_emb, tags=data.tags)
    with ReviewStore(work / "review.sqlite") as store:
        s1 = stage1.run_stage1(s1data, store, people, curation.stage1, output_dir=work / "stage1", cache=cache,
                               progress=False)
    with ReviewStore(work / "review_disagreement.sqlite") as store:
        s1d = stage1.run_stage1(s1data, store, people, replace(curation.stage1, rank_by="disagreement"),
                                output_dir=work / "stage1_disagreement", cache=cache, progress=False)
    reviewed = _reviewed(s1.labelled)
    with ReviewStore(work / "review_random.sqlite") as store:
        randomly = random_review(noisy, len(reviewed), people, store, seed)
    stage1_rm = scoring.load_reward_model(s1.best_model_dir, embedding_cache=cache)
    random_rm = training.fast_head_rm(stage1.training_set(randomly), gold, output_dir=work / "random_stage1",
                                      cache=cache, epochs=cfg.head_epochs, seed=seed)[0]
    judge = pipeline.make_judge(curation.judge, seed=seed)
    chain = dict(cfg=curation, gold=gold, tags=data.tags, judge=judge, pair_cache=pair_cache, cache=cache)
    curated = pipeline.curate(noisy, stage1_rm=stage1_rm, human_labelled=s1.labelled, output_dir=work / "curated",
                              stage1_name="stage1-best", **chain).stage2.curated
    curated_random = pipeline.curate(noisy, stage1_rm=random_rm, human_labelled=randomly, output_dir=work / "random",
                                     stage1_name="random-review", **chain).stage2.curated
    disagree_rm = scoring.load_reward_model(s1d.best_model_dir, embedding_cache=cache)
    curated_disagree = pipeline.curate(noisy, stage1_rm=disagree_rm, human_labelled=s1d.labelled,
                                       output_dir=work / "disagreement", stage1_name="stage1-disagreement",
                                       **chain).stage2.curated
    corrected = human_corrected(noisy, s1.labelled)
    flags = cleanlab_flags(corrected, gold, set(reviewed["pair_id"]), cfg, seed, work / "cleanlab", cache)
    sets = {"raw noisy": noisy, "raw + human labels": corrected, "gold only": gold.iloc[:0],
            "random review": stage2.curated_training_set(curated_random), "cleanlab": corrected[~flags],
            "curated": stage2.curated_training_set(curated),
            "curated + recycled": stage2.curated_training_set(stage2.recycle_discarded(curated)),
            "curated, disagreement queue": stage2.curated_training_set(curated_disagree), "clean (ceiling)": pool}
    gold_ids, s1_ids = set(gold["pair_id"]), set(reviewed["pair_id"])
    seen = {c: gold_ids | s1_ids for c in SAME_REVIEW}
    seen.update({"raw noisy": set(), "gold only": gold_ids, "clean (ceiling)": gold_ids,
                 "random review": gold_ids | set(randomly["pair_id"]),
                 "curated, disagreement queue": gold_ids | set(_reviewed(s1d.labelled)["pair_id"])})
    # cleanlab's detection counts what people flipped or dropped in Stage 1 as well, as Stage 2's does
    changed = set(reviewed.loc[reviewed["review_decision"].isin(["flip", "drop"]), "pair_id"])
    flagged = noisy["pair_id"].isin(set(corrected.loc[flags, "pair_id"]) | changed).to_numpy()
    queues = [{"queue": "error-driven", **r} for r in enrichment(s1, noisy, seed)]
    queues += [{"queue": "disagreement", **r} for r in enrichment(s1d, noisy, seed)]
    mech = {"stage2": stage2.truth_metrics(curated), "enrichment": queues,
            "stage2_disagreement": stage2.truth_metrics(curated_disagree),
            "cleanlab": detection(flagged, noisy["noise_injected"].to_numpy(bool)),
            "reviewed": len(reviewed), "random_reviewed": len(randomly)}
    return sets, seen, mech


def finetune_check(sets: dict[str, PairFrame], gold: PairFrame, test: PairFrame, work: Path, seed: int
                   ) -> list[dict[str, Any]]:
    """The fast head carries the sweep; this checks it against a fine-tuned MiniLM RM (1 epoch, 256 tokens, the
    demo's recipe) on `FINETUNED` conditions, fixed schedule (gold added), one seed."""
    rows = []
    for name in FINETUNED:
        fit = pd.concat([sets[name], gold], ignore_index=True)
        rcfg = training.RMTrainConfig(kind="finetune", epochs=1.0, max_length=256, batch_size=16, learning_rate=5e-5,
                                      eval_steps=40, seed=seed)
        res = training.train_reward_model(fit, gold, cfg=rcfg, output_dir=work / "finetuned" / name.replace(" ", "_"),
                                          progress=False)
        rm = scoring.load_reward_model(res.model_dir)
        rows.append({"condition": name, "train_pairs": len(fit), "seconds": res.metrics.get("train_seconds"),
                     **test_accuracy(rm, test)})
    return rows


def routing_rows(data: ExperimentData, cfg: ExperimentConfig, noisy: PairFrame, work: Path, seed: int) -> pd.DataFrame:
    """Routing vs everything to people vs everything to the judge on ``human_budget`` random pool pairs (the same for
    the three policies), with the config's category-dependent simulated reviewers."""
    tag_cols = ["pair_id", *[c for c in ("task_category", "objectivity", "controversiality") if c in data.tags.columns]]
    pick = noisy.iloc[np.sort(np.random.default_rng(seed + 97).permutation(len(noisy))[:cfg.human_budget])]
    pick = pick.merge(data.tags[tag_cols], on="pair_id", how="left")
    people = OracleReviewer(error_rate=cfg.oracle_error_rate, seed=seed, error_by_category=dict(cfg.routing_people_errors))
    judge = OracleReviewer(name="simulated-llm-judge", kind="llm", error_rate=cfg.routing_judge_error_rate, seed=seed + 1000,
                           error_by_category=dict(cfg.routing_judge_errors))
    return compare_routing(pick, RoutingConfig(rules=cfg.routing), people=people, judge=judge, folder=work / "routing")


def run_once(data: ExperimentData, cfg: ExperimentConfig, run: Run, *, noise: str, seed: int, finetune: bool = False
             ) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], pd.DataFrame]:
    """One noise model at one seed: noise -> reviews -> every condition's RM under both schedules (and, with
    ``finetune``, the fine-tuned MiniLM check), and the routing comparison."""
    work = run.path / "experiment" / config_key(cfg) / f"{noise}_seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    (pool, _), (gold, _), (test, _) = data.split("train"), data.split("gold"), data.split("test")
    noisy = inject_noise(pool, cfg.noise(noise), seed=seed, groups=data.pool_groups())
    sets, seen, mech = training_sets(data, cfg, run, work, noisy, seed)
    cache, rows = EmbeddingCache(run, "minilm"), []
    for name in CONDITIONS:
        for schedule in SCHEDULES:
            train = gold if name == "gold only" else sets[name]
            add_gold = schedule == "fixed" and name not in ("gold only", "raw noisy")  # raw noisy: no human labels
            fit = pd.concat([train, gold], ignore_index=True) if add_gold else train
            slug = name.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "plus")
            rm = _train(fit.reset_index(drop=True), gold, schedule, work / "rm" / schedule.replace(" ", "_") / slug, cfg,
                        seed, cache)
            labels_true = fit["label_is_true"].astype(bool).mean() if "label_is_true" in fit else 1.0
            ids = seen[name] if (name != "raw noisy" or schedule == "fixed") else set(gold["pair_id"])
            rows.append({"noise": noise, "seed": seed, "schedule": schedule, "condition": name, "train_pairs": len(fit),
                         "train_label_accuracy": float(labels_true), "human_labels": len(ids),
                         "human_ids": hashlib.sha256("|".join(sorted(ids)).encode()).hexdigest()[:12],
                         **test_accuracy(rm, test)})
    det = {"noise": noise, "seed": seed, **noise_profile(noisy), "reviewed": mech["reviewed"],
           **{f"stage2_{k}": v for k, v in mech["stage2"].items()},
           **{f"stage2_disagreement_{k}": v for k, v in mech["stage2_disagreement"].items()},
           **{f"cleanlab_{k}": v for k, v in mech["cleanlab"].items()}}
    enr = [{"noise": noise, "seed": seed, **r} for r in mech["enrichment"]]
    tuned = [{"noise": noise, "seed": seed, **r} for r in finetune_check(sets, gold, test, work, seed)] if finetune else []
    routed = routing_rows(data, cfg, noisy, work, seed).assign(noise=noise, seed=seed)
    return rows, det, enr, tuned, routed


# ---------------------------------------------------------------- statistics


def mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (the interval is the mean itself with one seed)."""
    values = np.asarray(values, float)
    m = float(values.mean())
    if len(values) < 2:
        return m, m, m
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return m, m - half, m + half


def summarize(per_seed: pd.DataFrame, test_longer_wins: float) -> pd.DataFrame:
    """Per (noise, schedule, condition): mean test accuracy with its 95% CI over seeds, training size and label
    accuracy, the human labels seen, and *longer wins* on the same test split."""
    rows = []
    for (noise, schedule, cond), g in per_seed.groupby(["noise", "schedule", "condition"], sort=False):
        m, lo, hi = mean_ci(g["test_accuracy"].to_numpy())
        rows.append({"noise": noise, "schedule": schedule, "condition": cond, "test_accuracy_mean": m, "ci_low": lo,
                     "ci_high": hi, "seeds": g["seed"].nunique(), "train_pairs": g["train_pairs"].mean(),
                     "train_label_accuracy": g["train_label_accuracy"].mean(), "human_labels": g["human_labels"].mean(),
                     "test_longer_wins": test_longer_wins})
    return pd.DataFrame(rows)


def paired_vs_strongest(per_seed: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Per (noise, schedule): each pipeline condition minus the strongest baseline (highest mean), paired by seed,
    with a 95% t-interval of the difference."""
    rows = []
    for (noise, schedule), s in summary.groupby(["noise", "schedule"], sort=False):
        base = s[s["condition"].isin(BASELINES)].sort_values("test_accuracy_mean").iloc[-1]["condition"]
        at = per_seed[(per_seed["noise"] == noise) & (per_seed["schedule"] == schedule)]
        acc = at.pivot_table(index="seed", columns="condition", values="test_accuracy")
        for cond in PIPELINE:
            m, lo, hi = mean_ci((acc[cond] - acc[base]).to_numpy())
            rows.append({"noise": noise, "schedule": schedule, "condition": cond, "strongest_baseline": base,
                         "diff_mean": m, "ci_low": lo, "ci_high": hi, "beats_beyond_ci": bool(lo > 0),
                         "seeds": len(acc)})
    return pd.DataFrame(rows)


def enrichment_summary(enrichment_rows: pd.DataFrame) -> pd.DataFrame:
    """Per noise model and queue kind: mean noise share of Stage-1 queues vs the pool vs random queues of the same
    size, and the enrichment ratio (queue / pool)."""
    g = enrichment_rows.groupby(["noise", "queue"], sort=False)[["queue_noise_share", "pool_noise_share",
                                                                 "random_queue_noise_share"]]
    out = g.mean().reset_index()
    out["enrichment"] = out["queue_noise_share"] / out["pool_noise_share"].where(out["pool_noise_share"] > 0)
    return out


def routing_summary(routing: pd.DataFrame) -> pd.DataFrame:
    """Per noise model and policy (routed, all to people, all to llm): mean label accuracy over seeds (overall, on
    objective and subjective pairs) and the mean number of people's and the judge's labels."""
    if routing.empty:
        return routing
    cols = [c for c in ("label_accuracy", "accuracy_objective", "accuracy_subjective", "people_labels", "judge_labels")
            if c in routing.columns]
    return routing.groupby(["noise", "policy"], sort=False)[cols].mean().reset_index()


def headline_metrics(result: ExperimentResult, cfg: ExperimentConfig) -> dict[str, Any]:
    """The numbers a report shows, with their conditions: the headline noise model's table at the fixed schedule,
    the paired differences, enrichment and detection."""
    head = cfg.noise_models[0]
    s = result.summary[(result.summary["noise"] == head) & (result.summary["schedule"] == "fixed")].set_index("condition")
    out: dict[str, Any] = {"noise_model": head, "noise_rate": cfg.noise_rate, "reviewer_error_rate": cfg.oracle_error_rate,
                           "human_budget": cfg.human_budget, "seeds": len(cfg.seeds), **result.clean_check}
    out.update({f"{c}/test_accuracy_mean": float(r.test_accuracy_mean) for c, r in s.iterrows()})
    for r in result.paired.itertuples():
        key = f"{r.noise}/{r.schedule}/{r.condition}_minus_{r.strongest_baseline}".replace(" ", "_")
        out[key] = r.diff_mean
        out[key + "/beats_beyond_ci"] = r.beats_beyond_ci
    for r in enrichment_summary(result.enrichment).itertuples():
        out[f"{r.noise}/{r.queue}/enrichment"] = r.enrichment
    d = result.detection.groupby("noise")[["stage2_flag_f1", "cleanlab_f1"]].mean()
    out.update({f"{n}/{k}": float(v) for n, row in d.iterrows() for k, v in row.items()})
    for r in routing_summary(result.routing).itertuples():
        out[f"{r.noise}/routing/{r.policy.replace(' ', '_')}/label_accuracy"] = float(r.label_accuracy)
    return out


def run_experiment(cfg: ExperimentConfig, run_dir: str | Path, *, data_dir: str | None = None,
                   pairs: PairFrame | None = None, progress: bool = True, finetune: bool = False) -> ExperimentResult:
    """The whole ablation: every noise model x seed, every condition under both schedules. Models, review logs and
    curated sets go under ``<run_dir>/experiment/<config_key>/<noise>_seed<s>/``; a rerun with the same settings
    resumes the review logs. ``finetune`` adds the fine-tuned MiniLM check on the headline noise model's first seed.

    Example: ``res = run_experiment(ExperimentConfig(seeds=(0, 1, 2, 3, 4)), "runs/exp")``; ``res.summary``.
    """
    run = start_run(run_dir, cfg, step="curation_experiment")
    data = prepare_data(cfg, run, data_dir=data_dir, pairs=pairs, progress=progress)
    check = clean_check(data, cfg, run)
    rows, dets, enr, tuned, routed = [], [], [], [], []
    jobs = [(noise, seed) for noise in cfg.noise_models for seed in cfg.seeds]
    for noise, seed in tqdm(jobs, desc="experiment", unit="run", disable=not progress):
        first = finetune and (noise, seed) == jobs[0]
        r, d, e, f, routing = run_once(data, cfg, run, noise=noise, seed=seed, finetune=first)
        rows += r
        dets.append(d)
        enr += e
        tuned += f
        routed.append(routing)
    per_seed = pd.DataFrame(rows)
    summary = summarize(per_seed, check["test_longer_wins"])
    return ExperimentResult(per_seed=per_seed, summary=summary, paired=paired_vs_strongest(per_seed, summary),
                            detection=pd.DataFrame(dets), enrichment=pd.DataFrame(enr), clean_check=check,
                            config=asdict(cfg), finetuned=pd.DataFrame(tuned), routing=pd.concat(routed, ignore_index=True))


def smoke_config(cfg: ExperimentConfig = ExperimentConfig()) -> ExperimentConfig:
    """A tiny version for tests and papermill smoke runs."""
    return replace(cfg, n_cross_prompt=min(cfg.n_cross_prompt, 40), n_truncated=min(cfg.n_truncated, 40),
                   n_padded=min(cfg.n_padded, 40), seeds=cfg.seeds[:2], seed_size=10, labels_per_iteration=8,
                   iterations=1, head_epochs=5, cleanlab_folds=2, cluster_groups=4,
                   min_clean_accuracy=min(cfg.min_clean_accuracy, 0.55))


def per_construction(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean test accuracy per construction (rows: noise, schedule, condition), over seeds."""
    cols = [c for c in per_seed.columns if c.startswith("test_accuracy/")]
    out = per_seed.groupby(["noise", "schedule", "condition"], sort=False)[cols].mean()
    return out.rename(columns=lambda c: c.split("/", 1)[1])


def save_outputs(run: Run, result: ExperimentResult, cfg: ExperimentConfig, *, step: str = "") -> dict[str, Any]:
    """Every table and figure of the experiment into ``run`` (the notebook and ``workbench experiment`` write the
    same report); returns the figures and the headline metrics."""
    cond = f"noise rate {cfg.noise_rate}, reviewer error {cfg.oracle_error_rate}, budget {cfg.human_budget}, " \
           f"{len(cfg.seeds)} seeds"
    tables = {"experiment_summary": (result.summary, f"Test accuracy by condition (mean, 95% CI; {cond})"),
              "experiment_paired": (result.paired, "Pipeline minus the strongest baseline, paired over seeds (95% CI)"),
              "experiment_detection": (result.detection, "Flip detection: Stage 2 vs cleanlab, per noise model and seed"),
              "experiment_enrichment": (enrichment_summary(result.enrichment), "Noise share: Stage-1 queues vs pool vs random"),
              "experiment_per_construction": (per_construction(result.per_seed).reset_index(), "Test accuracy per construction"),
              "experiment_per_seed": (result.per_seed, "Every noise model, seed, schedule and condition")}
    if len(result.routing):
        tables["experiment_routing"] = (routing_summary(result.routing), "Routing vs everything to people or to the judge: "
                                        "label accuracy and labels used (simulated reviewers, errors by category)")
    if len(result.finetuned):
        tables["experiment_finetuned"] = (result.finetuned, "Fine-tuned MiniLM RM on three conditions (one seed)")
    for name, (table, title) in tables.items():
        run.save_table(table, name, title=title, step=step, index=False)
    figures = {"conditions": plots.experiment_conditions(result.summary),
               "enrichment": plots.experiment_enrichment(enrichment_summary(result.enrichment))}
    run.save_figure(figures["conditions"], "experiment_conditions", title="Conditions x noise models", step=step,
                    caption=cond)
    run.save_figure(figures["enrichment"], "experiment_enrichment", title="Retrieval enrichment", step=step)
    metrics = headline_metrics(result, cfg)
    run.save_metrics(metrics, "experiment_metrics", title="Curation experiment at a glance", step=step)
    return {**figures, "metrics": metrics}


def conclusions(result: ExperimentResult, cfg: ExperimentConfig) -> list[str]:
    """What the run found, in sentences computed from its numbers (the notebook's and the CLI's last words)."""
    lines = [f"Conditions: noise {', '.join(cfg.noise_models)} at rate {cfg.noise_rate} (concentration "
             f"{cfg.noise_concentration}), simulated reviewer error {cfg.oracle_error_rate}, {cfg.human_budget} "
             f"reviewed labels plus the gold split, {len(cfg.seeds)} seeds. On the {result.clean_check['test_pairs']} "
             f"test pairs, longer-wins scores {result.clean_check['test_longer_wins']:.3f} and a clean-label RM "
             f"{result.clean_check['clean_test_accuracy']:.3f}."]
    for r in result.paired.itertuples():
        verdict = "beats" if r.ci_low > 0 else ("loses to" if r.ci_high < 0 else "does not separate from")
        lines.append(f"{r.noise} noise, {r.schedule} schedule: {r.condition} {verdict} the strongest baseline "
                     f"({r.strongest_baseline}) by {r.diff_mean:+.3f} [95% CI {r.ci_low:+.3f}, {r.ci_high:+.3f}].")
    for r in enrichment_summary(result.enrichment).itertuples():
        lines.append(f"{r.noise} noise, {r.queue} queues held {r.queue_noise_share:.1%} noisy labels vs "
                     f"{r.pool_noise_share:.1%} in the pool and {r.random_queue_noise_share:.1%} in random queues "
                     f"(enrichment {r.enrichment:.2f}x).")
    d = result.detection.groupby("noise", sort=False)[["stage2_flag_f1", "cleanlab_f1"]].mean()
    lines += [f"{n} noise: flip detection F1 Stage 1+2 {row.stage2_flag_f1:.2f} vs cleanlab {row.cleanlab_f1:.2f}."
              for n, row in d.iterrows()]
    for noise, g in routing_summary(result.routing).groupby("noise", sort=False):
        acc = g.set_index("policy")
        lines.append(f"{noise} noise, routing: labels {acc.loc['routed', 'label_accuracy']:.1%} right with "
                     f"{acc.loc['routed', 'people_labels']:.0f} people's labels, vs {acc.loc['all to people', 'label_accuracy']:.1%} "
                     f"all to people ({acc.loc['all to people', 'people_labels']:.0f}) and "
                     f"{acc.loc['all to llm', 'label_accuracy']:.1%} all to the judge.")
    return lines
