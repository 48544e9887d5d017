"""Hypothesis strategies for identifiers: valid codes of every kind, then dirt and damage."""

from __future__ import annotations

from hypothesis import strategies as st

from identifiers import org_code, reg_no, resident_id, uscc
from identifiers._common import region_codes

REGIONS = sorted(region_codes())
_FULL = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}


@st.composite
def resident_ids(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(REGIONS))
    year = draw(st.integers(1840, 2030))
    month = draw(st.integers(0, 13))
    day = draw(st.integers(0, 32))
    seq = draw(st.integers(0, 999))
    body = f"{region}{year:04d}{month:02d}{day:02d}{seq:03d}"
    if draw(st.booleans()):
        return f"{region}{year % 100:02d}{month:02d}{day:02d}{seq:03d}"  # 15-digit legacy
    return body + resident_id.calc_check_digit(body)


@st.composite
def usccs(draw: st.DrawFn) -> str:
    authority = draw(st.sampled_from([*uscc.AUTHORITIES, "0", "B"]))
    entity_type = draw(st.sampled_from("1234569"))
    region = draw(st.sampled_from([*REGIONS[:50], "100000", "990000"]))
    body8 = draw(st.text(alphabet=uscc.ALPHABET, min_size=8, max_size=8))
    org = body8 + org_code.calc_check_digit(body8)
    body = f"{authority}{entity_type}{region}{org}"
    if any(c not in uscc.ALPHABET for c in body):
        return body + "0"
    return body + uscc.calc_check_digit(body)


@st.composite
def org_codes(draw: st.DrawFn) -> str:
    body = draw(st.text(alphabet=org_code.ALPHABET, min_size=8, max_size=8))
    return body + org_code.calc_check_digit(body)


@st.composite
def reg_nos(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(REGIONS))
    seq = draw(st.integers(0, 10**8 - 1))
    body = f"{region}{seq:08d}"
    return body + reg_no.calc_check_digit(body)


@st.composite
def taxpayer_ids(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(st.sampled_from(REGIONS)) + draw(org_codes())
    return draw(resident_ids())[:18].ljust(18, "0") + f"{draw(st.integers(0, 99)):02d}"


@st.composite
def damaged(draw: st.DrawFn, codes: st.SearchStrategy[str]) -> str:
    """A code with, maybe, one changed character, dirt (case, full width, separators)."""
    code = draw(codes)
    if code and draw(st.integers(0, 3)) == 0:
        pos = draw(st.integers(0, len(code) - 1))
        code = code[:pos] + draw(st.sampled_from("0123456789XAZIx")) + code[pos + 1 :]
    if draw(st.booleans()):
        code = code.lower()
    if draw(st.integers(0, 3)) == 0:
        code = "".join(_FULL.get(c, c) if draw(st.booleans()) else c for c in code)
    if code and draw(st.integers(0, 3)) == 0:
        pos = draw(st.integers(0, len(code)))
        code = code[:pos] + draw(st.sampled_from([" ", "-", ".", "\u3000", "－", "/"])) + code[pos:]
    return code


identifiers = st.one_of(
    damaged(resident_ids()),
    damaged(usccs()),
    damaged(org_codes()),
    damaged(reg_nos()),
    damaged(taxpayer_ids()),
    st.text(alphabet="0123456789XABCxyz -１２é", max_size=22),
    st.none(),
)
