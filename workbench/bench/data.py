"""Benchmark loaders: read each RM benchmark in its upstream format into one item table.

Every benchmark becomes a `Benchmark`: one row per item with ``item_id``, ``subset``, ``prompt`` (chat
messages), ``responses`` (the candidates to score, in the order the scoring rule expects) and the
columns its rule needs (``n_correct``, ``correct``, ``label``, ``domain``...). `workbench.bench.evaluation`
scores and aggregates them; nothing here scores.

Sources, in order: ``path=`` if given, else ``<data dir>/<spec.local>`` (the shared data folder from
`workbench.data.files.shared_data_dir`, or ``data_dir=``), else the Hugging Face dataset id when the Hub is
reachable (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` unset). When none works the error names the
expected path and the dataset id to download. Local files are read with `workbench.data.files.iter_records`
(JSONL / JSON / parquet / CSV, optionally gzipped); pairwise formats are parsed by
`workbench.data.pairs.records_to_pairs`, so a bad row names its file, row and field.

`bon_benchmark` wraps any (prompt, N candidates, correctness) frame as a benchmark, and
`make_arithmetic_bon` builds a verifiable one (arithmetic with checked answers) for offline demos.

Deliberately not here: scoring rules (`workbench.bench.evaluation`), caching of Hub downloads (the
`datasets` cache does that), and any re-labelling of upstream data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.data import files as io
from workbench.data.pairs import PairError, records_to_pairs
from workbench.data.schema import Message

PUBLISHED_SCORES = io.REPO_ROOT / "data" / "published_scores" / "skywork_reward_v2.csv"
ITEM_COLUMNS = ("item_id", "subset", "prompt", "responses")
Sources = Iterator[tuple[str, str, Iterator[tuple[int, Any]]]]  # (where, relative name, (row, record) items) per file

# ScalerLab/JudgeBench utils: `source` is "mmlu-pro-<subject>", "livebench-reasoning", "livebench-math"
# or "livecodebench"; the paper reports these four categories.
JUDGEBENCH_CATEGORIES = {"mmlu-pro": "knowledge", "livebench-reasoning": "reasoning", "livebench-math": "math",
                         "livecodebench": "coding"}


@dataclass(frozen=True)
class HubSource:
    """One Hugging Face dataset (split, optional data_dir) and the subset name its rows get."""

    dataset_id: str
    split: str
    subset: str = ""
    data_dir: str | None = None


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a benchmark lives (local path under the data dir, Hub ids) and which rule scores it."""

    name: str
    title: str
    local: str
    rule: str
    hub: tuple[HubSource, ...] = ()
    download: str = ""  # how to get it when there is no Hub copy


@dataclass
class Benchmark:
    """Items of one benchmark, ready to score: see the module docstring for the columns."""

    name: str
    items: pd.DataFrame
    rule: str
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        missing = [c for c in ITEM_COLUMNS if c not in self.items.columns]
        if missing:
            raise ValueError(f"benchmark {self.name!r}: items lack columns {missing}; got {list(self.items.columns)}.")
        if self.items["item_id"].duplicated().any():
            dup = self.items.loc[self.items["item_id"].duplicated(), "item_id"].iloc[0]
            raise ValueError(f"benchmark {self.name!r}: item_id {dup!r} appears more than once; item ids must be unique.")

    @property
    def n_responses(self) -> int:
        """How many (prompt, response) inputs scoring this benchmark takes."""
        return int(self.items["responses"].map(len).sum())


_PPE_CORRECTNESS = (
    HubSource("lmarena-ai/PPE-MMLU-Pro-Best-of-K", "train", "mmlu_pro"),
    HubSource("lmarena-ai/PPE-MATH-Best-of-K", "train", "math"),
    HubSource("lmarena-ai/PPE-GPQA-Best-of-K", "train", "gpqa"),
    HubSource("lmarena-ai/PPE-IFEval-Best-of-K", "train", "ifeval"),
    HubSource("lmarena-ai/PPE-MBPP-Plus-Best-of-K", "train", "mbpp_plus"),
)
_HH_SPLITS = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")

