"""A real browser: JupyterLab on 127.0.0.1, the review notebook in headless Chromium, one click on Flip,
and the decision in SQLite.

Needs Debian's chromium (`.ci/run` installs it and sets WORKBENCH_REQUIRE_BROWSER=1, which turns a missing
browser into a failure instead of a skip). Every process the test starts is stopped by its PID.
"""

import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import CHROMIUM, free_port, make_pairs, require_browser

from workbench.curation.review import ReviewStore
from workbench.data import files as io
from workbench.data.splits import assign_splits

REPO = Path(__file__).resolve().parents[1]
REVIEWER = "browser-tester"

pytestmark = pytest.mark.slow




def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _stop(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + 10
    for pid in pids:
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            try:  # reap our own child
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _prepare(root: Path) -> Path:
    """An empty folder gets a tiny run (pairs with splits) and the review notebook with its parameters set."""
    run_dir = root / "run"
    run_dir.mkdir()
    pairs = assign_splits(make_pairs(60), fractions={"train": 0.6, "gold": 0.2, "test": 0.2}, seed=0)
    io.write_pairs(pairs, run_dir / "pairs.parquet")
    from papermill.iorw import load_notebook_node, write_ipynb
    from papermill.parameterize import parameterize_notebook

    node = load_notebook_node(str(REPO / "notebooks" / "04b_review_by_hand.ipynb"))
    node = parameterize_notebook(node, {"run_dir": str(run_dir), "smoke": True, "reviewer": REVIEWER, "seed_size": 5})
    write_ipynb(node, str(root / "review.ipynb"))
    return run_dir


def test_clicking_flip_in_jupyterlab_writes_the_decision(tmp_path):
    require_browser()
    from playwright.sync_api import sync_playwright

    root = tmp_path / "lab"
    root.mkdir()
    run_dir = _prepare(root)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "wb"))
    started = [server.pid]
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            if server.poll() is not None:
                break
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("JupyterLab did not start: " + (tmp_path / "lab.log").read_text()[-2000:])
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{base}/lab/tree/review.ipynb?token={token}")
                page.locator(".jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=60_000)
                page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).wait_for(timeout=60_000)
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
                flip = page.locator(".wb-review button", has_text="Flip (f)")
                try:
                    flip.wait_for(state="attached", timeout=180_000)
                except Exception:
                    page.screenshot(path=str(tmp_path / "timeout.png"), full_page=True)
                    raise
                flip.scroll_into_view_if_needed()  # run-all leaves the view at the last cell
                first_pair = page.locator(".wb-review code").first.inner_text()
                flip.click()
                page.screenshot(path=str(tmp_path / "review.png"))
                events = None
                for _ in range(100):
                    store = ReviewStore(run_dir / "review.sqlite")
                    events = store.events()
                    store.close()
                    if len(events):
                        break
                    time.sleep(0.2)
            finally:
                browser.close()
        assert events is not None and len(events) == 1, (tmp_path / "lab.log").read_text()[-2000:]
        assert events.loc[0, ["pair_id", "decision", "reviewer", "kind"]].tolist() == [first_pair, "flip", REVIEWER, "human"]
    finally:
        _stop([*_children(server.pid), *started])
    assert server.poll() is not None
