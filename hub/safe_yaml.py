"""The one YAML loader the product uses (安全读取 YAML): safe tags, bounded size, bounded aliases.

PyYAML's ``safe_load`` refuses arbitrary Python objects but not an *alias bomb*: nine
anchors each aliasing the previous one ten times compose in a few kilobytes, and anything
that walks the result as a tree (line marks, JSON Schema, ``json.dumps``) visits 10⁹ nodes
— ``hub mappings check`` ran past 3 GB. A self-alias (``&a [*a]``) makes the data recursive
and every walk ends in ``RecursionError``; 100,000 nested ``[`` end there while composing.

Here a document is refused, with its file and line, when it is larger than
:data:`MAX_BYTES`, nests deeper than :data:`MAX_DEPTH`, or would expand — every alias counted
as a copy of the node it names — to more than :data:`MAX_NODES` nodes or :data:`MAX_DEPTH`
levels; an alias inside the node it names is refused as recursive. Anchors and aliases
within those bounds load as before. The checks walk the composed node graph once (each
shared node once), before anything is constructed.

>>> load("a: &x [1, 2]\\nb: *x\\n")
{'a': [1, 2], 'b': [1, 2]}
>>> load("a: &x [*x]\\n", name="self.yaml")
Traceback (most recent call last):
...
hub.safe_yaml.YamlError: self.yaml:1: recursive alias: the node anchored &x contains an alias to itself
>>> bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\\n" + "".join(
...     f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\\n" for p, c in zip("abcdefgh", "bcdefghi"))
>>> load(bomb, name="bomb.yaml")
Traceback (most recent call last):
...
hub.safe_yaml.YamlError: bomb.yaml:5: aliases expand this document beyond 100,000 nodes (an alias bomb?)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import yaml

#: Largest YAML document read (the largest shipped file is a few kilobytes).
MAX_BYTES: Final = 1024 * 1024
#: Deepest nesting, aliases expanded.
MAX_DEPTH: Final = 64
#: Most nodes a document may expand to, every alias counted as a copy of what it names.
MAX_NODES: Final = 100_000


class YamlError(yaml.YAMLError, ValueError):
    """A YAML file that is not valid YAML or is refused; says which file and line."""

    def __init__(self, message: str, line: int, file: str = "<text>") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.file = file

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader whose (recursive) composer refuses nesting deeper than :data:`MAX_DEPTH`."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlError(f"nested deeper than {MAX_DEPTH} levels", mark.line + 1, self.name)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def compose(text: str, *, name: str = "<text>") -> yaml.Node | None:
    """The checked node graph of one YAML document (``None`` when empty); raises :class:`YamlError`."""
    if len(text) > MAX_BYTES:
        raise YamlError(f"larger than {MAX_BYTES:,} characters; refused", 1, name)
    loader = _BoundedLoader(text, name)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _error(exc, name) from exc
    finally:
        loader.dispose()
    if node is not None:
        _check_expansion(node, name)
    return node


def construct(node: yaml.Node | None, *, name: str = "<text>") -> Any:
    """Python data (safe tags only) for a node :func:`compose` returned; raises :class:`YamlError`."""
    if node is None:
        return None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise _error(exc, name) from exc
    finally:
        loader.dispose()


def load(text: str, *, name: str = "<text>") -> Any:
    """``yaml.safe_load`` with this module's bounds; raises :class:`YamlError` with ``name`` and line."""
    return construct(compose(text, name=name), name=name)


def load_file(path: str | Path) -> Any:
    """:func:`load` of a UTF-8 file (see :func:`read_text`)."""
    return load(read_text(path), name=str(path))


def read_text(path: str | Path) -> str:
    """A YAML file's text; a file larger than :data:`MAX_BYTES` is refused unread, one not UTF-8 refused.

    ``OSError`` (missing, unreadable) is the caller's to report.
    """
    p = Path(path)
    if p.stat().st_size > MAX_BYTES:
        raise YamlError(f"larger than {MAX_BYTES:,} bytes; refused", 1, str(p))
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"not UTF-8 ({exc.reason} at byte {exc.start})", 1, str(p)) from exc


def _error(exc: yaml.MarkedYAMLError, name: str) -> YamlError:
    mark = exc.problem_mark or exc.context_mark
    return YamlError(f"not valid YAML: {exc.problem or exc}", mark.line + 1 if mark else 1, name)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node, name: str) -> None:
    """Refuse a graph that is recursive or expands past :data:`MAX_NODES` nodes / :data:`MAX_DEPTH` levels.

    Post-order over the graph, each shared node once: ``size`` and ``depth`` are what a
    node would weigh with every alias copied out.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            on_path.discard(key)
            line = node.start_mark.line + 1
            if size[key] > MAX_NODES:
                raise YamlError(f"aliases expand this document beyond {MAX_NODES:,} nodes (an alias bomb?)", line, name)
            if depth[key] > MAX_DEPTH:
                raise YamlError(f"nested deeper than {MAX_DEPTH} levels once aliases are expanded", line, name)
            continue
        if key in size:
            continue
        on_path.add(key)
        stack.append((node, True))
        for kid in _children(node):
            if id(kid) in on_path:
                anchor = _anchor_of(kid)
                raise YamlError(
                    f"recursive alias: the node anchored {anchor} contains an alias to itself",
                    node.start_mark.line + 1,
                    name,
                )
            if id(kid) not in size:
                stack.append((kid, False))


def _anchor_of(node: yaml.Node) -> str:
    # PyYAML keeps no anchor on the node; its start mark points at "&name"
    mark = node.start_mark
    if mark.buffer is not None:
        text = mark.buffer[mark.index : mark.index + 80]
        if text.startswith("&"):
            return text.split()[0].rstrip(",]}")
    return "(anchor)"
