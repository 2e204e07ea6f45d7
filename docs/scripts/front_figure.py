"""Render one figure of a run folder to the PNG on the README and the docs' home page.

The figure is drawn by plotly.js (from the installed plotly package, no CDN) in Debian's chromium, driven by
Playwright, and the plot element is screenshotted. Usage, from the repository root:

    .venv/bin/python docs/scripts/front_figure.py runs/teacher/figures/teacher_learning_curves.json \
        docs/assets/front-figure.png
"""

import argparse
import shutil
import tempfile
from pathlib import Path

import plotly
import plotly.io as pio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"


def render_png(figure_json: Path, out: Path, *, width: int = 960, height: int = 520) -> Path:
    """Draw the plotly figure saved at `figure_json` and write it as a PNG of `width` x `height` CSS pixels (2x)."""
    from playwright.sync_api import sync_playwright

    fig = pio.from_json(figure_json.read_text(encoding="utf-8"))
    fig.update_layout(width=width, height=height)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(plotly_js, Path(tmp) / "plotly.min.js")
        page_html = Path(tmp) / "figure.html"
        page_html.write_text(fig.to_html(include_plotlyjs="directory", full_html=True, config={"staticPlot": True}))
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=2)
                page.goto(page_html.as_uri())
                page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=30_000)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.locator(".js-plotly-plot").first.screenshot(path=str(out))
            finally:
                browser.close()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure_json", type=Path, help="a figure saved by run.save_figure: <run>/figures/<name>.json")
    parser.add_argument("out", type=Path, help="the PNG to write, e.g. docs/assets/front-figure.png")
    args = parser.parse_args()
    print(render_png(args.figure_json, args.out))
