"""How a golden record's ``sources`` are stored: grouped by source record.

The ORM attribute is, as ever, ``attribute → {department, dataset, source_key,
source_version}``. Stored that way, an identity whose eight attributes come from one record
repeats the same reference eight times — about a kilobyte of its row, most of the master
index on disk. The column therefore holds each source record once with the attributes it
supplies, and :class:`GoldenSources` turns one form into the other on the way in and out.
Rows stored in the per-attribute form (a JSON object) read back unchanged.

>>> packed = pack({"name": {"department": "tax", "source_key": "t1"},
...                "status": {"department": "tax", "source_key": "t1"}})
>>> packed
[{'department': 'tax', 'source_key': 't1', 'attributes': ['name', 'status']}]
>>> unpack(packed)["status"]
{'department': 'tax', 'source_key': 't1'}
>>> unpack({"name": {"department": "tax"}})
{'name': {'department': 'tax'}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

#: The key of a stored group that lists the attributes the source supplies.
ATTRIBUTES = "attributes"


def pack(sources: Mapping[str, Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Per-attribute sources → one entry per distinct source, in first-seen order."""
    if sources is None:
        return None
    groups: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
    for attribute, source in sources.items():
        ref = tuple((k, v) for k, v in source.items() if k != ATTRIBUTES)
        entry = groups.get(ref)
        if entry is None:
            entry = groups[ref] = {**dict(ref), ATTRIBUTES: []}
        entry[ATTRIBUTES].append(attribute)
    return list(groups.values())


def unpack(stored: Any) -> dict[str, dict[str, Any]] | None:
    """The stored form (grouped list, or the per-attribute object of older rows) → per attribute."""
    if stored is None or isinstance(stored, dict):
        return stored
    out: dict[str, dict[str, Any]] = {}
    for entry in stored:
        ref = {k: v for k, v in entry.items() if k != ATTRIBUTES}
        for attribute in entry.get(ATTRIBUTES, ()):
            out[attribute] = dict(ref)
    return out


class GoldenSources(TypeDecorator[dict[str, Any]]):
    """A JSON column holding golden-record sources grouped by source record."""

    impl = sa.JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        return pack(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return unpack(value)
