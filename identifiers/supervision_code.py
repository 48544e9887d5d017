"""Unified service supervision code (统一服务监管码): the one number of an application (办件).

The window prints it on the receipt; with it anyone follows the case, on the phone, at
the window or online. Twenty characters in four parts::

    330322 20250612 7K3PQ 0
    │      │        │     └ check character (校验码), MOD 31 as in GB 32100
    │      │        └ serial (顺序码): five characters drawn at random
    │      └ the day the window received it (受理日期), YYYYMMDD, where the hub serves
    └ the receiving window's administrative division (行政区划代码, GB/T 2260)

* The serial and the check character use the unified social credit code's alphabet,
  ``0-9A-HJ-NPQRTUWXY`` (31 characters: no ``I``, ``O``, ``Z``, ``S``, ``V``, which read as
  ``1``, ``0``, ``2``, ``5``, ``U``). When a person types one of the first four anyway,
  :func:`compact` reads it as the digit it looks like.
* The serial is random, not a counter: codes of one window and day cannot be walked through
  (the status page is public), and 31⁵ ≈ 28.6 million codes per window and day leave room.
  Uniqueness is the case repository's (a unique key, a new draw on collision).
* The check character makes the weighted sum of all twenty values ``≡ 0 (mod 31)`` with
  the weights ``3^i mod 31`` (``i`` = 0 … 18 from the left) and 1 for the check character
  itself, as the USCC does. 31 is prime and every weight is non-zero, so **every single
  substituted character** changes the sum; adjacent weights differ (3 ≠ 1 mod 31) and the
  last data weight is not 1, so **every transposition of two adjacent different characters**
  changes it too (the property tests try every one of them).
* Printed (:func:`format`) as ``330322-20250612-7K3PQ0``: where, when, which. Being 20
  characters long it never reads as a resident id (18 or 15) or a USCC (18).

Nothing here touches personal data: a supervision code names a case, not a person.

>>> validate('330322-20250612-7K3PQ0')
'330322202506127K3PQ0'
>>> validate(' 3303２２ 20250612 7k3pq0 ')  # full-width digits, spaces, lower case
'330322202506127K3PQ0'
>>> validate('330322202506127K3PQ1')
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidChecksum: invalid_checksum
>>> validate('330322202506217K3PQ0')  # two digits of the date swapped
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidChecksum: invalid_checksum
>>> validate('330322202506127K3PQ')
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidLength: invalid_length
>>> validate('33032220250612VK3PQ5')  # V is not in the alphabet
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidFormat: invalid_format
>>> validate('330322-2025O612-7K3PQ0')  # a letter O where a zero belongs is read as 0
'330322202506127K3PQ0'
>>> validate('330322202513017K3PQF')  # the check fits, the 13th month does not
Traceback (most recent call last):
    ...
stdnum.exceptions.InvalidComponent: invalid_date
>>> calc_check_digit('330322202506127K3PQ')
'0'
>>> format('330322202506127k3pq0')
'330322-20250612-7K3PQ0'
>>> get_region('330322202506127K3PQ0'), get_date('330322202506127K3PQ0')
('330322', datetime.date(2025, 6, 12))
>>> import random; generate('330322', datetime.date(2025, 6, 12), rng=random.Random(7))
'33032220250612AY4CLR'
>>> is_valid(generate('330322', datetime.date(2025, 6, 12)))
True
"""

from __future__ import annotations

import datetime
import random
import re
import secrets
import unicodedata

from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength, ValidationError

__all__ = [
    "ALPHABET",
    "LENGTH",
    "calc_check_digit",
    "compact",
    "format",
    "generate",
    "get_date",
    "get_region",
    "is_valid",
    "validate",
]

