"""Files and the Hub: reading pair files of every format, the shared data folder, atomic writes of pairs, frames,
arrays and JSON.

The rows of a local file come from `workbench.data.records` (`iter_records`, `file_format`, re-exported here); this
module adds the Hub, renaming, the reject file and the writers.

Writes are atomic (temp file + ``os.replace``) so a crash or Ctrl-C never leaves a half-written parquet, manifest
or config behind. A run folder's named artifacts and report items are `workbench.runs.folder.Run`'s; its durable
stores (scores, embeddings, tags, judge votes, reviews) are `workbench.runs.stores` and `workbench.curation.review`.
"""

from __future__ import annotations

import dataclasses
import gzip
import io as _io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.data.pairs import ReadReport, records_to_pairs
from workbench.data.records import file_format, iter_records, read_bytes
from workbench.data.schema import ARROW_SCHEMA, PAIR_COLUMNS, PairFrame

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR_ENV = "WORKBENCH_DATA_DIR"
_GENERIC_STEMS = {"test", "train", "validation", "dev", "dataset", "data"}


# ---------------------------------------------------------------- shared data


CACHE_ENV = "WORKBENCH_CACHE_DIR"  # overrides the platformdirs cache root (data goes to <it>/data)


def cache_dir() -> Path:
    """The user cache's data folder: ``$WORKBENCH_CACHE_DIR/data``, else platformdirs' cache for rm-workbench."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "data"
    import platformdirs

    return Path(platformdirs.user_cache_dir("rm-workbench")) / "data"


def hub_offline() -> bool:
    """True when the Hugging Face libraries are told to stay offline (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE``)."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def data_dir_candidates(path: str | os.PathLike | None = None) -> list[Path]:
    """Where the data is looked for, in order: ``path``; else ``$WORKBENCH_DATA_DIR``, ``<repo>/../shared/data``
    (the offline mirror), the user cache (`cache_dir`, where ``workbench data fetch`` puts it)."""
    if path:
        return [Path(path) if Path(path).is_absolute() else REPO_ROOT / path]
    out = []
    if os.environ.get(DATA_DIR_ENV):
        env = Path(os.environ[DATA_DIR_ENV])
        env = env if env.is_absolute() else REPO_ROOT / env  # notebooks run in notebooks/: resolve as before
        if not env.is_dir():  # a typo must not fall through silently to another copy of the data
            raise FileNotFoundError(f"${DATA_DIR_ENV}={env} is not a folder; point it at a data folder (with hh_rlhf/, "
                                    "rewardbench/, ...) or unset it to use the mirror or the user cache.")
        out.append(env)
    return out + [REPO_ROOT.parent / "shared" / "data", cache_dir()]


def shared_data_dir(path: str | os.PathLike | None = None) -> Path:
    """Locate the real data: the first of `data_dir_candidates` holding ``hh_rlhf/``.

    Raises:
        FileNotFoundError: saying where it looked and the command that fetches the data.
    """
    candidates = data_dir_candidates(path)
    for c in candidates:
        if (c / "hh_rlhf").is_dir():
            return c.resolve()
    raise FileNotFoundError(
        f"Shared data not found at {[str(c) for c in candidates]} (expected a folder with hh_rlhf/, "
        f"rewardbench/, llmbar/, rm_bench/). Fetch it once with `python -m workbench data fetch` (into "
        f"{cache_dir()}), set ${DATA_DIR_ENV}, or pass data_dir=... (the notebooks' `data_dir` parameter)."
    )


# ---------------------------------------------------------------- reading records


def _open_bytes(path: Path) -> bytes:
    """The whole file, decompressed when it ends in ``.gz``; a damaged ``.gz`` is an error (for files we wrote)."""
    data, damage = read_bytes(path)
    if damage:
        raise ValueError(f"{path}: {damage}; re-create the file with the step that wrote it.")
    return data


def _renamed(records: Iterable[tuple[int, Any]], columns: Mapping[str, str]) -> Iterator[tuple[int, Any]]:
    for row, rec in records:
        if isinstance(rec, Mapping):
            rec = {columns.get(k, k): v for k, v in rec.items()}
        yield row, rec