SPECS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in (
        BenchmarkSpec("rewardbench", "RewardBench v1 (filtered)", "rewardbench/filtered.jsonl.gz", "rewardbench",
                      (HubSource("allenai/reward-bench", "filtered"),)),
        BenchmarkSpec("rewardbench2", "RewardBench 2", "rewardbench2", "rewardbench2",
                      (HubSource("allenai/reward-bench-2", "test"),)),
        BenchmarkSpec("rm_bench", "RM-Bench", "rm_bench", "rm_bench", (HubSource("THU-KEG/RM-Bench", "train"),)),
        BenchmarkSpec("ppe_preference", "PPE human preference", "ppe/human_preference", "pairwise",
                      (HubSource("lmarena-ai/PPE-Human-Preference-V1", "test"),)),
        BenchmarkSpec("ppe_correctness", "PPE correctness (best-of-K)", "ppe/correctness", "bon", _PPE_CORRECTNESS),
        BenchmarkSpec("rmb", "RMB", "rmb/RMB_dataset", "rmb",
                      download="git clone https://github.com/Zhou-Zoey/RMB-Reward-Model-Benchmark and copy its "
                               "RMB_dataset/ folder (Pairwise_set/ and BoN_set/) there; it has no official Hub copy"),
        BenchmarkSpec("judgebench", "JudgeBench (GPT-4o pairs)", "judgebench", "judgebench",
                      (HubSource("ScalerLab/JudgeBench", "gpt"),)),
        BenchmarkSpec("hh_rlhf", "HH-RLHF test", "hh_rlhf", "pairwise",
                      tuple(HubSource("Anthropic/hh-rlhf", "test", s, data_dir=s) for s in _HH_SPLITS)),
        BenchmarkSpec("llmbar", "LLMBar (Natural + Adversarial)", "llmbar/Dataset", "llmbar",
                      download="git clone https://github.com/princeton-nlp/LLMBar and copy its Dataset/ folder there"),
    )
}


# ---------------------------------------------------------------- reading records


def _is_data_file(path: Path) -> bool:
    try:
        io.file_format(path)
    except ValueError:
        return False
    return path.is_file() and not path.name.startswith(".")


def _rel_name(path: Path, root: Path) -> str:
    """``root/helpful-base/test.jsonl.gz`` -> ``helpful-base/test``: the part loaders read subsets from.

    A single file keeps its folder name too (``.../helpful-base/test.jsonl.gz`` -> ``helpful-base/test``).
    """
    rel = path.relative_to(root)
    stem = rel.name.split(".")[0]
    return f"{rel.parent.as_posix()}/{stem}" if rel.parent != Path(".") else stem


def _local_sources(path: Path) -> Sources:
    """(where, relative name, records) for a data file, or for every data file under a folder."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if _is_data_file(p))
    if not files:
        raise FileNotFoundError(f"{path}: no data files (.jsonl/.json/.parquet/.csv, optionally .gz) in this folder.")
    root = path if path.is_dir() else path.parent.parent
    for f in files:
        yield str(f), _rel_name(f, root), io.iter_records(f)


def _hub_sources(hub: tuple[HubSource, ...]) -> Sources:
    import datasets

    for src in hub:
        kwargs = {"data_dir": src.data_dir} if src.data_dir else {}
        ds = datasets.load_dataset(src.dataset_id, split=src.split, **kwargs)
        yield f"hf://{src.dataset_id}[{src.split}]", src.subset, enumerate(ds, start=1)


def _records(where: str, records: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for row, rec in records:
        if isinstance(rec, Exception):
            raise PairError(where, row, "<record>", str(rec))
        if not isinstance(rec, Mapping):
            raise PairError(where, row, "<record>", f"must be an object/dict, got {type(rec).__name__}")
        yield row, rec


def _need(rec: Mapping[str, Any], key: str, where: str, row: int) -> Any:
    if key not in rec or rec[key] is None:
        raise PairError(where, row, key, f"missing (keys present: {sorted(rec)})")
    return rec[key]


def _as_messages(value: Any, where: str, row: int, key: str = "prompt") -> list[Message]:
    """A prompt string, or a list of {role, content} turns ("human" -> "user"; extra keys dropped)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if hasattr(value, "tolist") and not isinstance(value, list):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        raise PairError(where, row, key, f"must be a string or a non-empty list of messages, got {type(value).__name__}")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise PairError(where, row, f"{key}[{i}]", "each message needs 'role' and 'content'")
        out.append({"role": "user" if m["role"] == "human" else str(m["role"]), "content": str(m["content"])})
    return out


