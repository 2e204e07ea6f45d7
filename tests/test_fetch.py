"""Data on demand (issue #18): the real fetch path (huggingface_hub + GitHub raw) against a local server.

`tests/fake_data_server.py` serves the offline mirror's files under the Hub's and GitHub's URL layouts on
127.0.0.1; the fetch runs in a subprocess with ``HF_ENDPOINT`` / ``WORKBENCH_GITHUB_RAW`` pointing at it and
``HF_HUB_OFFLINE`` unset, exactly as a user online would run it (no mock of the library).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_data_server import FakeDataServer, mirror_files

from workbench.bench import data as benchmark_data
from workbench.data import fetch
from workbench.data import files as io

HELPFUL = "/datasets/Anthropic/hh-rlhf/resolve/main/helpful-base/test.jsonl.gz"
ONLINE = "/datasets/Anthropic/hh-rlhf/resolve/main/helpful-online/test.jsonl.gz"


@pytest.fixture(scope="module")
def files(shared_data):
    return mirror_files(shared_data)


def _env(server: FakeDataServer, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")}
    return {**env, "HF_ENDPOINT": server.url, fetch.GITHUB_RAW_ENV: server.url, io.CACHE_ENV: str(cache),
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HOME": str(cache / "hf-home")}


def _fetch(server, cache, *extra, timeout=300):
    return subprocess.run([sys.executable, "-m", "workbench", "data", "fetch", *extra], env=_env(server, cache),
                          capture_output=True, text=True, timeout=timeout)


def test_first_fetch_gives_the_mirror_layout_with_checksums_and_licenses(tmp_path, files, shared_data):
    with FakeDataServer(files) as server:
        out = _fetch(server, tmp_path)
        assert out.returncode == 0, out.stderr
        data = tmp_path / "data"
        assert fetch.missing_datasets(data) == []
        for f in fetch.MANIFEST:  # the same content as the mirror, file by file
            ours, mirror = data / f.local, shared_data / f.local
            if f.transform == "rewardbench_jsonl":
                rows = [json.loads(x) for x in gzip.decompress(ours.read_bytes()).decode().splitlines()]
                ref = [json.loads(x) for x in gzip.decompress(mirror.read_bytes()).decode().splitlines()]
                assert rows == ref
            elif f.local.endswith(".gz"):
                assert gzip.decompress(ours.read_bytes()) == gzip.decompress(mirror.read_bytes()), f.local
            else:
                assert ours.read_bytes() == mirror.read_bytes(), f.local
        manifest = json.loads((data / "MANIFEST.json").read_text())
        assert set(manifest) == {f.local for f in fetch.MANIFEST}
        assert manifest["hh_rlhf/helpful-base/test.jsonl.gz"]["revision"] == "1234567890abcdef1234567890abcdef12345678"
        assert all(len(m["fetched_sha256"]) == 64 for m in manifest.values())
        licenses = [line for line in out.stdout.splitlines() if ", MIT" in line or "ODC-BY" in line]
        assert len(licenses) == 4  # one line per dataset, printed once
        before = len(server.log)
        again = _fetch(server, tmp_path)  # everything there: nothing is downloaded again
        assert again.returncode == 0 and len(server.log) == before
    rb = benchmark_data.load_benchmark("rewardbench", data_dir=data)
    assert len(rb.items) == 2985  # the fetched folder is what the harness reads
    assert io.shared_data_dir(data) == data.resolve()


CODE_FILE = "/THU-KEG/RM-Bench/73c52d7b27b361621361ec959ac6c0eb9bb7a689/data/code_filtered.json"


def _killed_midway(server, cache, path, only):
    """Run a fetch until ``path``'s body stalls half-way, then kill -9 it (files written so far stay)."""
    server.slow[path] = 300_000
    # huggingface_hub writes 10 MB chunks; these files are ~1 MB, so the killed run uses 64 kB chunks to
    # have written something (its own setting; the download code is the library's)
    code = ("import huggingface_hub.constants as c; c.DOWNLOAD_CHUNK_SIZE = 65536; "
            f"from workbench.cli import main; main(['data', 'fetch', '--only', '{only}'])")
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(server, cache),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while server.sent.get(path, 0) < 300_000 and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # let the client write what it received
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    del server.slow[path]


