"""Masked copies of records for quarantine rows and GX results (个人信息脱敏).

Built on :mod:`hub.masking`; adds the canonical columns that carry personal data beyond the
shared list (holder codes of persons, property owners, locations, birth dates).

>>> mask_value("holder_code", "11010519491231002X")
'110105********002X'
>>> mask_value("holder_code", "91110000600037341L")
'91110000600037341L'
>>> mask_value("owners", [{"name": "张三", "holder_code": "11010519491231002X", "holder_kind": "person"}])
[{'name': '张*', 'holder_code': '110105********002X', 'holder_kind': 'person'}]
>>> mask_value("birth_date", "1949-12-31")
'1949-**-**'
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from hub.masking import Party, Personal, mask, scrub
from mappings.canonical.models import ENTITIES, personal_kinds

# Where entities disagree on a column's kind, the stricter rule wins (a quarantined record's
# entity is not needed to mask it safely): a person's ``name`` over an enterprise's.
_STRICTNESS = [Personal.PARTY_NAME, Personal.CODE, Personal.NAME, Personal.RESIDENT_ID]


def _column_kinds() -> tuple[dict[str, Personal], dict[str, Personal], frozenset[str]]:
    columns: dict[str, Personal] = {}
    nested: dict[str, Personal] = {}
    lists: set[str] = set()
    for entity in ENTITIES:
        for path, kind in personal_kinds(entity).items():
            target = nested if "[]." in path else columns
            key = path.split("[].", 1)[-1]
            found = target.get(key)
            new = Personal(kind)
            if found is None or (
                new in _STRICTNESS and found in _STRICTNESS and _STRICTNESS.index(new) > _STRICTNESS.index(found)
            ):
                target[key] = new
            if "[]." in path:
                lists.add(path.split("[].", 1)[0])
    return columns, nested, frozenset(lists)


#: canonical column -> kind (from the canonical models); nested list items' fields -> kind; the
#: columns holding such lists (a property's owners)
COLUMN_KINDS, NESTED_KINDS, NESTED_COLUMNS = _column_kinds()


def _mask_nested(value: Any) -> Any:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, Mapping):
            party = Party(item.get("holder_kind"), item.get("holder_code"))
            out.append({str(k): mask(v, NESTED_KINDS.get(str(k)), party=party) for k, v in item.items()})
        else:
            out.append(mask(item, Personal.CODE))
    return out if isinstance(value, list) else out[0]


def jsonable(value: Any) -> Any:
    """A JSON-serialisable copy of a cell (numpy scalars, dates, NaN/NaT/NA → None)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if value.__class__.__name__ in {"NaTType"}:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def mask_value(column: str, value: Any, kinds: Mapping[str, str] | None = None) -> Any:
    """``value`` of canonical ``column`` masked by the column's personal-data kind (``kinds``: a
    mapping's own attributes' kinds, first), made JSON-safe; a column of no kind is scrubbed (ids
    and phones found by shape)."""
    value = jsonable(value)
    if value is None:
        return None
    if kinds and column in kinds:
        return mask(value, kinds[column])
    if column in NESTED_COLUMNS:
        return _mask_nested(value)
    kind = COLUMN_KINDS.get(column)
    if kind is None:
        return scrub(value)
    return mask(value, kind)


def mask_row(row: Mapping[str, Any], kinds: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A JSON-safe copy of a record with every personal field masked (``kinds``: the personal-data
    kinds of a mapping's own attributes)."""
    return {str(k): mask_value(str(k), v, kinds) for k, v in row.items()}