def _str_list(value: Any, where: str, row: int, key: str) -> list[str]:
    if hasattr(value, "tolist") and not isinstance(value, list):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise PairError(where, row, key, f"must be a list of strings, got {type(value).__name__}")
    return list(value)


# ---------------------------------------------------------------- per-benchmark parsers


def _pairwise_items(where: str, rel: str, records: Iterator[tuple[int, Any]], *, fmt: str, subset: str,
                    keep: tuple[str, ...] = (), notes: list[str]) -> pd.DataFrame:
    """Chosen/rejected formats through `records_to_pairs`; rows it rejects (e.g. identical) are noted, not scored."""
    pairs, report = records_to_pairs(records, where=where, source=rel, fmt=fmt, strict=False, keep=keep)
    if report.n_rejected:
        notes.append(f"{where}: {report.n_rejected} rows not scored {report.reasons()}")
    subsets = pairs["subset"].astype(str) if "subset" in keep else pd.Series(subset, index=pairs.index)
    ids = pairs["id"].astype(str) if "id" in keep else pairs["source_row"].astype(str)
    return pd.DataFrame({"item_id": (subsets + ":" + ids).to_numpy(), "subset": subsets.to_numpy(),
                         "prompt": pairs["prompt"].to_numpy(),
                         "responses": [[c, r] for c, r in zip(pairs["chosen"], pairs["rejected"])],
                         "pair_id": pairs["pair_id"].to_numpy()})


def _parse_rewardbench(sources: Sources, notes: list[str]) -> pd.DataFrame:
    return pd.concat([_pairwise_items(w, rel, recs, fmt="prompt_strings", subset="", keep=("subset", "id"), notes=notes)
                      for w, rel, recs in sources], ignore_index=True)


def _parse_hh(sources: Sources, notes: list[str]) -> pd.DataFrame:
    # hh_rlhf/<split>/test.jsonl.gz (local) or data_dir=<split> (Hub): the split is the subset.
    return pd.concat([_pairwise_items(w, rel, recs, fmt="hh", subset=rel.split("/")[0], notes=notes)
                      for w, rel, recs in sources], ignore_index=True)


def _parse_llmbar(sources: Sources, notes: list[str]) -> pd.DataFrame:
    """The five LLMBar sets (Natural, Adversarial/*) only: upstream evaluates them one by one.

    Dataset/LLMBar/Adversarial/Neighbor/dataset.json -> subset "LLMBar/Adversarial/Neighbor". The
    repository's Dataset/ folder also holds CaseStudy/ and Processed/ sets (other studies) and
    evaluators/**/result.json outputs; they are skipped and counted in the notes.
    """
    frames, skipped = [], 0
    for w, rel, recs in sources:
        if rel.startswith("LLMBar/") and rel.endswith("/dataset") and "/evaluators/" not in rel:
            frames.append(_pairwise_items(w, rel, recs, fmt="llmbar", subset=rel.rsplit("/", 1)[0], notes=notes))
        else:
            skipped += 1
    if skipped:
        notes.append(f"{skipped} files outside Dataset/LLMBar/<set>/dataset.json skipped (CaseStudy, Processed, evaluator outputs)")
    if not frames:
        raise FileNotFoundError("no Dataset/LLMBar/<set>/dataset.json files found; point path= at LLMBar's Dataset/ folder.")
    return pd.concat(frames, ignore_index=True)


def _parse_rewardbench2(sources: Sources, notes: list[str]) -> pd.DataFrame:
    rows = []
    for where, _rel, recs in sources:
        for row, rec in _records(where, recs):
            chosen = _str_list(_need(rec, "chosen", where, row), where, row, "chosen")
            rejected = _str_list(_need(rec, "rejected", where, row), where, row, "rejected")
            subset = str(_need(rec, "subset", where, row))
            raw_id = str(_need(rec, "id", where, row))
            if subset.lower() == "ties" and raw_id.count(":") != 1:
                raise PairError(where, row, "id", f"Ties ids are 'ref:<prompt id>' or 'tied:<prompt id>', got {raw_id!r}")
            rows.append({"item_id": f"{subset}:{raw_id}", "subset": subset,
                         "prompt": _as_messages(_need(rec, "prompt", where, row), where, row),
                         "responses": chosen + rejected, "n_correct": int(rec.get("num_correct") or len(chosen)),
                         "raw_id": raw_id})
    return pd.DataFrame(rows)


