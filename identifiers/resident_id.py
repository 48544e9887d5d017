"""Resident identity number (公民身份号码, GB 11643-1999).

Eighteen characters: a 6-digit address code (GB/T 2260 region of the issuing registry),
the birth date ``YYYYMMDD``, a 3-digit sequence (odd for men, even for women) and an
ISO 7064 MOD 11-2 check character where ``X`` stands for 10. Cards issued before 1999
carry 15 digits (2-digit year, no check character); :func:`to_18` converts them.

How strict the region check is: the address code must be one GB/T 2260 has *ever*
assigned (retired codes included, e.g. 310103 卢湾区, merged in 2011), not retired before
the birth year (nobody born in 2015 was issued a code abolished in 2011), but it may be
*created after* the birth year: the code is the issuing registry's at issue time, so people
born before a county got its code carry it all the same. python-stdnum rejects those
(see docs/identifiers.md).

>>> validate('11010519491231002X')
'11010519491231002X'
>>> validate('11010519491231002x')  # compact() upper-cases
'11010519491231002X'
>>> validate('110105194912310021')
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidChecksum: invalid_checksum
>>> validate('110105199902300021')  # 30 February
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidComponent: invalid_birth_date
>>> validate('999999194912310025')
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidComponent: unknown_region
>>> validate('310115198001010016')  # 浦东新区 got its code in 1992; born 1980 is fine
'310115198001010016'
>>> validate('310103201501010011')  # 卢湾区 was merged away in 2011
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidComponent: region_retired_before_birth
>>> to_18('110105491231002')
'11010519491231002X'
>>> validate('110105491231002')  # the 15-digit legacy form validates too
'110105491231002'
>>> format('110105 19491231 002x')
'11010519491231002X'
>>> get_birth_date('11010519491231002X'), get_sex('11010519491231002X')
(datetime.date(1949, 12, 31), 'female')
"""

from __future__ import annotations

import datetime as dt

from stdnum.exceptions import ValidationError
from stdnum.iso7064 import mod_11_2

from identifiers._common import Reason, clean, fail, is_known_region, region_end_year, today

__all__ = ["calc_check_digit", "compact", "format", "get_birth_date", "get_sex", "is_valid", "to_18", "validate"]

#: Earliest birth year accepted: older dates are typing errors, not people.
MIN_BIRTH_YEAR = 1850


def compact(number: str) -> str:
    """The number without separators, half-width and upper-case."""
    return clean(number)


def calc_check_digit(number: str) -> str:
    """The MOD 11-2 check character of the first 17 digits (``X`` for 10).

    >>> calc_check_digit('11010519491231002')
    'X'
    """
    return str(mod_11_2.calc_check_digit(compact(number)[:17]))


def _birth_date(number: str) -> dt.date:
    """Birth date of a compact 18- or 15-digit number; raises on impossible dates."""
    text = number[6:14] if len(number) == 18 else "19" + number[6:12]
    try:
        born = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        fail(Reason.BIRTH_DATE)
    if born.year < MIN_BIRTH_YEAR:
        fail(Reason.BIRTH_DATE)
    if born > today():
        fail(Reason.FUTURE_BIRTH_DATE)
    return born


def validate(number: str) -> str:
    """Check an 18-digit (or legacy 15-digit) number; return its compact form.

    Order of checks (the vectorised path keeps the same order, so reasons agree):
    length, characters, region, birth date, region in use at birth, check character.
    """
    number = compact(number)
    if len(number) not in (15, 18):
        fail(Reason.LENGTH)
    if len(number) == 18:
        if not (number[:17].isdigit() and number[:17].isascii() and number[17] in "0123456789X"):
            fail(Reason.FORMAT)
    elif not (number.isdigit() and number.isascii()):
        fail(Reason.FORMAT)
    if not is_known_region(number[:6]):
        fail(Reason.REGION)
    born = _birth_date(number)
    if born.year > region_end_year(number[:6]):
        fail(Reason.REGION_RETIRED)
    if len(number) == 18 and number[17] != calc_check_digit(number):
        fail(Reason.CHECKSUM)
    return number


def is_valid(number: str) -> bool:
    """Whether ``number`` is a valid 18- or 15-digit resident id."""
    try:
        return bool(validate(number))
    except ValidationError:
        return False


def to_18(number: str) -> str:
    """The 18-digit form of a valid 15-digit number (century 19, check character added).

    An 18-digit number is returned unchanged after validation.
    """
    number = validate(number)
    if len(number) == 18:
        return number
    body = number[:6] + "19" + number[6:]
    return body + calc_check_digit(body)


def get_birth_date(number: str) -> dt.date:
    """The birth date encoded in the number."""
    return _birth_date(validate(number))


def get_sex(number: str) -> str:
    """``male`` for an odd sequence number, ``female`` for an even one."""
    return "male" if int(to_18(number)[16]) % 2 else "female"


def format(number: str) -> str:
    """The standard presentation: the compact 18-digit form (15-digit numbers are converted)."""
    return to_18(number)
