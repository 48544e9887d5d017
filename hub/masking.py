"""The one masking policy for personal data (个人信息脱敏), applied by the type of a value.

Every value the hub shows, pushes, files or logs has a *personal-data kind*, declared where
its shape is declared: a licence type's surface fields in ``e_license_store/catalogue.yaml``
(``personal: address``), the canonical entities' fields (``mappings/canonical/models.py``),
an event's payload schema. A value of a declared kind is masked by that kind's rule,
whatever its field is called; every other text is *scrubbed*: resident ids and phone numbers
found anywhere in it by their shape are masked, so an id written into a free-text opinion or
a department's own column does not escape either. Invisible characters (zero-width, bidi
controls, NUL) are removed first: they must not hide a value from the rules.

Masks keep just enough to recognise a record in an operator's view and never enough to
reconstruct the value: a resident id keeps its region prefix and check character, a name
its family name, an address its first administrative part, a phone its operator prefix and
last four digits, a birth date its year.

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
>>> mask("张三、李四共同共有", Personal.PERSON_TEXT)
'张*、李*共同共有'
>>> scrub_text("申请人11010519491231002X，电话13812345678")
'申请人110105********002X，电话138****5678'
>>> scrub_text("11010519491231\\u200b002X")
'110105********002X'
>>> mask("洞头区张三小吃店", Personal.PARTY_NAME, party=Party("enterprise", "92330322MA2C8XYD8X"))  # 个体工商户
'洞*******'
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

from hub.invisible import INVISIBLE_TABLE, invisible_class, strip_invisible


class Personal(StrEnum):
    """The kinds of personal data and the rule each is masked by."""

    #: a resident id (公民身份号码), 18 or 15 characters
    RESIDENT_ID = "resident_id"
    #: a natural person's name
    NAME = "name"
    #: free text that names persons (a property's 共有情况: "张三、李四共同共有")
    PERSON_TEXT = "person_text"
    #: a home or registered address, a property's location (坐落)
    ADDRESS = "address"
    #: a phone number
    PHONE = "phone"
    #: a date of birth
    BIRTH_DATE = "birth_date"
    #: a party's code: personal when it is a resident id, public when it is an enterprise code
    CODE = "code"
    #: a party's name: personal when the party is a person or a sole proprietor (个体工商户)
    PARTY_NAME = "party_name"


#: Kinds a schema may declare (the catalogue and the canonical models validate against these).
KINDS = frozenset(k.value for k in Personal)

# Invisible characters (hub.invisible) found in free text, line breaks and tabs kept: a log
# line or an opinion keeps its layout, an id with a zero-width space inside is still found.
_TEXT_INVISIBLE_TABLE = {cp: None for cp in INVISIBLE_TABLE if cp not in (0x09, 0x0A, 0x0D)}
_INVISIBLE = re.compile(invisible_class(keep="\t\n\r"))


def _strip_text_invisible(text: str) -> str:
    return text.translate(_TEXT_INVISIBLE_TABLE)


def mask_resident_id(value: str | None) -> str | None:
    """Keep the 6-digit region and the last 4 characters; hide the birth date and sequence."""
    if value is None:
        return None
    s = strip_invisible(str(value)).strip()
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
    s = strip_invisible(str(value)).strip()
    if len(s) <= 1:
        return "*" * len(s)
    return s[0] + "*" * (len(s) - 1)


def mask_address(value: str | None) -> str | None:
    """Keep the province/city part; hide street, building and number."""
    if value is None:
        return None
    s = strip_invisible(str(value)).strip()
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
    s = strip_invisible(str(value)).strip()
    if len(s) < 7:
        return "*" * len(s)
    return s[:3] + "*" * (len(s) - 7) + s[-4:]


def mask_birth_date(value: Any) -> str | None:
    """Keep the year."""
    if value is None:
        return None
    s = value.isoformat() if isinstance(value, dt.date) else strip_invisible(str(value)).strip()
    return s[:4] + "-**-**" if len(s) >= 4 else "*" * len(s)


# Words of a share statement (共有情况) that are not names.
_SHARE_TERMS = re.compile(
    "单独所有|共同共有|按份共有|家庭共有|夫妻共有|共有人|共有|份额|各占|占有|所有权|所有|其中|及|和|与|等|各|占|人"
)
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff·•]+|[A-Za-z][A-Za-z .'-]*[A-Za-z]")


def mask_person_text(value: str | None) -> str | None:
    """Mask every name in a short statement about persons, keep its structure and figures.

    >>> mask_person_text("张三占1/2，李四占1/2")
    '张*占1/2，李*占1/2'
    >>> mask_person_text("单独所有")
    '单独所有'
    """
    if value is None:
        return None
    s = strip_invisible(str(value))
    out: list[str] = []
    pos = 0
    for term in _SHARE_TERMS.finditer(s):
        out.append(_mask_runs(s[pos : term.start()]))
        out.append(term.group())
        pos = term.end()
    out.append(_mask_runs(s[pos:]))
    return scrub_text("".join(out))


def _mask_runs(text: str) -> str:
    return _CJK_RUN.sub(lambda m: m.group()[0] + "*" * (len(m.group()) - 1), text)


def is_sole_proprietor_code(code: str | None) -> bool:
    """A USCC registered by market regulation (``9``) for an individual business (``2``): 个体工商户."""
    if not code:
        return False
    s = str(code)
    return (s if s.isascii() and s.isalnum() else strip_invisible(s).strip()).upper().startswith("92")


def mask_code(code: str | None, *, person: bool | None = None) -> str | None:
    """A party's code, masked when it is a resident id (a person's), kept when an enterprise's."""
    if code is None:
        return None
    if person is None:
        person = looks_like_resident_id(code)
    return mask_resident_id(code) if person else code


