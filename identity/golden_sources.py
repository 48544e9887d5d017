"""How a golden record is stored: each value once, each source record once.

The ORM attributes are, as ever, ``attributes`` (attribute → value) and ``sources``
(attribute → ``{department, dataset, source_key, source_version}``). Stored naively, an
identity from one source record repeats every value three times (in the link, in
``attributes``, in the typed columns) and the same source reference once per attribute —
most of the master index on disk. So the columns hold less, and these functions turn one form
into the other on the way in and out:

* ``attributes`` holds only the values the typed columns (``name``, ``status`` …) do not
  hold exactly — a typed column holds text, so a text value lives there alone
  (:func:`compact_attributes`, :func:`full_attributes`);
* ``sources`` holds each source record once with the attributes it supplies (:func:`pack`);
  or, for a golden record that is survivorship over the identity's *one* active link (the
  common case: one department knows the person), just :data:`ONE_LINK`: every value's source
  is that link, read from the link itself (:func:`one_link_sources`). Whatever changes the
  links of an identity recomputes its golden record (``identity.golden.refresh``), which
  writes :data:`ONE_LINK` only while the identity has exactly one active link;
* a source-record link holds the values its record carried — or, for the one link of an
  identity created from it whose values are all non-blank, just :data:`AS_GOLDEN`: its values
  are then exactly the identity's golden values (survivorship over one record keeps every
  non-blank value). Before anything changes that golden record, ``identity.golden.refresh``
  writes such links' values out (:func:`identity.golden.materialise_links`), so the marker
  never outlives what it stands for.

Rows stored in the older forms (every value in ``attributes``; sources per attribute as a
JSON object) read back unchanged.

>>> packed = pack({"name": {"department": "tax", "source_key": "t1"},
...                "status": {"department": "tax", "source_key": "t1"}})
>>> packed
[{'department': 'tax', 'source_key': 't1', 'attributes': ['name', 'status']}]
>>> unpack(packed)["status"]
{'department': 'tax', 'source_key': 't1'}
>>> unpack({"name": {"department": "tax"}})
{'name': {'department': 'tax'}}
>>> compact_attributes({"name": "张三", "region_code": 330322, "phone": "138"}, ("name", "region_code"))
{'region_code': 330322, 'phone': '138'}
>>> full_attributes({"region_code": 330322, "phone": "138"}, {"name": "张三", "region_code": "330322", "sex": None})
{'name': '张三', 'region_code': 330322, 'phone': '138'}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

#: The key of a stored group that lists the attributes the source supplies.
ATTRIBUTES = "attributes"
#: Stored ``sources`` of a golden record drawn from the identity's one active link alone.
ONE_LINK = "one_link"
#: Stored ``attributes`` of a source-record link whose values are its identity's golden values.
AS_GOLDEN = "as_golden"
#: :data:`AS_GOLDEN` as the link's JSON column holds it.
AS_GOLDEN_JSON = '"as_golden"'
#: The fields of a source reference, as a link row carries them.
REFERENCE = ("department", "dataset", "source_key", "source_version")


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


def one_link_sources(attributes: Iterable[str], links: Sequence[Sequence[Any]]) -> dict[str, dict[str, Any]] | None:
    """The sources :data:`ONE_LINK` stands for, given the identity's active links as
    ``(department, dataset, source_key, source_version)`` rows; ``None`` unless there is
    exactly one (the marker would not hold: the golden record is due for a refresh)."""
    if len(links) != 1:
        return None
    ref = dict(zip(REFERENCE, links[0], strict=True))
    return {attribute: dict(ref) for attribute in attributes}


def compact_attributes(values: Mapping[str, Any], typed: Sequence[str]) -> dict[str, Any]:
    """The golden values to store in ``attributes``: all but the text values of typed columns."""
    return {k: v for k, v in values.items() if not (type(v) is str and k in typed)}


def full_attributes(stored: Mapping[str, Any] | None, typed_values: Mapping[str, str | None]) -> dict[str, Any]:
    """Every golden value: the typed columns' text, then what ``attributes`` holds (a value
    stored there wins: it is the exact value of which the typed column holds the text)."""
    out = {k: v for k, v in typed_values.items() if v is not None}
    out.update(stored or {})
    return out


class GoldenSources(TypeDecorator[Any]):
    """A JSON column holding golden-record sources grouped by source record, or :data:`ONE_LINK`."""

    impl = sa.JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        return value if value == ONE_LINK else pack(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return value if value == ONE_LINK else unpack(value)
