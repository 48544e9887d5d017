"""Pieces every identifier module shares: code clean-up, stable reasons, region codes.

Clean-up (代码清洗) is one ``str.translate`` table so the scalar and the vectorised paths
clean identically: full-width → half-width, spaces/dashes/dots/underscores/slashes removed,
characters that print as nothing removed (zero-width, bidi controls, byte-order mark, NUL and
other controls: :mod:`hub.invisible`), lower case → upper case.

>>> clean(" ３３０３２２-１９９００１０１ ０００１x ")
'330322199001010001X'
>>> clean("D2143569-X")
'D2143569X'
>>> clean("\\ufeff3303\\u200b22199001010001\\u202ex\\x00")
'330322199001010001X'
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from pathlib import Path
from typing import NoReturn

import stdnum
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength, ValidationError

from hub.clock import local_today
from hub.invisible import INVISIBLE_TABLE

__all__ = [
    "CLEAN_TABLE",
    "Reason",
    "clean",
    "fail",
    "is_known_region",
    "is_registration_region",
    "province_codes",
    "reason_of",
    "region_end_year",
    "today",
]


def _clean_table() -> dict[int, int | None]:
    table: dict[int, int | None] = dict(INVISIBLE_TABLE)
    for code in range(0xFF01, 0xFF5F):  # full-width ASCII block
        table[code] = code - 0xFEE0
    for ch in " \t\r\n\u3000\u00a0-_./\\\u2014\u2013\u2010\u2011\u2012\uff0d\u30fb\u00b7":
        table[ord(ch)] = None
    for ch in "\uff0d\uff0e\uff0f\uff3f\uff3c":  # full-width dash, dot, slash, underscore, backslash
        table[ord(ch)] = None
    for code in range(ord("a"), ord("z") + 1):
        table[code] = code - 32
    for code in range(0xFF41, 0xFF5B):  # full-width a-z straight to upper-case A-Z
        table[code] = code - 0xFF41 + ord("A")
    return table


#: One translate table for the whole clean-up; shared with :mod:`identifiers.vectorized`.
CLEAN_TABLE: dict[int, int | None] = _clean_table()


def clean(number: str) -> str:
    """Half-width, upper-case, without spaces, dashes, dots, slashes, underscores or invisible characters."""
    return str(number).translate(CLEAN_TABLE)


class Reason:
    """Stable reason codes (the ``reason`` of ``normalize`` and the message of every exception)."""

    EMPTY = "empty"
    LENGTH = "invalid_length"
    FORMAT = "invalid_format"
    CHECKSUM = "invalid_checksum"
    BIRTH_DATE = "invalid_birth_date"
    FUTURE_BIRTH_DATE = "future_birth_date"
    REGION = "unknown_region"
    REGION_RETIRED = "region_retired_before_birth"
    AUTHORITY = "unknown_registration_authority"
    ENTITY_TYPE = "unknown_entity_type"
    ORG_CODE = "invalid_embedded_org_code"
    NO_INTERPRETATION = "no_valid_interpretation"
    AMBIGUOUS = "ambiguous"


_EXC: dict[str, type[ValidationError]] = {
    Reason.LENGTH: InvalidLength,
    Reason.FORMAT: InvalidFormat,
    Reason.CHECKSUM: InvalidChecksum,
    Reason.ORG_CODE: InvalidChecksum,
}


def fail(reason: str) -> NoReturn:
    """Raise stdnum's typed exception for ``reason`` with the stable reason code as message."""
    raise _EXC.get(reason, InvalidComponent)(reason)


def reason_of(exc: ValidationError) -> str:
    """The stable reason code an identifier module put into ``exc``."""
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    if isinstance(exc, InvalidLength):
        return Reason.LENGTH
    if isinstance(exc, InvalidChecksum):
        return Reason.CHECKSUM
    if isinstance(exc, InvalidFormat):
        return Reason.FORMAT
    return "invalid_component"


def today() -> dt.date:
    """Today's date where the hub serves (a function so tests and both paths agree on one clock)."""
    return local_today()


# --- administrative region codes (行政区划代码, GB/T 2260) ----------------------------------

_LOC = Path(stdnum.__file__).parent / "cn" / "loc.dat"
_COUNTY = re.compile(r'county="([^"]*)"')
_PERIOD = re.compile(r"^\[(\d{4})?-(\d{4})?\]")


@cache
def region_end_years() -> dict[str, int]:
    """Every 6-digit region code GB/T 2260 has *ever* assigned → last year it was in use.

    Read from python-stdnum's ``cn/loc.dat`` (the code history since 1980); 9999 means still
    in use. A resident id keeps the code of the place that issued it for life, so a retired
    code stays valid for everyone born before it was retired.
    """
    ends: dict[str, int] = {}
    province = ""
    for line in _LOC.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, props = line.strip().partition(" ")
        if not line.startswith(" "):
            province = key
            ends[province + "0000"] = 9999
            continue
        match = _COUNTY.search(props)
        names = match.group(1).split(",") if match else [""]
        end = 0
        for name in names:
            period = _PERIOD.match(name)
            end = max(end, int(period.group(2)) if period and period.group(2) else 9999)
        ends[province + key] = max(end, ends.get(province + key, 0))
    return ends


@cache
def region_codes() -> frozenset[str]:
    """Every 6-digit region code GB/T 2260 has ever assigned (retired ones included)."""
    return frozenset(region_end_years())


def region_end_year(code: str) -> int:
    """Last year ``code`` was in use (9999: still in use, 0: never assigned).

    A prefecture's ``XXXX00`` code counts as in use while the prefecture has any code.

    >>> region_end_year("310103"), region_end_year("330322"), region_end_year("999999")
    (2011, 2015, 0)
    """
    end = region_end_years().get(code, 0)
    if end == 0 and code.endswith("00") and code[:4] in _prefectures():
        return 9999
    return end


@cache
def province_codes() -> frozenset[str]:
    """The 2-digit province-level prefixes (省级行政区划代码)."""
    return frozenset(code[:2] for code in region_codes())


@cache
def _prefectures() -> frozenset[str]:
    return frozenset(code[:4] for code in region_codes())


def is_known_region(code: str) -> bool:
    """A county-level code GB/T 2260 ever listed, or the ``XXXX00`` code of a listed prefecture.

    >>> is_known_region("330322"), is_known_region("310103"), is_known_region("999999")
    (True, True, False)
    """
    if code in region_codes():
        return True
    return code.endswith("00") and code[:4] in _prefectures()


def is_registration_region(code: str) -> bool:
    """Region part of an enterprise code: a known province, or ``10`` (national registries).

    Only the province level is checked: registration authorities' codes follow the region
    list loosely (development zones, merged counties), so a finer check would reject real codes.

    >>> is_registration_region("330300"), is_registration_region("100000"), is_registration_region("990000")
    (True, True, False)
    """
    return len(code) == 6 and code.isdigit() and (code[:2] in province_codes() or code[:2] == "10")
