"""Records out of an XML exchange package: a dataset's field paths, compiled into one walk per record.

The package connector (:mod:`connectors.xml_packages`) streams a package and hands each record
element to a :class:`RecordPlan`; this module knows how a mapping's field paths (``@attr``,
``Child``, ``Child/@attr``, ``Child/Grand``, ``[]`` for a list) become values and Arrow columns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from connectors.errors import ConnectorConfigError


@dataclass(frozen=True)
class FieldPath:
    """One output column: ``@attr``, ``Child``, ``Child/@attr``, ``Child/Grand``; ``[]`` = list."""

    column: str
    child: str | None
    leaf: str | None
    attr: str | None
    many: bool

    @classmethod
    def parse(cls, column: str, path: str, ns: str) -> FieldPath:
        many = path.endswith("[]")
        path = path.removesuffix("[]")
        q = (lambda n: f"{{{ns}}}{n}") if ns else (lambda n: n)
        parts = path.split("/")
        if len(parts) == 1:
            p = parts[0]
            return cls(column, None, None, p[1:], many) if p.startswith("@") else cls(column, q(p), None, None, many)
        if len(parts) == 2:
            a, b = parts
            if b.startswith("@"):
                return cls(column, q(a), None, b[1:], many)
            return cls(column, q(a), q(b), None, many)
        raise ConnectorConfigError(f"field path {path!r} is deeper than Child/Grandchild")

    def extract(self, elem: Any) -> Any:
        if self.child is None:
            return elem.get(self.attr) if self.attr else elem.text
        nodes = elem.findall(self.child)
        if self.attr:
            values = [n.get(self.attr) for n in nodes]
        else:
            values = [n.findtext(self.leaf) if self.leaf else n.text for n in nodes]
        if self.many:
            return values
        if not values:
            return None
        # repeated children in a scalar column: ';'-joined, in document order
        return values[0] if len(values) == 1 else ";".join(v or "" for v in values)


_UNSET = object()


class RecordPlan:
    """A dataset's field paths compiled for one walk over each record's children.

    Gives the same values as :meth:`FieldPath.extract` field by field, which calls
    ``findall``/``findtext`` per field: lxml's ElementPath runs in Python, so that costs
    several times the parse itself. Here a record's children are visited once, the
    children of a nested element (``Owner/Name``) once per child.
    """

    def __init__(self, fields: Sequence[FieldPath]) -> None:
        self.size = len(fields)
        self.attrs = [(i, f.attr or "") for i, f in enumerate(fields) if f.child is None]
        # per child tag: (own-text columns, (attribute, column) pairs, grandchild tag -> columns)
        general: dict[str, tuple[list[int], list[tuple[str, int]], dict[str, list[int]]]] = {}
        for i, f in enumerate(fields):
            if f.child is None:
                continue
            texts, attrs, leaves = general.setdefault(f.child, ([], [], {}))
            if f.attr:
                attrs.append((f.attr, i))
            elif f.leaf:
                leaves.setdefault(f.leaf, []).append(i)
            else:
                texts.append(i)
        # a child whose only use is its own text in one scalar column: the common case, one lookup
        self.fast = {
            tag: texts[0]
            for tag, (texts, attrs, leaves) in general.items()
            if len(texts) == 1 and not attrs and not leaves and not fields[texts[0]].many
        }
        self.general = {tag: spec for tag, spec in general.items() if tag not in self.fast}
        self.fast_columns = list(self.fast.values())
        self.list_columns = [i for i, f in enumerate(fields) if f.child is not None and f.child not in self.fast]
        self.collapse = [i for i in self.list_columns if not fields[i].many]
        self.many_columns = [i for i in self.list_columns if fields[i].many]
        self.template: list[Any] = [None] * self.size
        for i in self.fast_columns:
            self.template[i] = _UNSET

    def extract(self, elem: Any) -> tuple[Any, ...]:
        """One record's values in field order; repeated paths as tuples."""
        vals = self.template[:]
        for i in self.list_columns:
            vals[i] = []
        for i, attr in self.attrs:
            vals[i] = elem.get(attr) if attr else elem.text
        fast, general = self.fast, self.general
        repeated: dict[int, list[Any]] | None = None
        for child in elem:
            tag = child.tag
            one = fast.get(tag)
            if one is not None:
                if vals[one] is _UNSET:
                    vals[one] = child.text
                else:
                    repeated = repeated if repeated is not None else {}
                    repeated.setdefault(one, [vals[one]]).append(child.text)
                continue
            spec = general.get(tag)
            if spec is None:
                continue
            texts, attrs, leaves = spec
            if texts:
                text = child.text
                for i in texts:
                    vals[i].append(text)
            for attr, i in attrs:
                vals[i].append(child.get(attr))
            if leaves:
                found: dict[str, str] = {}
                for grand in child:
                    gtag = grand.tag
                    if gtag in leaves and gtag not in found:
                        found[gtag] = grand.text or ""  # findtext: "" for an empty element
                for gtag, columns in leaves.items():
                    value = found.get(gtag)
                    for i in columns:
                        vals[i].append(value)
        for i in self.fast_columns:
            if vals[i] is _UNSET:
                vals[i] = None
        if repeated:
            for i, values in repeated.items():
                vals[i] = ";".join(v or "" for v in values)
        for i in self.collapse:
            values = vals[i]
            vals[i] = None if not values else values[0] if len(values) == 1 else ";".join(v or "" for v in values)
        # tuples of strings drop out of the garbage collector's tracking at its first pass, so the
        # batch of rows held until the next spill costs no full collections (lists would: ~20 %)
        for i in self.many_columns:
            vals[i] = tuple(vals[i])
        return tuple(vals)


def content_version(values: Sequence[Any]) -> str:
    """Without a version field, a record's version is the hash of its content.

    Hashed in the form it has always been hashed in (a list, repeated paths as lists), so
    versions stay stable across releases and unchanged records are not re-emitted.
    """
    as_lists = [list(v) if isinstance(v, tuple) else v for v in values]
    return hashlib.sha256(repr(as_lists).encode()).hexdigest()[:16]


def arrow_type(field: FieldPath) -> pa.DataType:
    # a repeated path ("Owner/Name[]") is a list column; "[]" on the record's own attribute has one value
    return pa.list_(pa.string()) if field.many and field.child is not None else pa.string()


def element_depth(elem: Any) -> int:
    depth = 0
    node = elem
    while node is not None:
        depth += 1
        node = node.getparent()
    return depth