def _parse_rm_bench(sources: Sources, notes: list[str]) -> pd.DataFrame:
    rows = []
    for where, rel, recs in sources:
        for row, rec in _records(where, recs):
            # Upstream files are <domain>_filtered.json; total_dataset.json carries a `domain` field instead.
            subset = str(rec.get("domain") or rel.split("/")[-1].replace("_filtered", ""))
            chosen = _str_list(_need(rec, "chosen", where, row), where, row, "chosen")
            rejected = _str_list(_need(rec, "rejected", where, row), where, row, "rejected")
            if len(chosen) != 3 or len(rejected) != 3:
                raise PairError(where, row, "chosen/rejected",
                                f"RM-Bench needs 3 styles each, got {len(chosen)} and {len(rejected)}")
            rows.append({"item_id": f"{subset}:{rec.get('id', row)}", "subset": subset,
                         "prompt": _as_messages(_need(rec, "prompt", where, row), where, row),
                         "responses": chosen + rejected, "domain": subset.split("-")[0]})
    return pd.DataFrame(rows)


def _parse_ppe_preference(sources: Sources, notes: list[str]) -> pd.DataFrame:
    rows, ties = [], 0
    for where, _rel, recs in sources:
        for row, rec in _records(where, recs):
            winner = str(_need(rec, "winner", where, row))
            if winner not in ("model_a", "model_b"):
                ties += 1  # human ties carry no preference to predict
                continue
            a, b = str(_need(rec, "response_1", where, row)), str(_need(rec, "response_2", where, row))
            rows.append({"item_id": f"all:{rec.get('question_id', row)}", "subset": "all",
                         "prompt": _as_messages(_need(rec, "prompt", where, row), where, row),
                         "responses": [a, b] if winner == "model_a" else [b, a]})
    if ties:
        notes.append(f"{ties} human-tie rows left out (no preferred response)")
    return pd.DataFrame(rows)


def _parse_ppe_correctness(sources: Sources, notes: list[str]) -> pd.DataFrame:
    rows = []
    for where, rel, recs in sources:
        subset = rel.split("/")[-1]
        for row, rec in _records(where, recs):
            flags = [bool(x) for x in _need(rec, "scores", where, row)]
            responses = [str(rec.get(f"response_{k + 1}", "")) for k in range(len(flags))]
            if any(f"response_{k + 1}" not in rec for k in range(len(flags))):
                raise PairError(where, row, "response_k", f"{len(flags)} correctness scores but not as many response_k fields")
            rows.append({"item_id": f"{subset}:{rec.get('question_id', row)}:{rec.get('model_name', '')}", "subset": subset,
                         "prompt": _as_messages(_need(rec, "prompt", where, row), where, row),
                         "responses": responses, "correct": flags})
    return pd.DataFrame(rows)


def _parse_rmb(sources: Sources, notes: list[str]) -> pd.DataFrame:
    rows = []
    for where, _rel, recs in sources:
        for row, rec in _records(where, recs):
            path = str(_need(rec, "category_path", where, row)).split("/")
            goal, scenario = path[1].lower(), "/".join(path[2:])
            prompt = _as_messages(_need(rec, "conversation_input", where, row), where, row, "conversation_input")
            if "bon_best" in rec:
                kind, uid = "bon", rec.get("bon_uid", row)
                responses = [str(_need(rec["bon_best"], "answer", where, row))]
                responses += [str(_need(x, "answer", where, row)) for x in _need(rec, "loser_list", where, row)]
            else:
                kind, uid = "pairwise", rec.get("pair_uid", row)
                responses = [str(_need(_need(rec, "chosen", where, row), "answer", where, row)),
                             str(_need(_need(rec, "reject", where, row), "answer", where, row))]
            rows.append({"item_id": f"{goal}/{kind}:{uid}", "subset": f"{goal}/{kind}", "prompt": prompt,
                         "responses": responses, "scenario": scenario})
    return pd.DataFrame(rows)


def _parse_judgebench(sources: Sources, notes: list[str]) -> pd.DataFrame:
    rows = []
    for where, _rel, recs in sources:
        for row, rec in _records(where, recs):
            source = str(_need(rec, "source", where, row))
            category = next((c for p, c in JUDGEBENCH_CATEGORIES.items() if source.startswith(p)), None)
            if category is None:
                raise PairError(where, row, "source", f"unknown JudgeBench source {source!r}; "
                                                      f"expected a prefix of {sorted(JUDGEBENCH_CATEGORIES)}")
            rows.append({"item_id": f"{category}:{rec.get('pair_id', row)}", "subset": category,
                         "prompt": _as_messages(_need(rec, "question", where, row), where, row, "question"),
                         "responses": [str(_need(rec, "response_A", where, row)), str(_need(rec, "response_B", where, row))],
                         "label": str(_need(rec, "label", where, row))})
    return pd.DataFrame(rows)