def test_a_killed_fetch_resumes_where_it_stopped(tmp_path, files):
    with FakeDataServer(files) as server:
        _killed_midway(server, tmp_path, ONLINE, "hh_rlhf")
        done_before = set(json.loads((tmp_path / "data" / "MANIFEST.json").read_text()))
        assert "hh_rlhf/helpful-base/test.jsonl.gz" in done_before and "hh_rlhf/helpful-online/test.jsonl.gz" not in done_before
        gets_before = sum(1 for m, p, _ in server.log if m == "GET" and p == HELPFUL)
        out = _fetch(server, tmp_path, "--only", "hh_rlhf")
        assert out.returncode == 0, out.stderr
        assert fetch.missing_datasets(tmp_path / "data", ["hh_rlhf"]) == []
        # finished files are not fetched again; the interrupted Hub file is fetched whole (huggingface_hub >= 1.x
        # downloads into a process-unique temporary file, so a new process does not continue another's bytes)
        assert sum(1 for m, p, _ in server.log if m == "GET" and p == HELPFUL) == gets_before
        assert not (tmp_path / "data" / ".staging").exists()  # partial files are cleaned up
        # a GitHub file continues from its bytes on disk (a Range request)
        _killed_midway(server, tmp_path, CODE_FILE, "rm_bench")
        out = _fetch(server, tmp_path, "--only", "rm_bench")
        assert out.returncode == 0, out.stderr
        ranges = [r for m, p, r in server.log if m == "GET" and p == CODE_FILE and r]
        assert ranges and 0 < int(ranges[-1][6:].split("-")[0]) <= 300_000  # resumed after the bytes it had kept
        assert fetch.missing_datasets(tmp_path / "data", ["rm_bench"]) == []
        assert gzip.decompress((tmp_path / "data" / "rm_bench" / "code_filtered.json.gz").read_bytes()) == files[CODE_FILE]


@pytest.mark.parametrize("path", [HELPFUL, ONLINE])  # pinned sha256 / the sha256 the Hub announces
def test_a_corrupt_download_is_detected_by_checksum_and_removed(tmp_path, files, path):
    with FakeDataServer(files) as server:
        server.corrupt.add(path)
        out = _fetch(server, tmp_path, "--only", "hh_rlhf")
        assert out.returncode == 2 and "sha256" in out.stderr and "removed it" in out.stderr
        local = path.split("/resolve/main/")[1]
        assert not (tmp_path / "data" / "hh_rlhf" / local).exists()


def test_offline_with_nothing_cached_fails_at_once_naming_what_and_where(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "REPO_ROOT", tmp_path / "fresh-clone" / "repo")  # no ../shared beside this clone
    monkeypatch.setenv(io.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(io.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError) as err:
        fetch.ensure_data()
    msg = str(err.value)
    assert time.perf_counter() - t0 < 2
    assert "hh_rlhf, llmbar, rewardbench, rm_bench missing" in msg and "Offline" in msg
    assert str(tmp_path / "cache" / "data") in msg and "python -m workbench data fetch" in msg
    with pytest.raises(FileNotFoundError, match="workbench data fetch"):
        io.shared_data_dir()


def test_here_the_mirror_is_found_without_the_network(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: any network use would fail
    assert fetch.ensure_data(allow_fetch=True) == (io.REPO_ROOT.parent / "shared" / "data").resolve()


def test_a_hub_file_as_the_users_own_pairs_path(tmp_path, files):
    """Notebook 01's `pairs_path` (read with `workbench.data.files.read_pairs`) may name a file of a Hub dataset."""
    with FakeDataServer(files) as server:
        code = ("from workbench.data import demo; "
                "b = demo.build_user_pairs('hf://datasets/Anthropic/hh-rlhf/helpful-base/test.jsonl.gz', "
                "demo.demo_config(smoke=True)); "
                "print(len(b.pairs), sorted(set(b.pairs['split'])), b.pairs['source'].iat[0])")
        out = subprocess.run([sys.executable, "-c", code], env=_env(server, tmp_path), capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr
        n, splits, source = out.stdout.strip().split(" ", 1)[0], out.stdout, out.stdout.split()[-1]
        assert int(n) > 0 and "'gold'" in splits and "'train'" in splits and source == "helpful-base"
        assert any(p == HELPFUL for _, p, _ in server.log)


@pytest.mark.parametrize("offline", [True, False])
def test_a_fresh_clone_without_data_or_network_fails_in_seconds(tmp_path, offline):
    """A copy of the package with no ../shared beside it: offline, or online with nothing reachable."""
    import shutil

    clone = tmp_path / "clone"
    shutil.copytree(io.REPO_ROOT / "workbench", clone / "workbench", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", io.DATA_DIR_ENV)}
    env.update({io.CACHE_ENV: str(tmp_path / "cache"), "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing listens there
                fetch.GITHUB_RAW_ENV: "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1" if offline else "0"})
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "workbench", "data", "ensure"], cwd=clone, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and time.perf_counter() - t0 < 15
    msg = out.stderr
    assert "hh_rlhf, llmbar, rewardbench, rm_bench missing" in msg and str(tmp_path / "cache" / "data") in msg
    assert "python -m workbench data fetch" in msg and ("Offline" in msg if offline else "Fetching failed" in msg)
