"""Administrative region codes (行政区划代码, GB/T 2260) read from python-stdnum's list.

The generator needs county-level codes with their province, city and county names so
resident ids carry real regions and addresses read like real ones. python-stdnum ships
the list (``stdnum/cn/loc.dat``) it validates resident ids against; reading it here keeps
the generator and the validator on the same codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import stdnum

_LOC = Path(stdnum.__file__).parent / "cn" / "loc.dat"
_PERIOD = re.compile(r"^\[(\d{4})?-(\d{4})?\](.*)$")

#: The home prefecture of the simulated city (温州市); most residents and enterprises are local.
HOME_PREFECTURE = "3303"


@dataclass(frozen=True)
class Region:
    """A county-level region: 6-digit code and its names."""

    code: str
    province: str
    city: str
    county: str
    #: first and last year the code was assigned (0 / 9999 when open)
    start: int = 0
    end: int = 9999

    @property
    def prefix(self) -> str:
        """Province + city + county as written at the start of an address."""
        placeholder = (
            self.city == self.province or self.city.endswith(("市辖区", "直辖县级行政单位")) or self.city == "县"
        )
        city = "" if placeholder else self.city
        return f"{self.province}{city}{self.county}"


def _current_name(raw: str) -> tuple[str, bool]:
    """Last name of a code and whether it is still in use (no end year)."""
    name, _, end = _period(raw)
    return name, end == 9999


def _period(raw: str) -> tuple[str, int, int]:
    """Last name of a code and the years it was assigned under that name."""
    last = raw.split(",")[-1]
    m = _PERIOD.match(last)
    if not m:
        return last, 0, 9999
    return m.group(3), int(m.group(1) or 0), int(m.group(2) or 9999)


@lru_cache(maxsize=1)
def all_regions() -> tuple[Region, ...]:
    """Every county-level code still in use, plus the retired 330322 (洞头县) ids still carry."""
    regions: list[Region] = []
    province_code = ""
    cities: dict[str, str] = {}
    entries: list[tuple[str, str, int, int]] = []
    for line in _LOC.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.match(r'^(\s*)(\d+) (?:province|county)="([^"]*)"', line)
        if not m:
            continue
        indent, code, raw = m.groups()
        if not indent:
            province_code = code
            continue
        name, start, end = _period(raw)
        full = province_code + code
        if code.endswith("00"):
            cities[full[:4]] = name
            continue
        entries.append((full, name, start, end))
    for full, name, start, end in entries:
        current = end == 9999 or full == "330322"
        if not current or full[4:] in {"01", "20"} or name in {"市辖区", "县", "市区"}:
            continue
        prov = _province_name(full[:2])
        regions.append(Region(full, prov, cities.get(full[:4], prov), name, start, end))
    return tuple(regions)


@cache
def _province_name(code2: str) -> str:
    for line in _LOC.read_text(encoding="utf-8").splitlines():
        if line.startswith(code2 + " province="):
            return _current_name(line.split('"')[1])[0]
    return ""


@lru_cache(maxsize=1)
def home_regions() -> tuple[Region, ...]:
    """County-level regions of the home prefecture."""
    return tuple(r for r in all_regions() if r.code.startswith(HOME_PREFECTURE))