_PARSERS = {
    "rewardbench": _parse_rewardbench, "rewardbench2": _parse_rewardbench2, "rm_bench": _parse_rm_bench,
    "ppe_preference": _parse_ppe_preference, "ppe_correctness": _parse_ppe_correctness, "rmb": _parse_rmb,
    "judgebench": _parse_judgebench, "hh_rlhf": _parse_hh, "llmbar": _parse_llmbar,
}


# ---------------------------------------------------------------- public


def _data_root(data_dir: str | os.PathLike | None) -> Path:
    try:
        return io.shared_data_dir(data_dir)
    except FileNotFoundError:
        return Path(data_dir).resolve() if data_dir else io.REPO_ROOT.parent / "shared" / "data"


def _missing(spec: BenchmarkSpec, expected: Path, why: str) -> FileNotFoundError:
    if spec.hub:
        ids = ", ".join(f"'{h.dataset_id}' (split '{h.split}'{f', data_dir {h.data_dir!r}' if h.data_dir else ''})"
                        for h in spec.hub)
        how = (f"Download the Hugging Face dataset {ids} and save it there (e.g. "
               f"`datasets.load_dataset('{spec.hub[0].dataset_id}', split='{spec.hub[0].split}')"
               f".to_json('{expected}/data.jsonl')`), "
               "or pass path=...")
    else:
        how = f"There is no Hugging Face dataset id for it: {spec.download}, or pass path=..."
    return FileNotFoundError(f"{spec.title} ({spec.name!r}) not found at {expected} {why}. {how}")


def load_benchmark(name: str, path: str | os.PathLike | None = None, *, data_dir: str | os.PathLike | None = None,
                   hub: bool = True, limit: int | None = None) -> Benchmark:
    """Load one benchmark in its upstream format: ``path``, else the data dir, else the Hub.

    Args:
        name: one of `SPECS` (``rewardbench``, ``rewardbench2``, ``rm_bench``, ``ppe_preference``,
            ``ppe_correctness``, ``rmb``, ``judgebench``, ``hh_rlhf``, ``llmbar``).
        path: a data file or a folder of them, in the upstream format.
        data_dir: the shared data folder (default: `workbench.data.files.shared_data_dir`).
        hub: try the Hugging Face dataset id when no local copy exists (never when offline).
        limit: keep the first ``limit`` items of each subset (smoke runs).

    Raises:
        FileNotFoundError: naming the expected path and the dataset id (or repository) to download.
        PairError: a malformed record, with file, row and field.

    Example: ``rb = load_benchmark("rewardbench"); rb.items.groupby("subset").size()``.
    """
    if name not in SPECS:
        raise ValueError(f"Unknown benchmark {name!r}; choose one of {sorted(SPECS)}.")
    spec, notes = SPECS[name], []
    expected = Path(path) if path is not None else _data_root(data_dir) / spec.local
    if expected.exists():
        items, where = _PARSERS[name](_local_sources(expected), notes), str(expected)
    elif path is not None or not (hub and spec.hub):
        raise _missing(spec, expected, "(no such file or folder)")
    elif io.hub_offline():
        raise _missing(spec, expected, "(no such file or folder; offline: HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set, "
                                       "so the Hub was not tried)")
    else:
        try:
            items = _PARSERS[name](_hub_sources(spec.hub), notes)
        except PairError:
            raise
        except Exception as e:  # noqa: BLE001 - network, auth and missing-dataset errors all mean "not loadable"
            raise _missing(spec, expected, f"and the Hub failed ({type(e).__name__}: {e})") from None
        where = ", ".join(f"hf://{h.dataset_id}" for h in spec.hub)
    if items.empty:
        raise ValueError(f"{spec.title}: {where} holds no scorable items; check the file is the upstream format.")
    if limit is not None:
        items = items.groupby("subset", sort=False, group_keys=False).head(limit)
    return Benchmark(name=name, items=items.reset_index(drop=True), rule=spec.rule, source=where, notes=notes)


