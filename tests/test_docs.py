"""Issue 30: the README is a front page, everything it held lives in docs/, and the docs site builds offline and
strictly (a warning fails it) and works in a real browser.

The site is built once per session, the way `make docs RUN=...` builds it, from a run folder in which notebook 01
was really executed (papermill, smoke size, ~15 s): one tutorial has executed output and plotly figures, the others
render unexecuted. The browser test needs Debian's chromium (`.ci/run` installs it; WORKBENCH_REQUIRE_BROWSER=1
turns a missing browser into a failure); every process it starts is stopped by its PID.
"""

import importlib.util
import logging
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import CHROMIUM, free_port, require_browser

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
EXECUTED = "01_prepare_data"  # the notebook the session's run folder executes

# Every `##` / `###` heading of the README before it became a front page (`git show b750210:README.md`): each must
# still be a heading somewhere in docs/ or in the README.
OLD_README_HEADINGS = [
    "The two commands",
    "Install details",
    "Colab / Kaggle",
    "Notebooks",
    "Runs, the CLI, resuming",
    "Reliability: limits, and what happens at each",
    "Data",
    "The shared real data",
    "The pair schema",
    "Your own data",
    "The demo data",
    "Reward models",
    "Train on a GPU / Colab / Kaggle",
    "Attribute tagging and the LLM judge",
    "Error clusters",
    "Your own LLM endpoint",
    "Stage 1: retrieval and review",
    "Stage 2: consistency curation",
    "Take your curated data elsewhere",
    "The curation experiment",
    "The teacher testbed: a truth where data matters",
    "Scale: million-pair pools, and Ray",
    "Speed",
    "Benchmarks",
    "Tests",
    "Layout",
]
# A script, image or stylesheet fetched from another host, in a page or a stylesheet (the site must work offline).
REMOTE = re.compile(r"""<(?:script|img)[^>]*\ssrc=["']?(?:https?:)?//|<link[^>]*rel=["']?stylesheet[^>]*\shref=["']?(?:https?:)?//"""
                    r"""|@import\s+(?:url\()?["']?(?:https?:)?//|url\(["']?https?://""", re.I)


