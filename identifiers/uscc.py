"""Unified social credit code (统一社会信用代码, GB 32100-2015).

Eighteen characters from ``0-9A-HJ-NPQRTUWXY`` (no I, O, Z, S, V):

* position 1 — registration authority (登记管理部门代码), clause 4.1 and Annex A;
* position 2 — entity type (机构类别代码) allowed for that authority;
* positions 3-8 — region of the registration authority (GB/T 2260);
* positions 9-17 — the organisation code (主体标识码, GB 11714) with its own check;
* position 18 — MOD 31 check character, weights ``3^(i-1) mod 31``.

>>> validate('91110000600037341L')
'91110000600037341L'
>>> validate('9111 0000 6000-3734 1l')
'91110000600037341L'
>>> validate('Y1330322MA2C00001B')  # 其他 (Y) exists; python-stdnum rejects it
'Y1330322MA2C00001B'
>>> validate('951100006000373418')  # 工商 has types 1, 2, 3 only
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidComponent: unknown_entity_type
>>> validate('91110000600037342P')  # MOD 31 fits, the embedded organisation code does not
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidChecksum: invalid_embedded_org_code
>>> validate('91110000600037341M')
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidChecksum: invalid_checksum
>>> get_org_code('91110000600037341L')
'600037341'
>>> AUTHORITIES['N'][0], ENTITY_TYPES['N']['2']
('农业', '村级集体经济组织')
"""

from __future__ import annotations

from stdnum.exceptions import ValidationError

from identifiers import org_code as _org_code
from identifiers._common import Reason, clean, fail, is_registration_region

__all__ = [
    "ALPHABET",
    "AUTHORITIES",
    "ENTITY_TYPES",
    "calc_check_digit",
    "compact",
    "format",
    "get_org_code",
    "get_region",
    "is_valid",
    "validate",
]

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))

#: Registration authorities (登记管理部门), GB 32100-2015 Annex A with later amendments.
AUTHORITIES: dict[str, tuple[str, str]] = {
    "1": ("机构编制", "establishment administration"),
    "2": ("外交", "foreign affairs"),
    "3": ("司法行政", "justice administration"),
    "4": ("文化", "culture"),
    "5": ("民政", "civil affairs"),
    "6": ("旅游", "tourism"),
    "7": ("宗教", "religious affairs"),
    "8": ("工会", "trade unions"),
    "9": ("工商", "industry and commerce"),
    "A": ("中央军委改革和编制办公室", "CMC reform and establishment office"),
    "N": ("农业", "agriculture"),
    "Y": ("其他", "other"),
}

#: Entity types (机构类别) each authority may assign.
ENTITY_TYPES: dict[str, dict[str, str]] = {
    "1": {"1": "机关", "2": "事业单位", "3": "中央编办直接管理机构编制的群众团体", "9": "其他"},
    "2": {"1": "外国常驻新闻机构", "9": "其他"},
    "3": {
        "1": "律师执业机构",
        "2": "公证处",
        "3": "基层法律服务所",
        "4": "司法鉴定机构",
        "5": "仲裁委员会",
        "9": "其他",
    },
    "4": {"1": "外国在华文化中心", "9": "其他"},
    "5": {"1": "社会团体", "2": "民办非企业单位", "3": "基金会", "9": "其他"},
    "6": {"1": "外国旅游部门常驻代表机构", "2": "港澳台地区旅游部门常驻内地（大陆）代表机构", "9": "其他"},
    "7": {"1": "宗教活动场所", "2": "宗教院校", "9": "其他"},
    "8": {"1": "基层工会", "9": "其他"},
    "9": {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"},
    "A": {"1": "军队事业单位", "9": "其他"},
    "N": {"1": "组级集体经济组织", "2": "村级集体经济组织", "3": "乡镇级集体经济组织", "9": "其他"},
    "Y": {"1": "其他（不再细分）"},
}


def compact(number: str) -> str:
    """The code without separators, half-width and upper-case."""
    return clean(number)


def calc_check_digit(number: str) -> str:
    """The MOD 31 check character of the first 17 characters.

    >>> calc_check_digit('91110000600037341')
    'L'
    """
    body = compact(number)[:17]
    total = sum(ALPHABET.index(c) * w for c, w in zip(body, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def validate(number: str) -> str:
    """Check a USCC; return its compact form.

    Order of checks (the vectorised path keeps it): length, characters, region digits,
    authority, entity type, region, MOD 31 check, embedded organisation-code check.
    """
    number = compact(number)
    if len(number) != 18:
        fail(Reason.LENGTH)
    if not all(c in ALPHABET for c in number):
        fail(Reason.FORMAT)
    if not number[2:8].isdigit():
        fail(Reason.FORMAT)
    if number[0] not in AUTHORITIES:
        fail(Reason.AUTHORITY)
    if number[1] not in ENTITY_TYPES[number[0]]:
        fail(Reason.ENTITY_TYPE)
    if not is_registration_region(number[2:8]):
        fail(Reason.REGION)
    if number[17] != calc_check_digit(number):
        fail(Reason.CHECKSUM)
    if not _org_code.is_valid(number[8:17]):
        fail(Reason.ORG_CODE)
    return number


def is_valid(number: str) -> bool:
    """Whether ``number`` is a valid USCC."""
    try:
        return bool(validate(number))
    except ValidationError:
        return False


def get_org_code(number: str) -> str:
    """The organisation code carried in positions 9-17."""
    return validate(number)[8:17]


def get_region(number: str) -> str:
    """The registration authority's region code (positions 3-8)."""
    return validate(number)[2:8]


def format(number: str) -> str:
    """The standard presentation: the compact 18 characters."""
    return compact(number)
