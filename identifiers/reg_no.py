"""Enterprise registration number (注册号, the pre-2015 15-digit business-licence number).

Six digits of the registration authority (工商行政管理机关代码, its GB/T 2260 region or
``100000`` for the national administration), eight digits of sequence, and an ISO 7064
MOD 11,10 check digit (GS 15-2006). Only the province level of the authority is checked
(see :func:`identifiers._common.is_registration_region`).

>>> validate('330300000012345'[:14] + calc_check_digit('33030000001234'))
'330300000012343'
>>> validate('330300 000012 343')
'330300000012343'
>>> validate('330300000012344')
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidChecksum: invalid_checksum
>>> validate('990300000012343')
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidComponent: unknown_region
"""

from __future__ import annotations

from stdnum.exceptions import ValidationError
from stdnum.iso7064 import mod_11_10

from identifiers._common import Reason, clean, fail, is_registration_region

__all__ = ["calc_check_digit", "compact", "format", "is_valid", "validate"]


def compact(number: str) -> str:
    """The number without separators, half-width."""
    return clean(number)


def calc_check_digit(number: str) -> str:
    """The MOD 11,10 check digit of the first 14 digits."""
    return str(mod_11_10.calc_check_digit(compact(number)[:14]))


def validate(number: str) -> str:
    """Check length, digits, authority region and check digit; return the compact form."""
    number = compact(number)
    if len(number) != 15:
        fail(Reason.LENGTH)
    if not (number.isdigit() and number.isascii()):
        fail(Reason.FORMAT)
    if not is_registration_region(number[:6]):
        fail(Reason.REGION)
    if number[14] != calc_check_digit(number):
        fail(Reason.CHECKSUM)
    return number


def is_valid(number: str) -> bool:
    """Whether ``number`` is a valid registration number."""
    try:
        return bool(validate(number))
    except ValidationError:
        return False


def format(number: str) -> str:
    """The standard presentation: the compact 15 digits."""
    return compact(number)