def _hook(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_hook_{name}", DOCS / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _headings(text: str) -> set[str]:
    """Markdown headings outside fenced code blocks, without their #s."""
    found, fenced = set(), False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^#{1,6} (.+?)\s*#*\s*$", line)):
            found.add(m.group(1).strip())
    return found


# ---------------------------------------------------------------- the README and the pages (fast)


def test_readme_is_a_front_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150, "the README is a front page: at most ~150 lines; the rest goes to docs/"
    for needed in ("make demo", "make test", "make docs", "2507.01352", "## License", "## Citing"):
        assert needed in readme, needed
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert len(figures) == 1 and (REPO / figures[0]).stat().st_size > 10_000  # one real figure, committed
    for link in re.findall(r"\]\(((?:docs|notebooks|benchmarks)/[^)#]+)", readme):
        assert (REPO / link).exists(), f"README links to {link}, which does not exist"


def test_every_old_readme_section_has_a_home():
    headings = _headings((REPO / "README.md").read_text())
    for page in DOCS.rglob("*.md"):
        headings |= _headings(page.read_text())
    missing = [h for h in OLD_README_HEADINGS if h not in headings]
    assert missing == [], f"sections of the old README with no heading in docs/ or the README: {missing}"


def test_configuration_reference_covers_every_config_class_and_field():
    """The generated page against an independent count: every `class ...Config` in the source, every field."""
    import dataclasses

    reference = _hook("reference")
    in_source = {m.group(1) for path in (REPO / "workbench").rglob("*.py")
                 for m in re.finditer(r"^class (\w+Config)\b", path.read_text(), re.M)}
    classes = reference.config_classes()
    assert {c.__name__ for c in classes} == in_source
    page = reference.config_reference()
    for cls in classes:
        section = page.split(f"## {cls.__name__}\n", 1)[1].split("\n## ", 1)[0]
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in section, f"{cls.__name__}.{f.name} missing from the configuration page"
    rows = {(r["name"]): r for r in reference.field_rows(_class("workbench.curation.stage1", "Stage1Config"))}
    assert rows["labels_per_iteration"]["default"] == "150"
    assert rows["labels_per_iteration"]["help"].startswith("review budget per round")  # trailing comment
    assert rows["rank_by"]["help"].startswith('Which retrieved candidates fill')  # the comment block above it
    rows = {r["name"]: r for r in reference.field_rows(_class("workbench.llm.endpoint", "EndpointConfig"))}
    assert rows["timeout_s"]["help"].startswith("Longest one HTTP request may take")  # the docstring's Attributes
    rows = {r["name"]: r for r in reference.field_rows(_class("workbench.curation.teacher_experiment",
                                                                "TeacherExperimentConfig"))}
    assert "joint: the frozen encoder" in rows["student_view"]["help"]  # a trailing comment continued below


def _class(module: str, name: str):
    return getattr(importlib.import_module(module), name)


def test_cli_reference_has_every_subcommand():
    from workbench.cli import build_parser

    text = _hook("reference").cli_reference()

    def walk(prefix, parser):
        for action in parser._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, child in action.choices.items():
                    yield f"{prefix} {name}"
                    yield from walk(f"{prefix} {name}", child)

    commands = list(walk("workbench", build_parser()))
    assert len(commands) >= 9
    for command in commands:
        assert f"### {command}\n" in text and f"usage: {command}" in text, command


def test_the_offline_check_names_each_remote_fetch(tmp_path, caplog):
    """The build's own check (docs/hooks/tutorials.py): a CDN script, a remote stylesheet, image or font each warn
    (and a warning fails `mkdocs build --strict`); local files, plain links and a canonical address do not."""
    tutorials = _hook("tutorials")
    (tmp_path / "page.html").write_text(
        '<script src="https://cdn.example.org/x.js"></script><link rel="stylesheet" href="//fonts.example.org/a.css">'
        '<img src="https://example.org/badge.svg"><script src="../assets/plotly.min.js"></script>'
        '<a href="https://colab.research.google.com/x">Open in Colab</a><link rel="canonical" href="https://x.org/a/">')
    (tmp_path / "style.css").write_text('@font-face { src: url("https://fonts.example.org/f.woff2") }')
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.tutorials"):
        tutorials.on_post_build(SimpleNamespace(site_dir=str(tmp_path)))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 4 and sum("page.html" in w for w in warned) == 3 and "style.css" in warned[-1]


def test_an_included_file_becomes_sections_of_its_page(tmp_path):
    """The results page includes benchmarks/RESULTS.md at build time: its headings one level down, code untouched."""
    from mkdocs.exceptions import PluginError

    reference = _hook("reference")
    (tmp_path / "r.md").write_text("# Title\ntext\n```bash\n# a shell comment\n```\n## Part\n")
    assert reference.include_demoted(tmp_path / "r.md") == "## Title\ntext\n```bash\n# a shell comment\n```\n### Part"
    with pytest.raises(PluginError, match="does not exist"):
        reference.include_demoted(tmp_path / "gone.md")
    assert "<!-- workbench:include benchmarks/RESULTS.md -->" in (DOCS / "results.md").read_text()


def test_a_missing_run_folder_is_one_clear_error(monkeypatch, tmp_path):
    from mkdocs.exceptions import PluginError

    monkeypatch.setenv("WORKBENCH_DOCS_RUN", str(tmp_path / "nowhere"))
    with pytest.raises(PluginError, match="has no notebooks/ folder.*make demo writes runs/demo"):
        _hook("tutorials").run_folder()


# ---------------------------------------------------------------- the built site (slow: a notebook run + a build)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """`make docs RUN=<run>` into a temporary folder, the run holding notebook 01 executed by papermill."""
    import papermill

    root = tmp_path_factory.mktemp("docs")
    run = root / "run"
    (run / "notebooks").mkdir(parents=True)
    papermill.execute_notebook(str(REPO / "notebooks" / f"{EXECUTED}.ipynb"), str(run / "notebooks" / f"{EXECUTED}.ipynb"),
                               parameters={"run_dir": str(run), "smoke": True}, kernel_name="python3",
                               cwd=str(REPO / "notebooks"), progress_bar=False)
    env = {**os.environ, "WORKBENCH_DOCS_RUN": str(run), "WORKBENCH_DOCS_CACHE": str(root / "cache"),
           "NO_MKDOCS_2_WARNING": "1"}
    t0 = time.time()
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(root / "site")], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=600)
    return SimpleNamespace(site=root / "site", rc=out.returncode, log=out.stdout + out.stderr, seconds=time.time() - t0)


