"""MkDocs hook: pages that join the navigation once they exist.

`mkdocs build --strict` fails on a nav entry whose file is missing and (``validation: omitted_files``) on a page
left out of the nav. A page that is being written elsewhere is listed here with the nav entry it goes after: it
joins the nav in the build after it lands, and neither state of the repository breaks the build.
"""

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
# page -> (nav title, the page it follows)
PENDING = {
    "guides/label-studio.md": ("Label Studio", "guides/review.md"),
}


def on_config(config):
    for page, (title, after) in PENDING.items():
        if (DOCS / page).exists() and not _listed(config.nav, page):
            _insert_after(config.nav, after, {title: page})
    return config


def _listed(nav, page: str) -> bool:
    if isinstance(nav, list):
        return any(_listed(item, page) for item in nav)
    if isinstance(nav, dict):
        return any(_listed(value, page) for value in nav.values())
    return nav == page


def _insert_after(nav, after: str, entry: dict) -> bool:
    """Put `entry` right after the item whose page is `after`, at any depth; False when `after` is not in `nav`."""
    if not isinstance(nav, list):
        return False
    for i, item in enumerate(nav):
        if _listed(item, after) and not isinstance(item, list) and (
                item == after or not isinstance(next(iter(item.values())), list)):
            nav.insert(i + 1, entry)
            return True
        if isinstance(item, dict) and any(_insert_after(value, after, entry) for value in item.values()):
            return True
    return False
