"""Durable stores of a run: reward-model scores, text embeddings, and per-item results (tags, judge votes).

Each survives a crash or Ctrl-C (atomic file swaps; SQLite in WAL mode with synchronous=FULL), so an interrupted
notebook resumes where it stopped instead of repeating model calls or LLM requests.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from workbench.data.files import read_json, write_array_atomic, write_frame, write_json
from workbench.data.pairs import now_iso
from workbench.data.schema import SCORE_COLUMNS
from workbench.runs.folder import Run


class ScoreCache:
    """Reward-model scores of a run, one parquet per (model fingerprint, settings) key.

    Re-running a notebook with the same model and settings reads scores back instead of re-scoring.
    """

    def __init__(self, run: Run, key: str):
        self.path = run.file("scores", f"{key}.parquet")

    def get(self, pair_ids: Iterable[str]) -> pd.DataFrame:
        if not self.path.exists():
            return pd.DataFrame(columns=list(SCORE_COLUMNS))
        table = pd.read_parquet(self.path)
        return table[table["pair_id"].isin(set(pair_ids))].reset_index(drop=True)

    def put(self, scores: pd.DataFrame) -> None:
        old = pd.read_parquet(self.path) if self.path.exists() else None
        new = scores if old is None else pd.concat([old[~old["pair_id"].isin(set(scores["pair_id"]))], scores])
        write_frame(new, self.path)


class EmbeddingCache:
    """Text embeddings of a run for one embedder: float16 vectors on disk (memory-mapped) + their keys.

    Keys are content hashes of the texts, so a prompt shared by many pairs is embedded once.
    """

    def __init__(self, run: Run, embedder_key: str):
        self.folder = run.path / "embeddings" / embedder_key
        self.folder.mkdir(parents=True, exist_ok=True)
        self._keys_path, self._vec_path = self.folder / "keys.json", self.folder / "vectors.npy"

    def _load(self) -> tuple[list[str], Any]:
        if not self._vec_path.exists():
            return [], None
        keys = read_json(self._keys_path, default=[])
        # A crash between the two writes leaves extra vector rows without keys: ignore them.
        return keys, np.load(self._vec_path, mmap_mode="r")[: len(keys)]

    def lookup(self, keys: list[str]) -> tuple[dict[str, int], Any]:
        """Row of each cached key, and the memory-mapped (n, dim) float16 array."""
        stored, vectors = self._load()
        index = {k: i for i, k in enumerate(stored)}
        return {k: index[k] for k in keys if k in index}, vectors

    def add(self, keys: list[str], vectors: Any) -> None:
        """Append new vectors (written to a temp file, then swapped in; keys written last)."""
        stored, old = self._load()
        merged = np.asarray(vectors, dtype=np.float16) if old is None else np.concatenate([np.asarray(old), np.asarray(vectors, dtype=np.float16)])

        write_array_atomic(merged, self._vec_path)
        write_json(stored + list(keys), self._keys_path)


def connect_sqlite(path: str | os.PathLike) -> Any:
    """A SQLite connection for durable stores: WAL (readers never block the writer, several processes may
    write), synchronous=FULL (a committed transaction survives a crash or power loss), 30 s busy wait."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
    except (PermissionError, sqlite3.OperationalError) as e:
        raise PermissionError(f"{path}: cannot open this store for writing ({e}); the folder {path.parent} must be "
                              "writable (a copy of the run in a writable folder works).") from None
    db.execute("PRAGMA synchronous=FULL")
    return db


class ResultStore:
    """Durable per-item results (tags, judge votes) in one SQLite file of the run, keyed by (fingerprint, key).

    WAL journal with synchronous=FULL: every committed batch survives a crash or Ctrl-C, so an
    interrupted tagging run resumes without repeating a single request. Values are JSON.
    """

    def __init__(self, path: str | os.PathLike, table: str):
        if not table.isidentifier():
            raise ValueError(f"table name must be an identifier, got {table!r}.")
        self.path, self.table = Path(path), table
        self._db = connect_sqlite(self.path)
        self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (fingerprint TEXT NOT NULL, key TEXT NOT NULL, "
                         "ok INTEGER NOT NULL, value TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (fingerprint, key))")
        self._db.commit()

    def get(self, fingerprint: str, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored values (with an ``ok`` flag) for the keys present; missing keys are absent."""
        keys = list(keys)
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i: i + 500]
            rows = self._db.execute(f"SELECT key, ok, value FROM {self.table} WHERE fingerprint = ? AND key IN "
                                    f"({','.join('?' * len(chunk))})", [fingerprint, *chunk]).fetchall()
            out.update({k: {**json.loads(v), "ok": bool(ok)} for k, ok, v in rows})
        return out

    def put(self, fingerprint: str, items: Iterable[tuple[str, bool, dict[str, Any]]]) -> None:
        """Insert or replace ``(key, ok, value)`` items in one transaction."""
        stamp = now_iso()
        with self._db:
            self._db.executemany(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?, ?, ?)",
                                 [(fingerprint, k, int(ok), json.dumps(v, ensure_ascii=False, default=str), stamp) for k, ok, v in items])

    def process(self, fingerprint: str, frame: pd.DataFrame, work: Any, *, chunk_size: int, redo_failed: bool = False,
                desc: str = "", progress: bool = True) -> dict[str, dict[str, Any]]:
        """Run ``work(chunk) -> [(ok, value), ...]`` on the rows of ``frame`` whose ``pair_id`` has no stored
        result yet (or a failed one with ``redo_failed``), committing after every chunk; return every
        row's stored value (with ``ok``) by pair_id. The resumable loop behind tagging and judging."""
        ids = frame["pair_id"].tolist()
        done = self.get(fingerprint, ids)
        todo = frame[[pid not in done or (redo_failed and not done[pid]["ok"]) for pid in ids]]
        bar = tqdm(total=len(todo), desc=desc, unit="pair", disable=not progress or not len(todo))
        for start in range(0, len(todo), chunk_size):
            chunk = todo.iloc[start: start + chunk_size]
            items = [(pid, ok, value) for pid, (ok, value) in zip(chunk["pair_id"], work(chunk))]
            self.put(fingerprint, items)
            done.update({pid: {**value, "ok": ok} for pid, ok, value in items})
            bar.update(len(chunk))
        bar.close()
        return done

    def count(self, fingerprint: str) -> int:
        return self._db.execute(f"SELECT COUNT(*) FROM {self.table} WHERE fingerprint = ?", [fingerprint]).fetchone()[0]

    def close(self) -> None:
        self._db.close()
