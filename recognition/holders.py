"""Which holder a presented code means (持证主体识别): legacy codes resolve through identity.

A caller may name a holder by an old code (15-digit resident id, registration number,
organisation code, old taxpayer id); :func:`identifiers.normalize.normalize` and the master
index (:func:`identity.master.resolve_code`) turn it into the canonical resident id or USCC.
When neither knows the code, the cleaned-up code itself is used.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from hub.invisible import strip_invisible
from identifiers import shapes
from identifiers.normalize import normalize
from identity.master import resolve_code


@dataclass(frozen=True)
class ResolvedHolder:
    """The code as presented, the canonical code the hub files licences under, and how."""

    presented: str
    canonical: str
    #: ``as_given``, ``normalized`` or ``master_index``.
    resolved_via: str
    #: Every code to search the licence index with (canonical first, then known legacy codes).
    codes: tuple[str, ...] = field(default=())


def clean(code: str) -> str:
    """Full-width to half-width, no spaces, dashes or invisible characters, upper case.

    >>> clean(" 9133０３２２-MA2８ｘ ")
    '91330322MA28X'
    """
    text = unicodedata.normalize("NFKC", strip_invisible(code))
    return "".join(ch for ch in text if ch not in " -\t\u3000").upper()


def _normalize(code: str) -> str | None:
    """The code's own canonical form when it is valid (one reading of an ambiguous code), else ``None``."""
    result = normalize(code)
    candidates = result.get("candidates") or []
    if result["kind"] == "ambiguous" and len(candidates) == 1:
        # one reading only (e.g. a 15-digit old resident id): take its canonical form
        return str(candidates[0].get("canonical") or "") or None
    canonical = result["canonical"]
    return str(canonical) if canonical and result["valid"] is not False else None


def is_resident_id(code: str) -> bool:
    """Shaped like a resident id (公民身份号码) with a real birth date; a wrong check digit still counts.

    Masking errs on the safe side: a code that might be personal data is treated as such.

    >>> is_resident_id("330322198001011234"), is_resident_id("330322800101123"), is_resident_id("91330322MA2C8XYZ1K")
    (True, True, False)
    """
    code = code.strip().upper()
    if len(code) == 18 and code[:17].isdigit() and (code[17].isdigit() or code[17] == "X"):
        birth = code[6:14]
    elif len(code) == 15 and code.isdigit():
        birth = "19" + code[6:12]
    else:
        return False
    try:
        dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
    except ValueError:
        return False
    return 1900 <= int(birth[:4]) <= 2100


def resolve_canonical(code: str) -> ResolvedHolder | None:
    """The holder for a code already in canonical shape (no database needed), else ``None``.

    >>> resolve_canonical(" 91330322MA2C8XYL1K").resolved_via, resolve_canonical("330322000012346")
    ('normalized', None)
    """
    # plain ASCII letters and digits are their own NFKC form: upper-casing is all clean() would do
    cleaned = code.upper() if code.isascii() and code.isalnum() else clean(code)
    if shapes.HOLDER.match(cleaned):
        return ResolvedHolder(code, cleaned, "normalized" if cleaned != code else "as_given", (cleaned,))
    return None


def resolve_holder(session: Session, code: str) -> ResolvedHolder:
    """Resolve a presented holder code.

    An 18-character code already in the shape of a resident id or USCC is the code licences
    are filed under (normalising it would only upper-case it, which ``clean`` does): it skips
    the identity part, which keeps the hot lookup path cheap. Other codes — 15-digit resident
    ids, organisation codes, registration numbers, old taxpayer ids — go through the identity
    normaliser and master index.
    """
    shaped = resolve_canonical(code)
    if shaped is not None:
        return shaped
    cleaned = clean(code)
    normalized = _normalize(cleaned) or cleaned
    via = "normalized" if normalized != code else "as_given"
    canonical = resolve_code(session, normalized)
    if canonical and canonical != normalized:
        return ResolvedHolder(code, canonical, "master_index", (canonical, normalized))
    return ResolvedHolder(code, normalized, via, (normalized,))
