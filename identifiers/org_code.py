"""Organisation code (组织机构代码, GB 11714-1997).

Eight body characters (digits or upper-case Latin letters) and a check character:
``C9 = 11 - (Σ ci·wi mod 11)`` with weights 3, 7, 9, 10, 5, 8, 4, 2, letters valued
A=10 … Z=35; a result of 10 is written ``X`` and 11 is written ``0``. Printed as
``XXXXXXXX-X``; the canonical form is the plain nine characters.

>>> validate('D2143569-X')
'D2143569X'
>>> calc_check_digit('D2143569')
'X'
>>> calc_check_digit('00000000')  # 11 → '0'
'0'
>>> validate('600037341')
'600037341'
>>> validate('600037342')
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidChecksum: invalid_checksum
>>> validate('60003734')
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidLength: invalid_length
>>> format('600037341')
'60003734-1'
"""

from __future__ import annotations

from stdnum.exceptions import ValidationError

from identifiers._common import Reason, clean, fail

__all__ = ["ALPHABET", "WEIGHTS", "calc_check_digit", "compact", "format", "is_valid", "validate"]

WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
#: Character values: digits 0-9, letters A=10 … Z=35.
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def compact(number: str) -> str:
    """The code without the dash and separators, half-width and upper-case."""
    return clean(number)


def calc_check_digit(number: str) -> str:
    """The check character of the 8-character body (``X`` for 10, ``0`` for 11)."""
    body = compact(number)[:8]
    value = 11 - sum(ALPHABET.index(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 11
    return "X" if value == 10 else "0" if value == 11 else str(value)


def validate(number: str) -> str:
    """Check length, characters and check character; return the plain nine characters."""
    number = compact(number)
    if len(number) != 9:
        fail(Reason.LENGTH)
    if not all(c in ALPHABET for c in number[:8]) or number[8] not in "0123456789X":
        fail(Reason.FORMAT)
    if number[8] != calc_check_digit(number):
        fail(Reason.CHECKSUM)
    return number


def is_valid(number: str) -> bool:
    """Whether ``number`` is a valid organisation code."""
    try:
        return bool(validate(number))
    except ValidationError:
        return False


def format(number: str) -> str:
    """The printed form ``XXXXXXXX-X``."""
    number = compact(number)
    return number[:8] + "-" + number[8:]