_USCC_SHAPE = re.compile(r"[0-9A-Z]{2}[0-9]{6}[0-9A-Z]{10}")  # loosely: a damaged USCC is no person's


def mask_presented_code(code: str | None) -> str | None:
    """A code somebody typed (a path, a query), as logs and error answers may repeat it.

    Only an enterprise's canonical code (USCC shape) is repeated as is: anything else may be
    a person's id, damaged or in an old form, or a name typed into the wrong box.

    >>> mask_presented_code("91330322MA2C8XYD8X"), mask_presented_code("1101051949123100")
    ('91330322MA2C8XYD8X', '110105********00')
    >>> mask_presented_code("张三丰")
    '张**'
    """
    if code is None:
        return None
    s = strip_invisible(str(code)).strip()
    if _USCC_SHAPE.fullmatch(s.upper()) and not looks_like_resident_id(s):
        return s
    if looks_like_resident_id(s):
        return mask_resident_id(s)
    if len(s) <= 8:
        return mask_name(s)
    return s[:6] + "*" * (len(s) - 8) + s[-2:]


_DATE = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
_ID_18 = rf"[1-9][0-9]{{5}}(?:18|19|20)[0-9]{{2}}{_DATE}[0-9]{{3}}[0-9Xx]"
_ID_15 = rf"[1-9][0-9]{{5}}[0-9]{{2}}{_DATE}[0-9]{{3}}"
_MOBILE = r"(?:\+?86[- ]?)?1[3-9][0-9](?:[- ]?[0-9]{4}){2}"
_LANDLINE = r"0[1-9][0-9]{1,2}-[2-9][0-9]{6,7}"
_RESIDENT_ID_RE = re.compile(rf"(?<![0-9A-Za-z])(?:{_ID_18}|{_ID_15})(?![0-9A-Za-z])")
_PHONE_RE = re.compile(rf"(?<![0-9])(?:{_MOBILE}|{_LANDLINE})(?![0-9])")
_RESIDENT_ID_FULL = re.compile(rf"(?:{_ID_18}|{_ID_15})")
_MAYBE_PERSONAL = re.compile(r"[0-9０-９]{6}")
_NEEDS_NFKC = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\u3000\uff0d]")


def looks_like_resident_id(value: Any) -> bool:
    """Whether ``value`` has a resident id's shape (region, a real-looking birth date, sequence).

    The check digit is not required: a damaged id is still a person's.

    >>> looks_like_resident_id("11010519491231002x"), looks_like_resident_id("91330322MA2C8XYD8X")
    (True, False)
    """
    if value is None:
        return False
    s = str(value)
    if s.isascii() and s.isalnum():  # the common case (a clean code): nothing to remove or fold
        return len(s) in (15, 18) and _RESIDENT_ID_FULL.fullmatch(s) is not None
    s = unicodedata.normalize("NFKC", strip_invisible(s)).strip()
    return _RESIDENT_ID_FULL.fullmatch(s) is not None


