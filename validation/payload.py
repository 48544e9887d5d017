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
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from hub.masking import PERSONAL_FIELDS, mask_address, mask_name, mask_resident_id

_RESIDENT_ID_LIKE = re.compile(r"^[0-9]{15}$|^[0-9]{17}[0-9Xx]$")


def _mask_code(value: Any) -> Any:
    """A holder code is personal data when it is a resident id (not when it is a USCC)."""
    s = str(value)
    return mask_resident_id(s) if _RESIDENT_ID_LIKE.match(s.strip()) else s


def _mask_birth_date(value: Any) -> Any:
    s = value.isoformat() if isinstance(value, dt.date) else str(value)
    return s[:4] + "-**-**" if len(s) >= 4 else "*" * len(s)


def _mask_owner(owner: Any) -> Any:
    if isinstance(owner, Mapping):
        out = dict(owner)
        if out.get("name") is not None:
            out["name"] = mask_name(str(out["name"]))
        if out.get("holder_code") is not None:
            out["holder_code"] = _mask_code(out["holder_code"])
        return out
    return _mask_code(owner) if owner is not None else None


def _mask_owners(value: Any) -> Any:
    if isinstance(value, list | tuple | np.ndarray):
        return [_mask_owner(jsonable(o)) for o in value]
    return _mask_owner(value)


#: canonical column -> mask; columns not listed are not personal data.
PII_MASKS: dict[str, Callable[[Any], Any]] = {
    **PERSONAL_FIELDS,
    "holder_code": _mask_code,
    "holder_name": mask_name,
    "legal_rep_resident_id": mask_resident_id,
    "owners": _mask_owners,
    "location": mask_address,
    "birth_date": _mask_birth_date,
}


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


def mask_value(column: str, value: Any) -> Any:
    """``value`` of ``column`` masked if the column carries personal data, made JSON-safe."""
    value = jsonable(value)
    rule = PII_MASKS.get(column)
    if rule is None or value is None:
        return value
    return rule(value)


def mask_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy of a record with every personal field masked."""
    return {str(k): mask_value(str(k), v) for k, v in row.items()}