def load_published_scores(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Published Skywork-Reward-V2 scores (paper Table 1) as fractions, in the evaluation table's columns.

    Columns: ``model``, ``benchmark``, ``subset``, ``metric``, ``value`` (fraction), ``source``.
    """
    path = Path(path) if path is not None else PUBLISHED_SCORES
    if not path.exists():
        raise FileNotFoundError(f"{path}: published scores file missing; it ships with the repository (data/published_scores/).")
    table = pd.read_csv(path, comment="#")
    return table.assign(value=table["value_pct"] / 100.0)[["model", "benchmark", "subset", "metric", "value", "source"]]


# ---------------------------------------------------------------- best-of-N sets built here


_ARITH = re.compile(r"What is (-?\d+) ([+\-*]) (-?\d+)\?")
_ANSWER = re.compile(r"answer is (-?\d+)")
_OPS: dict[str, Callable[[int, int], int]] = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def check_arithmetic(prompt: str, response: str) -> bool:
    """Verify a response by recomputing: the last ``answer is X`` must equal the prompt's ``a op b``."""
    q, answers = _ARITH.search(prompt), _ANSWER.findall(response)
    return bool(q and answers) and int(answers[-1]) == _OPS[q.group(2)](int(q.group(1)), int(q.group(3)))


def make_arithmetic_bon(n_problems: int = 40, n_candidates: int = 8, *, p_correct: float = 0.35, seed: int = 0) -> Benchmark:
    """A verifiable best-of-N set for offline teaching demos: arithmetic questions with N candidate answers.

    Wrong candidates carry a plausible slip (off by a little, or a wrong operator) and candidates vary
    in style and length, so a length-biased scorer is visibly worse than a verifier. Correctness comes
    from `check_arithmetic`, not from how the candidate was made.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_problems):
        a, b, op = int(rng.integers(11, 99)), int(rng.integers(11, 99)), str(rng.choice(list(_OPS)))
        prompt, truth = f"What is {a} {op} {b}?", _OPS[op](a, b)
        responses = []
        for _ in range(n_candidates):
            wrong_op = _OPS[str(rng.choice([o for o in _OPS if o != op]))]
            slip = truth + int(rng.choice([-10, -2, -1, 1, 2, 10])) if rng.random() < 0.7 else wrong_op(a, b)
            value = truth if rng.random() < p_correct else slip
            if rng.random() < 0.5:
                responses.append(f"The answer is {value}.")
            else:
                responses.append(f"Let's work it out carefully. We need {a} {op} {b}. Taking it step by step and "
                                 f"checking each digit, the answer is {value}.")
        rows.append({"item_id": f"arithmetic:{q}", "subset": "arithmetic", "prompt": [{"role": "user", "content": prompt}],
                     "responses": responses, "correct": [check_arithmetic(prompt, r) for r in responses]})
    return Benchmark(name="arithmetic_bon", items=pd.DataFrame(rows), rule="bon", source=f"make_arithmetic_bon(seed={seed})")


def bon_benchmark(frame: pd.DataFrame, *, name: str = "bon") -> Benchmark:
    """Wrap any (prompt, N candidates, correctness) frame as a best-of-N benchmark for `evaluate`.

    ``frame`` needs ``prompt`` (str or messages), ``responses`` (list[str]) and ``correct`` (list[bool]);
    ``subset`` and ``item_id`` are optional.
    """
    missing = [c for c in ("prompt", "responses", "correct") if c not in frame.columns]
    if missing:
        raise ValueError(f"bon_benchmark: frame lacks columns {missing}; got {list(frame.columns)}.")
    items = frame.copy()
    items["prompt"] = [[{"role": "user", "content": p}] if isinstance(p, str) else list(p) for p in items["prompt"]]
    items["subset"] = items["subset"].astype(str) if "subset" in items else name
    items["item_id"] = items["item_id"].astype(str) if "item_id" in items else [f"{name}:{i}" for i in range(len(items))]
    bad = [i for i, (r, c) in enumerate(zip(items["responses"], items["correct"])) if len(r) != len(c) or len(r) < 2]
    if bad:
        raise ValueError(f"bon_benchmark: row {bad[0]} needs >= 2 responses and one correctness flag per response.")
    return Benchmark(name=name, items=items.reset_index(drop=True), rule="bon", source="frame")
