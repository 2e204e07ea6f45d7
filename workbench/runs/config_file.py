"""Read a YAML config file strictly, with errors that point at the file and the line.

A syntax error (a tab in the indentation, an unclosed bracket), a key given twice in one mapping (PyYAML keeps the last
one silently), bytes that are not UTF-8 and a value YAML cannot build (``2024-13-01``) are each a one-line
`ValueError`: ``<file>, line <n>, column <c>: <problem>``. Every mapping read is a `LineDict` that remembers the line of
each of its keys, so the checks of what a config *means* (`workbench.runs.runner`) can point at the line too. This module
knows nothing of what a config holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

_MERGE_TAG = "tag:yaml.org,2002:merge"


class LineDict(dict):
    """A mapping read from YAML: ``line`` is where it starts and ``lines`` where each of its own keys is (1-based)."""

    line: int = 0
    lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        """The line of ``key``, else of the mapping itself."""
        return getattr(self, "lines", {}).get(key, self.line)


class _Refused(ConstructorError):
    """A problem found while building the values (not a syntax error): reported without "invalid YAML"."""


class _StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses duplicate keys, keeps key lines and names the node of a value it cannot build."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as e:  # e.g. a timestamp with month 13
            raise _Refused(None, None, f"invalid value {node.value!r} ({e})" if isinstance(node, yaml.ScalarNode)
                           else f"invalid value ({e})", node.start_mark) from None


def _construct_line_dict(loader: _StrictLoader, node: yaml.MappingNode) -> Any:
    data = LineDict()
    data.line = node.start_mark.line + 1
    yield data  # as SafeLoader does: an alias inside the mapping may point back at it
    lines: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue  # keys merged in with "<<" may be overridden; a complex key is checked by construct_mapping
        key = loader.construct_object(key_node)
        if key in lines:
            raise _Refused(None, None, f"duplicate key {key!r} (first given on line {lines[key]}); keep one of them",
                           key_node.start_mark)
        lines[key] = key_node.start_mark.line + 1
    data.update(loader.construct_mapping(node))
    data.lines = lines


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_line_dict)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split("\n")).strip()


def _yaml_message(path: Path, err: yaml.YAMLError, text: str) -> str:
    if isinstance(err, yaml.reader.ReaderError):  # a control character: it carries a position, not a mark
        line = text.count("\n", 0, err.position) + 1
        return f"{path}, line {line}: invalid YAML: unacceptable character #x{err.character:04x} (a control character); remove it."
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
    problem = _one_line(getattr(err, "problem", None) or err)
    if isinstance(err, _Refused):
        return f"{where}: {problem}."
    context = getattr(err, "context", None)
    fix = "; indent with spaces, YAML never allows tabs" if "'\\t'" in problem else ""
    return f"{where}: invalid YAML: {problem}" + (f" ({_one_line(context)})" if context else "") + f"{fix}."


def read_yaml(path: str | Path) -> Any:
    """The YAML document in ``path``; mappings come back as `LineDict`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: one line naming the file, the line (and column) and the problem.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line, start = raw.count(b"\n", 0, e.start) + 1, raw.rfind(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}, line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start - start + 1}); "
                         "save the config as UTF-8.") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as e:
        raise ValueError(_yaml_message(path, e, text)) from None
    except RecursionError:
        raise ValueError(f"{path}: invalid YAML: nested too deeply to read; a config needs a few levels.") from None


def where(path: Path, mapping: Any, key: Any = None) -> str:
    """``"<path>, line <n>"`` for ``key`` of a mapping read by `read_yaml` (just the path when the line is unknown)."""
    line = mapping.line_of(key) if isinstance(mapping, LineDict) else 0
    return f"{path}, line {line}" if line else str(path)