#: The USCC's alphabet (GB 32100): digits and upper-case letters without I, O, Z, S, V.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
#: Characters in the compact form: region 6, date 8, serial 5, check 1.
LENGTH = 20
SERIAL_LENGTH = 5
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_WEIGHTS = tuple(pow(3, i, 31) for i in range(LENGTH - 1))
#: Letters outside the alphabet that a person typing a code means as digits.
_READ_AS = str.maketrans({"O": "0", "I": "1", "Z": "2", "S": "5"})
#: Text that :func:`compact` leaves as it is: digits and upper-case letters other than ``O I Z S``.
_PLAIN = re.compile(r"[0-9A-HJ-NP-RT-Y]*")
_SEPARATORS = frozenset(" -._/\u3000\u00a0\t\r\n")
#: Province-level prefixes of GB/T 2260 (incl. Taiwan, Hong Kong and Macao).
_PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42",
    "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
})  # fmt: skip


def compact(number: str) -> str:
    """The code without separators or invisible characters, half-width, upper-case; ``O I Z S`` read as ``0 1 2 5``.

    >>> compact('３３０３２２－２０２５０６１２－７ｋ３ｐｑ０')
    '330322202506127K3PQ0'
    """
    text = str(number)
    if _PLAIN.fullmatch(text):
        return text  # already compact: nothing below would change it
    text = unicodedata.normalize("NFKC", text)
    kept = (ch for ch in text if ch not in _SEPARATORS and unicodedata.category(ch) not in ("Cf", "Cc"))
    return "".join(kept).upper().translate(_READ_AS)


def _checksum(number: str) -> int:
    return sum(w * _VALUE[ch] for w, ch in zip(_WEIGHTS, number, strict=False)) % 31


def calc_check_digit(number: str) -> str:
    """The check character of the first 19 characters (region, date, serial)."""
    body = compact(number)[: LENGTH - 1]
    if len(body) != LENGTH - 1 or any(ch not in _VALUE for ch in body):
        raise InvalidFormat("invalid_format")
    return ALPHABET[-_checksum(body) % 31]


def _date(number: str) -> datetime.date:
    text = number[6:14]
    try:
        return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise InvalidComponent("invalid_date") from None


def validate(number: str) -> str:
    """The compact code if it is a valid supervision code; raises stdnum's typed exceptions.

    The order: length, characters, check character, then the parts (division and date).
    """
    number = compact(number)
    if len(number) != LENGTH:
        raise InvalidLength("invalid_length")
    if not number[:14].isdigit() or not number.isascii() or any(ch not in _VALUE for ch in number[14:]):
        raise InvalidFormat("invalid_format")
    if (_checksum(number[:-1]) + _VALUE[number[-1]]) % 31 != 0:
        raise InvalidChecksum("invalid_checksum")
    if number[:2] not in _PROVINCES:
        raise InvalidComponent("unknown_region")
    _date(number)
    return number


def is_valid(number: str) -> bool:
    """Whether ``number`` is a valid supervision code (any input: never raises)."""
    try:
        return bool(validate(number))
    except (ValidationError, TypeError):
        return False


def format(number: str, separator: str = "-") -> str:
    """The printed form: division, date, serial with its check character."""
    number = compact(number)
    return separator.join((number[:6], number[6:14], number[14:]))


def get_region(number: str) -> str:
    """The receiving window's division code (GB/T 2260)."""
    return validate(number)[:6]


def get_date(number: str) -> datetime.date:
    """The day the application was received."""
    return _date(validate(number))


def generate(region: str, day: datetime.date, *, rng: random.Random | None = None) -> str:
    """A new code for an application received at ``region`` on ``day`` (serial drawn at random).

    ``rng`` makes the draw repeatable (tests); by default the serial comes from :mod:`secrets`.
    """
    if len(region) != 6 or not region.isdigit() or region[:2] not in _PROVINCES:
        raise InvalidComponent("unknown_region")
    choice = rng.choice if rng is not None else secrets.choice
    body = f"{region}{day:%Y%m%d}" + "".join(choice(ALPHABET) for _ in range(SERIAL_LENGTH))
    return body + calc_check_digit(body)
