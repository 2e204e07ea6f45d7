"""MkDocs hook: the reference pages written from the code at build time, never by hand.

- The configuration guide: every ``*Config`` dataclass of ``workbench``, each field with its type, its default
  (read from the class itself) and its help (the field's comment in the source, or the class docstring's
  ``Attributes:`` entry). The marker ``<!-- workbench:config-reference -->`` in a page is replaced by it.
- Included files: ``<!-- workbench:include benchmarks/RESULTS.md -->`` is replaced by that file, its headings one
  level down (the results page; it never drifts from the file).
- The CLI guide: ``workbench --help`` and every subcommand's help, from the parser itself
  (marker ``<!-- workbench:cli-reference -->``).
- The API reference: one page per subpackage, a mkdocstrings block per module, added to the nav under
  "API reference".

A class, field or subcommand added to the package shows up in the next build; nothing here lists them.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import io
import os
import re
import textwrap
import tokenize
from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "workbench"
# Lower layers first (pyproject.toml's import-linter contract), so the configuration page reads bottom-up.
LAYERS = ("data", "runs", "models", "llm", "curation", "bench", "scale")
CONFIG_MARKER = "<!-- workbench:config-reference -->"
INCLUDE_MARKER = re.compile(r"<!-- workbench:include ([\w./-]+) -->")
CLI_MARKER = "<!-- workbench:cli-reference -->"
API_NAV = "API reference"


# ---------------------------------------------------------------- configuration


def config_classes() -> list[type]:
    """Every dataclass named ``*Config`` defined in a ``workbench`` module, lower layers first."""
    found = []
    for module_name in _modules():
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if name.endswith("Config") and inspect.isclass(obj) and dataclasses.is_dataclass(obj) \
                    and obj.__module__ == module_name:
                found.append(obj)
    return sorted(found, key=lambda c: (_layer_rank(c.__module__), c.__module__, inspect.getsourcelines(c)[1]))


def field_rows(cls: type) -> list[dict[str, str]]:
    """One row per field of `cls`: name, type (as written), default (the real value) and help text.

    Example: ``field_rows(Stage1Config)[0] == {"name": "iterations", "type": "int", "default": "3",
    "help": "retrieve-and-label rounds after the seed round"}``.
    """
    comments = _field_comments(cls)
    documented = _docstring_attributes(inspect.getdoc(cls) or "")
    annotations = _annotations(cls)
    rows = []
    for f in dataclasses.fields(cls):
        rows.append({"name": f.name, "type": annotations.get(f.name, str(f.type)), "default": _default(f),
                     "help": comments.get(f.name) or documented.get(f.name, "")})
    return rows


def config_reference() -> str:
    """The markdown of the configuration reference: a section per config class with a table of its fields."""
    out = []
    for cls in config_classes():
        path = f"{cls.__module__}.{cls.__qualname__}"
        summary = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
        out += [f"## {cls.__name__}", "",
                f"`{path}` ([API][{path}]). {summary}", "",
                "| field | type | default | help |", "|---|---|---|---|"]
        out += [f"| `{r['name']}` | `{_cell(r['type'])}` | `{_cell(r['default'])}` | {_cell(r['help']) or '—'} |"
                for r in field_rows(cls)]
        out.append("")
    return "\n".join(out)


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__main__":  # runs the CLI when imported
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _layer_rank(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def _class_node(cls: type) -> tuple[ast.ClassDef, list[str]]:
    source = textwrap.dedent(inspect.getsource(cls))
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef))
    return node, source.splitlines()


def _annotations(cls: type) -> dict[str, str]:
    node, _ = _class_node(cls)
    return {n.target.id: ast.unparse(n.annotation) for n in node.body
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}


def _field_comments(cls: type) -> dict[str, str]:
    """The comment a field carries: a block of comment lines just above it, its trailing comment and the comment
    lines indented under that (a continued trailing comment), joined in that order."""
    node, lines = _class_node(cls)
    comments: dict[int, tuple[int, str, bool]] = {}  # 1-based line -> (column, text, aligned continuation?)
    for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = (tok.start[1], tok.string.lstrip("#").strip(), tok.string.startswith("#  "))

    def comment_only(line_no: int) -> bool:
        return line_no in comments and not lines[line_no - 1][:comments[line_no][0]].strip()

    out = {}
    for n in node.body:
        if not (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)):
            continue
        above, line = [], n.lineno - 1
        while line >= 1 and comment_only(line) and comments[line][0] == n.col_offset and not comments[line][2]:
            above.insert(0, comments[line][1])
            line -= 1
        trailing = [comments[n.end_lineno][1]] if n.end_lineno in comments and not comment_only(n.end_lineno) else []
        line = n.end_lineno + 1
        # a trailing comment continues on comment lines indented past the field or aligned with spaces after '#'
        while trailing and comment_only(line) and (comments[line][0] > n.col_offset or comments[line][2]):
            trailing.append(comments[line][1])
            line += 1
        text = " ".join(t for t in above + trailing if t)
        if text:
            out[n.target.id] = text
    return out


def _docstring_attributes(doc: str) -> dict[str, str]:
    """``name: text`` entries of a Google-style ``Attributes:`` section (continuation lines indented deeper)."""
    match = re.search(r"^Attributes:\n((?:[ \t]+.*\n?|\n)+)", doc, re.M)
    if not match:
        return {}
    out, name = {}, None
    body = textwrap.dedent(match.group(1))
    for line in body.splitlines():
        entry = re.match(r"^(\w+)(?: \([^)]*\))?: (.*)", line)
        if entry:
            name, out[entry.group(1)] = entry.group(1), entry.group(2).strip()
        elif name and line.strip():
            out[name] += " " + line.strip()
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            if value == type(value)():
                return f"{type(value).__name__}()"
        except TypeError:  # a nested config with required fields
            pass
    return repr(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------- CLI


def cli_reference() -> str:
    """``workbench --help`` and each subcommand's ``--help`` (nested ones too), as the parser prints them (100 columns)."""
    from workbench.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        out = []
        for command, parser in _commands("workbench", build_parser()):
            out += [f"### {command}", "", "```text", parser.format_help().rstrip(), "```", ""]
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(out)


