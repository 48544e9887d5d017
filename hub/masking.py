"""Masking of personal data wherever it is shown or logged (个人信息脱敏).

Masks keep just enough to recognise a record in an operator's view and never enough to
reconstruct the value: a resident id keeps its region prefix and check character, a name
its family name, an address its first administrative part.

>>> mask_resident_id("11010519491231002X")
'110105********002X'
>>> mask_resident_id("110105491231002")
'110105******002'
>>> mask_name("张三丰")
'张**'
>>> mask_address("浙江省温州市洞头区北岙街道中心路12号")
'浙江省温州市******'
>>> mask_phone("13812345678")
'138****5678'
>>> mask_resident_id(None) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def mask_resident_id(value: str | None) -> str | None:
    """Keep the 6-digit region and the last 4 characters; hide the birth date and sequence."""
    if value is None:
        return None
    s = str(value).strip()
    if len(s) <= 6:
        return "*" * len(s)
    keep_tail = 4 if len(s) >= 15 else 0
    if len(s) == 15:
        keep_tail = 3
    return s[:6] + "*" * (len(s) - 6 - keep_tail) + (s[-keep_tail:] if keep_tail else "")


def mask_name(value: str | None) -> str | None:
    """Keep the first character (the family name in most Chinese names)."""
    if value is None:
        return None
    s = str(value).strip()
    if len(s) <= 1:
        return "*" * len(s)
    return s[0] + "*" * (len(s) - 1)


def mask_address(value: str | None) -> str | None:
    """Keep the province/city part; hide street, building and number."""
    if value is None:
        return None
    s = str(value).strip()
    cut = 0
    for marker in ("省", "自治区"):
        idx = s.find(marker)
        if idx != -1:
            cut = idx + len(marker)
            break
    for marker in ("市", "州", "盟"):
        idx = s.find(marker, cut)
        if idx != -1 and idx - cut <= 6:
            cut = idx + 1
            break
    if cut == 0:
        cut = min(3, len(s) // 3)
    return s[:cut] + "******"


def mask_phone(value: str | None) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    if len(s) < 7:
        return "*" * len(s)
    return s[:3] + "*" * (len(s) - 7) + s[-4:]


#: Field names that carry personal data and the mask applied to each.
PERSONAL_FIELDS = {
    "resident_id": mask_resident_id,
    "legal_rep_id": mask_resident_id,
    "legal_rep_resident_id": mask_resident_id,
    "holder_resident_id": mask_resident_id,
    "name": mask_name,
    "legal_rep_name": mask_name,
    "address": mask_address,
    "reg_address": mask_address,
    "phone": mask_phone,
}


def mask_record(record: Mapping[str, Any], fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``record`` with every known personal field masked (other fields untouched)."""
    rules = fields or PERSONAL_FIELDS
    out: dict[str, Any] = {}
    for key, value in record.items():
        rule = rules.get(key)
        out[key] = rule(value) if rule is not None and value is not None else value
    return out