def scrub_text(text: str) -> str:
    """``text`` with every resident id and phone number in it masked, found by shape.

    Invisible characters go first and full-width digits are read as digits (NFKC), so
    neither hides an id from the rule.
    """
    if not _MAYBE_PERSONAL.search(text) and not _INVISIBLE.search(text):
        return text  # no run of six digits: no id, no phone (the common case, kept cheap)
    s = _strip_text_invisible(text)
    if _NEEDS_NFKC.search(s):
        s = unicodedata.normalize("NFKC", s)
    s = _RESIDENT_ID_RE.sub(lambda m: mask_resident_id(m.group()) or "", s)
    return _PHONE_RE.sub(lambda m: mask_phone(re.sub(r"[^0-9]", "", m.group())) or "", s)


def scrub(value: Any) -> Any:
    """Any JSON-like value with :func:`scrub_text` applied to every string in it."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


@dataclass(frozen=True)
class Party:
    """Whose value it is: a licence's holder, a record's subject (``kind`` ``person``/``enterprise``)."""

    kind: str | None = None
    code: str | None = None

    @cached_property
    def is_person(self) -> bool:
        return str(self.kind) == "person" or looks_like_resident_id(self.code)

    @cached_property
    def name_is_personal(self) -> bool:
        """A person's name is; so is a sole proprietor's (个体工商户), which is its operator's."""
        return self.is_person or is_sole_proprietor_code(self.code)


_RULES: dict[Personal, Callable[[Any], Any]] = {
    Personal.RESIDENT_ID: mask_resident_id,
    Personal.NAME: mask_name,
    Personal.PERSON_TEXT: mask_person_text,
    Personal.ADDRESS: mask_address,
    Personal.PHONE: mask_phone,
    Personal.BIRTH_DATE: mask_birth_date,
    Personal.CODE: lambda v: mask_code(str(v)),
    Personal.PARTY_NAME: mask_name,
}


def mask(value: Any, kind: Personal | str | None, *, party: Party | None = None) -> Any:
    """``value`` masked by the rule of its kind; a value of no personal kind is scrubbed.

    Lists are masked item by item. ``party`` decides :attr:`Personal.CODE` and
    :attr:`Personal.PARTY_NAME`: an enterprise's code and name stay (a sole proprietor's name
    does not); without a party a code is judged by its shape and a party name is masked.

    >>> mask("温州某某科技有限公司", Personal.PARTY_NAME, party=Party("enterprise", "91330322MA2C8XYD8X"))
    '温州某某科技有限公司'
    >>> mask("李小龙", Personal.PARTY_NAME, party=Party("person", "330322198001011231"))
    '李**'
    >>> mask(["张三", "李四"], Personal.NAME)
    ['张*', '李*']
    """
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [mask(v, kind, party=party) for v in value]
    if kind is None or isinstance(value, Mapping):
        return scrub(value)
    if not isinstance(kind, Personal):
        kind = Personal(kind)
    if kind is Personal.CODE:
        return mask_code(str(value), person=party.is_person if party is not None else None)
    if kind is Personal.PARTY_NAME and party is not None:
        return mask_name(str(value)) if party.name_is_personal else scrub_text(str(value))
    if isinstance(value, bool | int | float) and kind is not Personal.PHONE:
        return value
    return _RULES[kind](value)


def mask_fields(
    record: Mapping[str, Any], kinds: Mapping[str, Personal | str | None], *, party: Party | None = None
) -> dict[str, Any]:
    """A copy of ``record`` with each value masked by the kind ``kinds`` declares for it.

    Fields ``kinds`` does not name are scrubbed (ids and phones by shape), never passed raw.
    """
    return {k: mask(v, kinds.get(k), party=party) for k, v in record.items()}


def mask_record(
    record: Mapping[str, Any], kinds: Mapping[str, Personal | str | None] | None = None, *, party: Party | None = None
) -> dict[str, Any]:
    """:func:`mask_fields` with the kinds known for ``record`` (a department's raw row: those its
    mapping declares, see ``personal_columns`` of a source block); every other value scrubbed."""
    return mask_fields(record, kinds or {}, party=party)
