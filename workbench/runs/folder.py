"""A run folder ``runs/<name>/``: the typed artifacts the notebooks pass to each other, and the report items.

Notebooks never build file names: they save and load artifacts by name through `Run` (``run.save("tags", tags)``,
``run.load("tags")``), so the folder layout lives here once, and a missing artifact says which notebook writes it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.data.files import (_jsonable, load_pairs, read_frame, read_json, write_frame, write_json, write_pairs,
                                  write_text_atomic)
from workbench.data.schema import PairFrame


@dataclass(frozen=True)
class Artifact:
    """One named output of a pipeline step: its file in the run folder, its kind, and the notebook that writes it."""

    file: str
    kind: str  # "pairs" (validated pair frame) | "frame" (any parquet frame) | "json"
    written_by: str


ARTIFACTS: dict[str, Artifact] = {
    "pairs": Artifact("pairs.parquet", "pairs", "01_prepare_data"),
    "tags": Artifact("tags.parquet", "frame", "02_tag_attributes"),
    "error_map": Artifact("error_map.parquet", "frame", "03_error_clusters"),
    "error_cluster_selection": Artifact("error_cluster_selection.json", "json", "03_error_clusters"),
    "stage1_labelled": Artifact("stage1_labelled.parquet", "pairs", "04_retrieval_and_review"),
    "stage1_pool": Artifact("stage1_pool.parquet", "pairs", "04_retrieval_and_review"),
    "stage1_best": Artifact("stage1_best.json", "json", "04_retrieval_and_review"),
    "stage2_decisions": Artifact("stage2_decisions.parquet", "frame", "05_stage2_curation"),
    "curated_pool": Artifact("curated_pool.parquet", "pairs", "05_stage2_curation"),
    "curated": Artifact("curated.parquet", "pairs", "05_stage2_curation"),
    "benchmark_table": Artifact("benchmark_table.parquet", "frame", "07_benchmarks"),
    "benchmark_examples": Artifact("benchmark_examples.parquet", "frame", "07_benchmarks"),
    "scale_curated": Artifact("scale_curated.parquet", "pairs", "09_scale"),
}
MANIFEST = "report_items.json"
_MISSING = object()


def _artifact(name: str) -> Artifact:
    if name not in ARTIFACTS:
        raise KeyError(f"unknown artifact {name!r}; known: {', '.join(ARTIFACTS)}")
    return ARTIFACTS[name]


@dataclass(frozen=True)
class Run:
    """A run folder ``runs/<name>/``: everything a run produces lives under `path`."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, *parts: str) -> Path:
        """A path inside the run, with its parent folders created."""
        p = self.path.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    # ------------------------------------------------------------ artifacts

    def path_of(self, name: str) -> Path:
        """Where artifact ``name`` lives (for writers that stream into it, e.g. `workbench.scale.write_training_set`)."""
        return self.file(_artifact(name).file)

    def has(self, name: str) -> bool:
        """Whether the step that writes artifact ``name`` has run in this folder."""
        return (self.path / _artifact(name).file).exists()

    def save(self, name: str, value: PairFrame | pd.DataFrame | Mapping[str, Any]) -> Path:
        """Write artifact ``name`` atomically (pairs are schema-checked on write)."""
        art = _artifact(name)
        path = self.file(art.file)
        if art.kind == "pairs":
            return write_pairs(value, path)
        if art.kind == "frame":
            return write_frame(value, path)
        return write_json(value, path)

    def load(self, name: str, default: Any = _MISSING) -> Any:
        """Read artifact ``name``; without ``default``, a missing one names the notebook that writes it."""
        art = _artifact(name)
        path = self.path / art.file
        if not path.exists():
            if default is not _MISSING:
                return default
            raise FileNotFoundError(f"{path}: artifact {name!r} not found; run notebooks/{art.written_by}.ipynb "
                                    f"on run folder {self.path} first (see README).")
        if art.kind == "pairs":
            return load_pairs(path)
        return read_frame(path) if art.kind == "frame" else read_json(path)

    # ------------------------------------------------------------ report items

    def _register(self, name: str, item: dict[str, Any]) -> None:
        """Record a report item; re-saving the same name replaces it in place (re-runs do not duplicate)."""
        manifest = read_json(self.path / MANIFEST, default={"items": []})
        items = [i for i in manifest["items"] if i["name"] != name]
        position = next((k for k, i in enumerate(manifest["items"]) if i["name"] == name), len(items))
        items.insert(position, {"name": name, **item})
        write_json({"items": items}, self.path / MANIFEST)

    def report_items(self) -> list[dict[str, Any]]:
        """The figures, tables and metrics saved for the report, in the order they were first saved."""
        return read_json(self.path / MANIFEST, default={"items": []})["items"]

    def save_figure(self, fig: Any, name: str, *, title: str = "", caption: str = "", step: str = "") -> Path:
        """Save a plotly figure as standalone HTML (works offline) plus JSON, and list it in the report."""
        html = self.file("figures", f"{name}.html")
        # "directory" writes plotly.min.js once next to the figures: offline, and not 4 MB per figure.
        fig.write_html(str(html), include_plotlyjs="directory", full_html=True)
        write_text_atomic(self.file("figures", f"{name}.json"), fig.to_json())
        self._register(name, {"kind": "figure", "path": f"figures/{name}.json", "title": title or name,
                              "caption": caption, "step": step})
        return html

    def save_table(self, table: pd.DataFrame, name: str, *, title: str = "", caption: str = "", step: str = "",
                   index: bool = True) -> Path:
        """Save a table as CSV and list it in the report (the report shows at most 50 rows)."""
        path = self.file("tables", f"{name}.csv")
        write_text_atomic(path, table.to_csv(index=index))
        self._register(name, {"kind": "table", "path": f"tables/{name}.csv", "title": title or name,
                              "caption": caption, "step": step, "index": index})
        return path

    def save_metrics(self, metrics: Mapping[str, Any], name: str, *, title: str = "", step: str = "") -> Path:
        """Save key numbers (a flat dict) as JSON and list them in the report."""
        path = write_json(dict(metrics), self.file("metrics", f"{name}.json"))
        self._register(name, {"kind": "metrics", "path": f"metrics/{name}.json", "title": title or name,
                              "caption": "", "step": step})
        return path


def start_run(run_dir: str | os.PathLike, config: Any = None, *, step: str = "run") -> Run:
    """Create (or reopen) a run folder and record ``config_<step>.json`` in it."""
    run = Run(Path(run_dir).resolve())
    run.path.mkdir(parents=True, exist_ok=True)
    if config is not None:
        payload = {"step": step, "python": sys.version.split()[0], "config": _jsonable(config)}
        write_text_atomic(run.file(f"config_{step}.json"), json.dumps(payload, indent=2, default=str))
    return run
