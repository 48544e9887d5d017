"""Taxpayer identification number (纳税人识别号, 税务登记证号) before and after 三证合一.

Three real shapes:

* 15 characters — the old number of organisations: the 6-digit region of the tax
  authority (GB/T 2260) and the 9-character organisation code (GB 11714, with its check);
* 18 characters — since 2015 the taxpayer id *is* the USCC (GB 32100);
* 20 characters — individuals and sole traders (个体工商户): the 18-digit resident id of
  the owner followed by a 2-digit sequence.

:func:`get_org_code` returns the organisation code of the 15- and 18-character forms,
the key the master index resolves old taxpayer ids by.

>>> validate('330322600037341')
'330322600037341'
>>> get_org_code('330322-60003734-1')
'600037341'
>>> validate('330322600037342')
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidChecksum: invalid_checksum
>>> validate('91110000600037341L')
'91110000600037341L'
>>> validate('11010519491231002X01')
'11010519491231002X01'
>>> get_org_code('11010519491231002X01') is None
True
"""

from __future__ import annotations

from stdnum.exceptions import ValidationError

from identifiers import org_code, resident_id, uscc
from identifiers._common import Reason, clean, fail, is_registration_region

__all__ = ["calc_check_digit", "compact", "format", "get_org_code", "is_valid", "validate"]


def compact(number: str) -> str:
    """The number without separators, half-width and upper-case."""
    return clean(number)


def calc_check_digit(number: str) -> str:
    """The check character of the embedded organisation code (15-character form)."""
    return org_code.calc_check_digit(compact(number)[6:14])


def validate(number: str) -> str:
    """Check a 15-, 18- or 20-character taxpayer id; return its compact form."""
    number = compact(number)
    if len(number) == 18:
        return uscc.validate(number)
    if len(number) == 20:
        if not (number[18:].isdigit() and number[18:].isascii()):
            fail(Reason.FORMAT)
        resident_id.validate(number[:18])
        return number
    if len(number) != 15:
        fail(Reason.LENGTH)
    if not (number[:6].isdigit() and number[:6].isascii()):
        fail(Reason.FORMAT)
    if not all(c in org_code.ALPHABET for c in number[6:14]) or number[14] not in "0123456789X":
        fail(Reason.FORMAT)
    if not is_registration_region(number[:6]):
        fail(Reason.REGION)
    if number[14] != calc_check_digit(number):
        fail(Reason.CHECKSUM)
    return number


def is_valid(number: str) -> bool:
    """Whether ``number`` is a valid taxpayer id of any of the three shapes."""
    try:
        return bool(validate(number))
    except ValidationError:
        return False


def get_org_code(number: str) -> str | None:
    """The organisation code in a 15- or 18-character taxpayer id (``None`` for individuals)."""
    number = validate(number)
    if len(number) == 15:
        return number[6:]
    if len(number) == 18:
        return number[8:17]
    return None


def format(number: str) -> str:
    """The standard presentation: the compact form."""
    return compact(number)