def _commands(prefix: str, parser) -> list[tuple[str, object]]:
    """The parser and each subcommand's, depth first (``workbench review push`` after ``workbench review``)."""
    found = [(prefix, parser)]
    for action in parser._actions:  # argparse has no public way to reach subparsers
        if action.__class__.__name__ == "_SubParsersAction":
            for name, child in action.choices.items():
                found += _commands(f"{prefix} {name}", child)
    return found


# ---------------------------------------------------------------- API reference


def api_pages() -> dict[str, str]:
    """``reference/<subpackage>.md`` -> its markdown: the subpackage's docstring and one block per module."""
    pages = {"reference/index.md": _api_page("workbench", ["workbench", "workbench.cli"])}
    for layer in LAYERS:
        modules = [m for m in _modules() if m == f"workbench.{layer}" or m.startswith(f"workbench.{layer}.")]
        pages[f"reference/{layer}.md"] = _api_page(f"workbench.{layer}", modules)
    return pages


def _api_page(title: str, modules: list[str]) -> str:
    out = [f"# {title}", ""]
    for module in modules:
        out += [f"::: {module}", ""]
    return "\n".join(out)


# ---------------------------------------------------------------- included files


def include_demoted(path: Path) -> str:
    """The markdown file at `path` with every heading one level deeper (its ``#`` title becomes a section of the
    page that includes it), code blocks untouched. A missing file raises: the build stops."""
    if not path.exists():
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{path} is included by a docs page and does not exist; restore it or drop the include.")
    out, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"^#{1,5} ", line):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


# ---------------------------------------------------------------- hook events


def on_config(config):
    nav = config.nav or []
    for entry in nav:
        if isinstance(entry, dict) and API_NAV in entry:
            entry[API_NAV] = [{"workbench": "reference/index.md"},
                              *({f"workbench.{layer}": f"reference/{layer}.md"} for layer in LAYERS)]
    return config


def on_files(files, config):
    for src_uri, content in api_pages().items():
        files.append(File.generated(config, src_uri, content=content))
    return files


def on_page_markdown(markdown, page, config, files):
    markdown = INCLUDE_MARKER.sub(lambda m: include_demoted(REPO / m.group(1)), markdown)
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, config_reference())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return markdown
