"""The region (行政区划) an event concerns, for subscriptions filtered by region.

An event's region is the **holder's** region where the holder's code carries one, else the
**issuer's** administrative division where the issuer's code is built on one:

- a resident id (居民身份证号码) begins with the 6-digit division code of the place that issued it;
- a USCC (统一社会信用代码, GB 32100) carries the registering authority's division code
  (登记管理机关行政区划码) in positions 3–8, a 15-digit registration number (注册号) in its first 6
  (an organisation code or taxpayer id has none);
- issuers: a 6-digit division code as such, a 9- or 12-digit division code (township, village)
  by its first 6 digits, an 11-digit tax authority code (税务机关代码: ``1`` + division + 4
  digits) by positions 2–7, an issuing organ's own USCC by positions 3–8.

A code that yields no plausible division (the first two digits must name a province) gives
no region; an event without a region reaches only subscriptions without a region filter.
Subscriptions give regions as 2-, 4- or 6-digit prefixes; a 6-digit code ending in ``00``
stands for its whole city or province (``330300`` covers ``330322``).

>>> event_region("enterprise", "91330322MA2C8XYZ1K", "13303220000")
'330322'
>>> event_region("person", "110105194912310021", "330322")
'110105'
>>> event_region("enterprise", "330300000012345", "13303220000")   # a registration number: its authority's
'330300'
>>> event_region("enterprise", "MA2C8XYZ1", "13303220000")   # an organisation code has none: the issuer's
'330322'
>>> issuer_region("11330322002567891X"), issuer_region("330303"), issuer_region("330322001000")
('330322', '330303', '330322')
>>> issuer_region("133032200000000001") is None   # positions 3-8 are no division
True
>>> region_prefix("330300"), region_prefix("330000"), region_prefix("330322"), region_prefix("3303")
('3303', '33', '330322', '3303')
"""

from __future__ import annotations

#: The province-level prefixes of GB/T 2260 (incl. Taiwan, Hong Kong and Macao).
PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42",
    "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
})  # fmt: skip


def division(code: str) -> str | None:
    """``code`` if it is a plausible 6-digit division code."""
    return code if len(code) == 6 and code.isdigit() and code[:2] in PROVINCES else None


def holder_region(holder_kind: str | None, holder_code: str | None) -> str | None:
    """The region in a holder's code (resident id, registration number: first 6 digits; USCC: positions 3–8)."""
    code = (holder_code or "").strip().upper()
    if holder_kind == "person":
        return division(code[:6]) if len(code) in (15, 18) else None
    if len(code) == 15 and code.isdigit():
        return division(code[:6])
    return division(code[2:8]) if len(code) == 18 else None


def issuer_region(issuer_code: str | None) -> str | None:
    """The division an issuer's code is built on, if it is built on one."""
    code = (issuer_code or "").strip().upper()
    if len(code) in (6, 9, 12) and code.isdigit():
        return division(code[:6])
    if len(code) == 11 and code.isdigit() and code[0] == "1":
        return division(code[1:7])
    if len(code) == 18:
        return division(code[2:8])
    return None


def event_region(holder_kind: str | None, holder_code: str | None, issuer_code: str | None) -> str | None:
    return holder_region(holder_kind, holder_code) or issuer_region(issuer_code)


def region_prefix(region: str) -> str:
    """A subscription's region as the prefix it covers (trailing ``00`` pairs dropped)."""
    prefix = region.strip()
    while len(prefix) > 2 and prefix.endswith("00"):
        prefix = prefix[:-2]
    return prefix
