"""YAML loading that remembers where every value stood (file line and column).

PyYAML's ``compose()`` keeps a start mark on every node; walking the node tree gives both
the plain data and a table ``path → (line, column)`` (1-based), so a schema error on
``fields.name.normalizers[1]`` can be reported at the line a human has to fix. Duplicate
keys, which ``safe_load`` silently lets the last one win, are reported too. Documents are
composed by :mod:`hub.safe_yaml` (alias bombs, recursive aliases, deep nesting and huge files
refused with their line), so this walk over the expanded tree stays small.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub.safe_yaml import compose, read_text

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a marked YAML file (a mapping, the service-item catalogue): where it is
    and what is wrong."""

    file: str
    line: int
    message: str
    path: str = ""

    def __str__(self) -> str:
        where = f" [{self.path}]" if self.path else ""
        return f"{self.file}:{self.line}: {self.message}{where}"


def path_text(path: Iterable[str | int]) -> str:
    """A document path as a reader writes it: ``stages[0].department``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


@dataclass
class MarkedDocument:
    """A loaded YAML document with the line and column of every key and value."""

    data: Any
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    duplicate_keys: list[tuple[Path_, int]] = field(default_factory=list)

    def line_of(self, path: Path_) -> int:
        """The line of ``path``, or of its nearest ancestor that exists (1 for the root)."""
        p = tuple(path)
        while p:
            if p in self.marks:
                return self.marks[p][0]
            p = p[:-1]
        return self.marks.get((), (1, 1))[0]


def _walk(node: yaml.Node, path: Path_, doc: MarkedDocument) -> Any:
    doc.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in out:
                doc.duplicate_keys.append(((*path, key), key_node.start_mark.line + 1))
            out[key] = _walk(value_node, (*path, key), doc)
            # A key's own line is where a reader looks for it (the value may start below).
            doc.marks[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), doc) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def load_marked(text: str, name: str = "<text>") -> MarkedDocument:
    """Parse one YAML document, keeping marks; raises :class:`~hub.safe_yaml.YamlError` with a line."""
    node = compose(text, name=name)
    doc = MarkedDocument(data=None)
    if node is None:
        doc.marks[()] = (1, 1)
        return doc
    doc.data = _walk(node, (), doc)
    return doc


def load_marked_file(path: str | Path) -> MarkedDocument:
    return load_marked(read_text(path), str(path))
