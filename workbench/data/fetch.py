"""The public data the demo, the tests and the benchmark harness read, found or fetched into one folder.

`find_data_dir` looks, in order, at an explicit ``data_dir``, ``$WORKBENCH_DATA_DIR``, ``<repo>/../shared/data``
(the offline mirror on the development machines) and the user cache (``platformdirs``: e.g.
``~/.cache/rm-workbench/data``). `ensure_data` returns the first complete one, or fetches what is missing
into the cache when the network is allowed, or fails at once naming the missing datasets, where it looked
and the one command that fetches them (``workbench data fetch``).

The fetched folder has exactly the mirror's layout (`MANIFEST`): HH-RLHF and RewardBench v1 come from their
Hugging Face dataset repositories through ``huggingface_hub`` (``hf_hub_download``: resumable, honours
``HF_ENDPOINT``), RM-Bench and LLMBar from their GitHub repositories at pinned commits (they have no Hub
files in this layout). Every file is checked: against its pinned sha256 where the upstream bytes are known,
else against the sha256 the Hub announces (its ETag for LFS files); the sha256 and the Hub revision of every
file go to ``MANIFEST.json`` in the folder, written after each file, so an interrupted fetch resumes.

Deliberately not here: parsing (`workbench.bench.data`, `workbench.data.files`), and datasets only a benchmark
run needs and the Hub serves as datasets (`workbench.bench.data` loads those itself when online).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.data import files as io

GITHUB_RAW_ENV = "WORKBENCH_GITHUB_RAW"  # a mirror of raw.githubusercontent.com (tests point it at 127.0.0.1)
GITHUB_RAW = "https://raw.githubusercontent.com"
MANIFEST_NAME = "MANIFEST.json"


@dataclass(frozen=True)
class DataFile:
    """One file of the data folder and where it comes from."""

    dataset: str  # hh_rlhf | rewardbench | rm_bench | llmbar
    local: str  # path inside the data folder
    source: str  # "hub" (a Hugging Face dataset repo) or "github"
    repo: str  # "Anthropic/hh-rlhf" or "THU-KEG/RM-Bench"
    path: str  # the file inside the repo
    revision: str = "main"  # Hub revision or GitHub commit
    sha256: str = ""  # of the bytes as fetched, when known in advance ("" -> the Hub's announced sha256)
    transform: str = ""  # "" (as is) | "gzip" | "rewardbench_jsonl" (parquet -> the mirror's filtered.jsonl.gz)


LICENSES = {
    "hh_rlhf": "Anthropic/hh-rlhf, MIT",
    "rewardbench": "allenai/reward-bench, ODC-BY (holds outputs of third-party models, with their own terms)",
    "rm_bench": "THU-KEG/RM-Bench, ODC-BY (per its Hugging Face card; the GitHub repository has no license file)",
    "llmbar": "princeton-nlp/LLMBar, MIT (Processed/ sets re-use MT-Bench, FairEval and LLMEval² data, their terms apply)",
}
_RM_BENCH = ("THU-KEG/RM-Bench", "73c52d7b27b361621361ec959ac6c0eb9bb7a689")
_LLMBAR = ("princeton-nlp/LLMBar", "900616bff90b6c6c8e1681f7d079250637c55992")
_HH_SHA = {"harmless-base": "ebfaaed21162a4de120ae85366075b34425e2a6303fac59b99555002f7016f03",
           "helpful-base": "8be3fc1a13b27901631696f2be6f184c799f1baeaf145f53ac5db24960adc37b",
           "helpful-online": "", "helpful-rejection-sampled": ""}  # the mirror's copies of these two differ from the Hub
_RM_BENCH_SHA = {"chat": "1df6053a68119c17eed9a54d35dc654b8cde3d3b0bbd1ad6941073e40ef5c9a8",
                 "code": "c3a56181d34835345b9c5fbf22c203439d06ea96de12b232da80628f14fe1e15",
                 "safety-refuse": "cf25d4cc967afe68908ff710a8ffaa6fe7aff53ad70fe0b8c689b35aa20e911f",
                 "safety-response": "364caaebd7ddaa432f5120e11e8527fc1046c50d83d0d6f89346ad25f1bf51f1"}
_LLMBAR_SHA = {"LLMBar/Natural": "f7127b7aa78104cb8e03a2b1b3ac0077e95b125714dd441a8ee63666145a3375",
               "LLMBar/Adversarial/Neighbor": "6712c7eda6342602e0bc7c06c282fa95e2110d4e741a284026a62d937f9780a0",
               "LLMBar/Adversarial/GPTInst": "1002425f73c2cf54b6e6de99bce3f6c60fa2a17d13194772e37d7481c1351d42",
               "LLMBar/Adversarial/GPTOut": "1ff56e520d7607750a9866a3be0f5b850392ca4477a1f69d80f32bd3e310f561",
               "LLMBar/Adversarial/Manual": "0d9598769a39cdbbd265778c37e49939d41d5f76dcfb17bd75dcfa07516d3837",
               "Processed/MT-Bench": "c152249bc095d152485954bd2abd9ea79528ee5e4c045bfe9ef78755b03c20d8",
               "Processed/FairEval": "5b4a129258c1efa273a1b10fec399f5462b458facf900e8e1948f4acb1b37dd6",
               "Processed/LLMEval^2": "deffdaeccda39c0fb9337c7e20925ec2b973bfd456832c2f1ba0e9ca4cf107de"}

MANIFEST: tuple[DataFile, ...] = (
    *(DataFile("hh_rlhf", f"hh_rlhf/{s}/test.jsonl.gz", "hub", "Anthropic/hh-rlhf", f"{s}/test.jsonl.gz", sha256=sha)
      for s, sha in _HH_SHA.items()),
    DataFile("rewardbench", "rewardbench/filtered.jsonl.gz", "hub", "allenai/reward-bench",
             "data/filtered-00000-of-00001.parquet", transform="rewardbench_jsonl"),
    *(DataFile("rm_bench", f"rm_bench/{d}_filtered.json.gz", "github", _RM_BENCH[0], f"data/{d}_filtered.json",
               revision=_RM_BENCH[1], sha256=sha, transform="gzip") for d, sha in _RM_BENCH_SHA.items()),
    *(DataFile("llmbar", f"llmbar/Dataset/{s}/dataset.json", "github", _LLMBAR[0], f"Dataset/{s}/dataset.json",
               revision=_LLMBAR[1], sha256=sha) for s, sha in _LLMBAR_SHA.items()),
)
DATASETS = tuple(dict.fromkeys(f.dataset for f in MANIFEST))


class ChecksumError(ValueError):
    """A fetched file is not the file it should be (a corrupt or tampered download); it was removed."""


# ---------------------------------------------------------------- where the data is


cache_dir = io.cache_dir
candidates = io.data_dir_candidates


def missing_datasets(folder: Path, datasets: Iterable[str] = DATASETS) -> list[str]:
    """The datasets (of ``datasets``) with at least one file absent from ``folder``."""
    wanted = set(datasets)
    return sorted({f.dataset for f in MANIFEST if f.dataset in wanted and not (folder / f.local).is_file()})


def find_data_dir(data_dir: str | os.PathLike | None = None, *, datasets: Iterable[str] = ("hh_rlhf",)) -> Path | None:
    """The first candidate folder holding every file of ``datasets``; None when none does."""
    for folder in candidates(data_dir):
        folder = folder if folder.is_absolute() else io.REPO_ROOT / folder
        if folder.is_dir() and not missing_datasets(folder, datasets):
            return folder.resolve()
    return None


def not_found_message(datasets: Sequence[str], looked: Sequence[Path], why: str = "") -> str:
    return (f"Data not found: {', '.join(datasets)} missing (looked in {', '.join(str(p) for p in looked)}). "
            f"{why}Fetch them once with `python -m workbench data fetch` (into {cache_dir()}; "
            f"~10 MB, licenses printed), or set ${io.DATA_DIR_ENV} to a copy of the data folder.")


def ensure_data(data_dir: str | os.PathLike | None = None, *, datasets: Sequence[str] = DATASETS,
                allow_fetch: bool | None = None, progress: bool = True) -> Path:
    """A folder holding every file of ``datasets``: found (`find_data_dir`), else fetched into the cache.

    ``allow_fetch=None`` fetches unless ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` is set (`workbench.data.files.hub_offline`).
    An explicit ``data_dir`` is never fetched into: it must hold the data.

    Raises:
        FileNotFoundError: offline (or ``data_dir`` given) and the data is missing: names the missing
            datasets, the folders looked in and the command that fetches them.
    """
    found = find_data_dir(data_dir, datasets=datasets)
    if found is not None:
        return found
    looked = candidates(data_dir)
    if data_dir or (allow_fetch is False) or (allow_fetch is None and io.hub_offline()):
        why = "" if not io.hub_offline() or data_dir else "Offline (HF_HUB_OFFLINE is set). "
        raise FileNotFoundError(not_found_message(missing_datasets(looked[0], datasets) or list(datasets), looked, why))
    try:
        fetch_data(cache_dir(), datasets=datasets, progress=progress)
    except OSError as e:  # no network, a proxy, a moved file: say what is missing, where we looked, how to fix it
        raise FileNotFoundError(not_found_message(missing_datasets(cache_dir(), datasets) or list(datasets), looked,
                                                  f"Fetching failed: {e}. ")) from None
    return cache_dir().resolve()


# ---------------------------------------------------------------- fetching


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hub_file(f: DataFile, staging: Path) -> tuple[Path, str, str]:
    """(downloaded file, expected sha256, revision) through huggingface_hub.

    A converted file (RewardBench's parquet) whose path the Hub repository no longer has is loaded through
    ``datasets`` instead (the split by name), so a re-organised repository still works; it has no announced
    sha256 then, and the manifest records the ``datasets`` fingerprint as its revision.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError

    endpoint = os.environ.get("HF_ENDPOINT") or None  # read now: huggingface_hub read its constant at import
    try:
        meta = get_hf_file_metadata(hf_hub_url(f.repo, f.path, repo_type="dataset", revision=f.revision,
                                               endpoint=endpoint))
    except EntryNotFoundError:
        if f.transform != "rewardbench_jsonl":
            raise
        import datasets

        ds = datasets.load_dataset(f.repo, split=Path(f.path).name.split("-")[0], revision=f.revision)
        target = staging / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(target))
        return target, "", f"datasets:{ds._fingerprint}"
    announced = (meta.etag or "").strip('"')
    expected = f.sha256 or (announced if len(announced) == 64 else "")
    path = hf_hub_download(f.repo, f.path, repo_type="dataset", revision=f.revision, local_dir=staging, endpoint=endpoint)
    return Path(path), expected, meta.commit_hash or f.revision


def _github_file(f: DataFile, staging: Path) -> tuple[Path, str, str]:
    """A raw GitHub file at a pinned commit, resumed from ``.part`` with a Range request.

    Hand-written because huggingface_hub only downloads from the Hub, and these files live on GitHub only.
    """
    import httpx

    base = os.environ.get(GITHUB_RAW_ENV, GITHUB_RAW).rstrip("/")
    url = f"{base}/{f.repo}/{f.revision}/{f.path}"
    target = staging / f.path
    part = target.with_name(target.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with httpx.stream("GET", url, headers=headers, timeout=60, follow_redirects=True) as resp:
        if resp.status_code not in (200, 206):
            raise OSError(f"{url}: HTTP {resp.status_code}")
        mode = "ab" if resp.status_code == 206 else "wb"  # 200: the server ignored Range, start over
        with open(part, mode) as out:
            for chunk in resp.iter_bytes(1 << 16):
                out.write(chunk)
    part.replace(target)
    return target, f.sha256, f.revision


def _place(f: DataFile, fetched: Path, dest: Path) -> None:
    """Write the fetched file into the mirror layout (as is, gzipped, or converted), atomically."""
    target = dest / f.local
    if f.transform == "gzip":
        io._write_atomically(target, lambda tmp: Path(tmp).write_bytes(gzip.compress(fetched.read_bytes(), mtime=0)))
    elif f.transform == "rewardbench_jsonl":
        import pandas as pd

        frame = pd.read_parquet(fetched)
        cols = ["prompt", "chosen", "chosen_model", "rejected", "rejected_model", "subset", "id"]
        data = frame[[c for c in cols if c in frame.columns]].to_json(orient="records", lines=True, force_ascii=False)
        io._write_atomically(target, lambda tmp: Path(tmp).write_bytes(gzip.compress(data.encode("utf-8"), mtime=0)))
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        io._write_atomically(target, lambda tmp: shutil.copyfile(fetched, tmp))


def fetch_data(dest: str | os.PathLike | None = None, *, datasets: Sequence[str] = DATASETS, progress: bool = True,
               log: Callable[[str], None] = print) -> Path:
    """Fetch the files of ``datasets`` missing from ``dest`` (default: the cache) into the mirror's layout.

    Resumable: files already in ``MANIFEST.json`` with a matching sha256 are skipped, a partial download
    continues where it stopped. Each dataset's license is printed once. Returns ``dest``.

    Raises:
        ChecksumError: a file's bytes do not match its pinned or announced sha256 (the file is removed).
        OSError: the source could not be reached (the message names the file and the URL).
    """
    from tqdm.auto import tqdm

    dest = Path(dest) if dest is not None else cache_dir()
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        raise ValueError(f"Unknown datasets {unknown}; choose from {list(DATASETS)}.")
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / MANIFEST_NAME
    manifest: dict[str, Any] = io.read_json(manifest_path, default={}) or {}
    files = [f for f in MANIFEST if f.dataset in set(datasets)]
    todo = [f for f in files if not ((dest / f.local).is_file() and manifest.get(f.local, {}).get("local_sha256")
                                     == _sha256(dest / f.local))]
    for name in dict.fromkeys(f.dataset for f in todo):
        log(f"{name}: {LICENSES[name]}")
    staging = dest / ".staging"
    for f in tqdm(todo, desc="fetching data", unit="file", disable=not progress or not todo):
        get = _hub_file if f.source == "hub" else _github_file
        try:
            fetched, expected, revision = get(f, staging / f.dataset)
        except Exception as e:  # noqa: BLE001 - network, HTTP and Hub errors all mean "could not fetch this file"
            raise OSError(f"could not fetch {f.local} from {f.source} {f.repo}@{f.revision}:{f.path}: "
                          f"{type(e).__name__}: {e}") from None
        got = _sha256(fetched)
        if expected and got != expected:
            fetched.unlink()
            raise ChecksumError(f"{f.local}: the download from {f.repo}:{f.path} has sha256 {got[:16]}..., expected "
                                f"{expected[:16]}...; removed it. Fetch again; if it repeats, the source changed.")
        _place(f, fetched, dest)
        manifest[f.local] = {"source": f.source, "repo": f.repo, "path": f.path, "revision": revision,
                             "fetched_sha256": got, "local_sha256": _sha256(dest / f.local), "license": LICENSES[f.dataset]}
        io.write_json(manifest, manifest_path)  # after every file: a killed fetch resumes from here
    shutil.rmtree(staging, ignore_errors=True)
    return dest


def describe(data_dir: str | os.PathLike | None = None) -> str:
    """Where each candidate folder is and which datasets it holds (``workbench data where``)."""
    lines = []
    for folder in candidates(data_dir):
        missing = missing_datasets(folder) if folder.is_dir() else []
        state = "absent" if not folder.is_dir() else f"missing {', '.join(missing)}" if missing else "complete"
        lines.append(f"{folder}: {state}")
    return "\n".join(lines)


__all__ = ["DATASETS", "MANIFEST", "ChecksumError", "DataFile", "cache_dir", "candidates", "describe", "ensure_data",
           "fetch_data", "find_data_dir", "missing_datasets"]