@pytest.mark.slow
def test_docs_build_strict_and_offline(built_site):
    assert built_site.rc == 0, built_site.log[-4000:]
    assert "WARNING" not in built_site.log, built_site.log[-4000:]
    site = built_site.site
    for name in (p.stem for p in (REPO / "notebooks").glob("*.ipynb")):
        page = (site / "tutorials" / name / "index.html").read_text()
        if name == EXECUTED:
            assert "Executed output" in page and page.count("Plotly.newPlot(") >= 3  # its three figures
        else:
            assert "Unexecuted notebook" in page and "make docs RUN=runs/demo" in page
    assert (site / "assets" / "javascripts" / "plotly.min.js").stat().st_size > 1_000_000  # bundled, not a CDN
    config_page = (site / "guides" / "configuration" / "index.html").read_text()
    assert "labels_per_iteration" in config_page and "TeacherExperimentConfig" in config_page
    results = (site / "results" / "index.html").read_text()
    first_table_row = next(line for line in (REPO / "benchmarks" / "RESULTS.md").read_text().splitlines()
                           if line.startswith("| ") and "---" not in line)
    assert first_table_row.split("|")[1].strip().strip("`*") in results  # RESULTS.md included at build time
    for layer in ("data", "runs", "models", "llm", "curation", "bench", "scale"):
        assert f'id="workbench.{layer}"' in (site / "reference" / layer / "index.html").read_text()
    remote = [(p.name, m.group(0)) for p in [*site.rglob("*.html"), *site.rglob("*.css")]
              for m in REMOTE.finditer(p.read_text(errors="replace"))]
    assert remote == []




def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_the_site_in_a_browser(built_site, tmp_path):
    """Home page, a tutorial's interactive plotly figure, an API page and the search box, in headless chromium,
    with no console error and no request leaving 127.0.0.1."""
    require_browser()
    assert built_site.rc == 0, built_site.log[-4000:]
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(built_site.site)], stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "server.log", "wb"))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        errors, remote = [], []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
                page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                           else (remote.append(route.request.url), route.abort()))

                page.goto(base + "/")
                assert page.locator("h1").first.inner_text().startswith("RM Curation Workbench")
                figure = page.locator("img[src$='front-figure.png']")
                assert figure.evaluate("img => img.complete && img.naturalWidth") > 500

                page.goto(f"{base}/tutorials/{EXECUTED}/")
                plots = page.locator(".js-plotly-plot")
                plots.first.locator("svg.main-svg").first.wait_for(timeout=30_000)
                assert plots.count() >= 3 and page.evaluate("() => typeof window.Plotly.newPlot") == "function"
                first = plots.first
                assert first.locator(".modebar-container").count() == 1 and first.locator("g.trace").count() >= 1
                first.scroll_into_view_if_needed()
                first.locator(".legend .traces .legendtoggle").first.click()  # interactive: a click hides a trace
                page.wait_for_function("el => el.data[0].visible === 'legendonly'", arg=first.element_handle(),
                                       timeout=10_000)
                page.screenshot(path=str(tmp_path / "tutorial.png"))

                page.goto(f"{base}/reference/curation/")
                stage1 = page.locator('[id="workbench.curation.stage1.Stage1Config"]')
                assert stage1.count() == 1 and "Stage1Config" in stage1.inner_text()

                page.goto(base + "/")
                page.locator("label.md-search__icon, .md-search__input").first.click()
                page.locator("input.md-search__input").fill("labels_per_iteration")
                hits = page.locator(".md-search-result__item a")
                hits.first.wait_for(timeout=30_000)
                targets = [hits.nth(i).get_attribute("href") for i in range(hits.count())]
                assert any("guides/configuration/" in t for t in targets), targets
                page.screenshot(path=str(tmp_path / "search.png"))
            finally:
                browser.close()
        assert errors == [], errors
        assert remote == [], f"the site fetched from another host: {remote}"
    finally:
        _stop(server)