def _hub_records(dataset_id: str, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        import datasets

        ds = datasets.load_dataset(dataset_id, split=split)
    except Exception as e:  # noqa: BLE001 - many network/hub error types; all mean "cannot load"
        raise FileNotFoundError(
            f"{dataset_id!r} is not a local file and could not be loaded from the Hugging Face Hub "
            f"(split={split!r}): {type(e).__name__}: {e}. Offline? Download it once and pass the local path."
        ) from None
    yield from enumerate(ds, start=1)


HF_FILE_PREFIX = "hf://datasets/"


def hub_file(uri: str) -> Path:
    """``hf://datasets/<org>/<name>/<path in repo>[@revision]``: the file, downloaded once into the Hugging Face
    cache by ``huggingface_hub`` (resumable; honours ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE``)."""
    from huggingface_hub import hf_hub_download

    spec = uri.removeprefix(HF_FILE_PREFIX)
    spec, _, revision = spec.partition("@")
    parts = spec.split("/")
    if len(parts) < 3:
        raise ValueError(f"{uri}: expected hf://datasets/<org>/<name>/<file in the repository>, e.g. "
                         "hf://datasets/Anthropic/hh-rlhf/helpful-base/test.jsonl.gz.")
    try:
        return Path(hf_hub_download("/".join(parts[:2]), "/".join(parts[2:]), repo_type="dataset",
                                    revision=revision or None, endpoint=os.environ.get("HF_ENDPOINT") or None))
    except Exception as e:  # noqa: BLE001 - offline, missing file, network: all mean "cannot read this file"
        raise FileNotFoundError(f"{uri}: could not be fetched from the Hugging Face Hub ({type(e).__name__}: {e}). "
                                "Offline? Download it once and pass the local path.") from None


def read_pairs(
    path_or_id: str | os.PathLike,
    *,
    fmt: str = "auto",
    source: str | None = None,
    strict: bool = True,
    columns: Mapping[str, str] | None = None,
    keep: Iterable[str] = (),
    hub_split: str = "train",
    rejects_path: str | os.PathLike | None = None,
) -> tuple[PairFrame, ReadReport]:
    """Read a pair file (JSONL / JSON / parquet / CSV / TSV, optionally .gz) or a Hub dataset id.

    Args:
        path_or_id: local path, ``"org/name"`` of a Hugging Face dataset (its ``hub_split``, through
            ``datasets``), or one file of a Hub dataset repository, ``hf://datasets/org/name/path/in/repo``
            (through ``huggingface_hub``; needs network once).
        fmt: ``"auto"`` or one of `workbench.data.pairs.PARSERS` (``hh``, ``conversational``, ...).
        source: value of the ``source`` column; defaults to the file name without suffixes.
        strict: raise on the first bad row (naming file, row, field); else collect rejects.
        columns: rename fields first, e.g. ``{"question": "prompt", "response_A": "chosen"}``.
        keep: extra fields copied into columns.
        hub_split: split to load when ``path_or_id`` is a Hub id.
        rejects_path: with ``strict=False``, write the rejected rows and reasons here (JSONL).

    Returns:
        ``(pairs, report)``; ``report.summary()`` gives counts and reject reasons.

    Example: ``pairs, rep = read_pairs("hh/test.jsonl.gz", strict=False); print(rep.summary())``.
    """
    if isinstance(path_or_id, str) and path_or_id.startswith(HF_FILE_PREFIX):
        local = hub_file(path_or_id)
        pairs, report = read_pairs(local, fmt=fmt, source=source or path_or_id.split("/")[-2], strict=strict,
                                   columns=columns, keep=keep, rejects_path=rejects_path)
        report.where = path_or_id
        return pairs, report
    path = Path(path_or_id)
    if path.exists():
        where, records = str(path), iter_records(path)
        stem = path.name.split(".")[0]
        # hh_rlhf/helpful-base/test.jsonl.gz -> "helpful-base": generic file names say less than their folder
        default_source = path.parent.name if stem in _GENERIC_STEMS else stem
    elif isinstance(path_or_id, str) and path_or_id.count("/") == 1 and not path.suffix:
        where, records, default_source = f"hf://{path_or_id}[{hub_split}]", _hub_records(path_or_id, hub_split), path_or_id
    else:
        raise FileNotFoundError(f"{path}: no such file (and not a Hugging Face dataset id of the form 'org/name').")
    if columns:
        records = _renamed(records, columns)
    pairs, report = records_to_pairs(records, where=where, source=source or default_source, fmt=fmt, strict=strict, keep=keep)
    if rejects_path is not None:
        write_rejects([report], rejects_path)
    return pairs, report


def write_rejects(reports: Iterable[ReadReport], path: str | os.PathLike) -> Path:
    """Write every rejected row (where, row, field, reason) as JSONL; an empty file when none."""
    lines = [json.dumps(r, ensure_ascii=False) for rep in reports for r in rep.rejects]
    return write_text_atomic(Path(path), "\n".join(lines) + ("\n" if lines else ""))


# ---------------------------------------------------------------- writing / loading pairs


def _write_atomically(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, then swap it in: readers never see half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except PermissionError:
        raise PermissionError(f"{path}: cannot write here (the folder {path.parent} is read-only for this user); "
                              "choose another run_dir / output path.") from None
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes 0600 files; give the result the mode any new file gets here (the umask), so colleagues
        # invited to review a run can read it as they can read everything else in the folder
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        os.unlink(tmp)
        raise
    os.replace(tmp, path)
    return path


def write_folder_atomic(folder: Path, write: Callable[[Path], Any], *, marker: str) -> Path:
    """Call ``write(tmp_folder)`` on a temp folder beside ``folder``, then rename it into place: a crash leaves no
    half-written folder. When another process renamed its own copy first (``folder/marker`` exists), that one is kept."""
    import shutil

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        write(tmp)
        os.replace(tmp, folder)
    except OSError:
        if not (folder / marker).exists():  # not "another process finished first"
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _umask() -> int:
    """The process umask: from /proc on Linux (no side effect), else by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> Path:
    """Atomic, fsynced text write (configs, manifests, reports)."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return _write_atomically(path, write)


def _to_arrow(pairs: PairFrame) -> pa.Table:
    table = pa.Table.from_pandas(pairs, preserve_index=False)
    for name in PAIR_COLUMNS:
        if name in table.column_names:
            i = table.column_names.index(name)
            table = table.set_column(i, ARROW_SCHEMA.field(name), table.column(name).cast(ARROW_SCHEMA.field(name).type))
    return table


def write_pairs(pairs: PairFrame, path: str | os.PathLike) -> Path:
    """Write pairs to ``.parquet`` (Hugging Face `datasets` can load it) or ``.jsonl[.gz]``, atomically."""
    path = Path(path)
    kind = file_format(path)
    if kind == ".parquet":
        return _write_atomically(path, lambda tmp: pq.write_table(_to_arrow(pairs), tmp))
    if kind == ".jsonl":
        data = pairs.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
        return _write_atomically(path, lambda tmp: Path(tmp).write_bytes(gzip.compress(data) if path.suffix == ".gz" else data))
    raise ValueError(f"{path}: write pairs as .parquet or .jsonl (optionally .gz), not {kind}.")


def load_pairs(path: str | os.PathLike) -> PairFrame:
    """Load pairs written by `write_pairs` (prompt back as plain lists of dicts)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no pairs file here; run the step that writes it first (see README).")
    if file_format(path) == ".parquet":
        pairs = pq.read_table(path).to_pandas()
    else:
        pairs = pd.read_json(_io.BytesIO(_open_bytes(path)), orient="records", lines=True, dtype=False)
    pairs["prompt"] = [list(p) for p in pairs["prompt"]]
    return pairs


def _jsonable(config: Any) -> Any:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return config


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Atomic JSON write (dataclasses become dicts)."""
    return write_text_atomic(Path(path), json.dumps(_jsonable(obj), indent=2, default=str, ensure_ascii=False))


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read JSON, or return ``default`` when the file does not exist."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default




def write_array_atomic(array: Any, path: str | os.PathLike) -> Path:
    """Atomic ``.npy`` write (readable memory-mapped with ``np.load(path, mmap_mode="r")``)."""
    import numpy as np

    def save(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a bare path
            np.save(f, array)

    return _write_atomically(path, save)


def write_frame(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Atomic parquet write of any frame (tags, scores, judgments)."""
    return _write_atomically(path, lambda tmp: frame.to_parquet(tmp, index=False))


def read_frame(path: str | os.PathLike) -> pd.DataFrame:
    """Read a parquet frame written by `write_frame`, with a clear error when a step has not run yet."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run the notebook that writes it first (see README).")
    return pd.read_parquet(path)
