"""Which holder a presented code means (持证主体识别): legacy codes resolve through identity.

A caller may name a holder by an old code (15-digit resident id, registration number,
organisation code, old taxpayer id); the identity part's normaliser and master index turn
it into the canonical resident id or USCC. When the identity part is not installed or
does not know the code, the cleaned-up code itself is used.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from hub.invisible import strip_invisible

log = logging.getLogger(__name__)


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


def _attr(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


@functools.lru_cache(maxsize=4)
def _module(name: str) -> Any:
    """The identity module, or ``None`` when that part is not installed (looked up once, not per request)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _normalize(code: str) -> str | None:
    module = _module("identity.normalize")
    if module is None:
        return None
    try:
        result = module.normalize(code)
    except Exception:  # a malformed code is simply not normalisable
        return None
    candidates = _attr(result, "candidates") or []
    if _attr(result, "kind") == "ambiguous" and len(candidates) == 1:
        # one reading only (e.g. a 15-digit old resident id): take its canonical form
        return str(_attr(candidates[0], "canonical") or "") or None
    canonical = _attr(result, "canonical")
    valid = _attr(result, "valid")
    return str(canonical) if canonical and valid is not False else None


def _master_lookup(session: Session, code: str) -> str | None:
    """Ask the identity master index for the canonical code behind a legacy one."""
    module = _module("identity.master")
    if module is None:
        return None
    for name in ("resolve_code", "resolve", "canonical_code"):
        fn = getattr(module, name, None)
        if fn is None:
            continue
        try:
            result = fn(session, code)
        except Exception:
            log.debug("identity lookup failed for a code", exc_info=True)
            return None
        if result is None:
            return None
        if isinstance(result, str):
            return result
        canonical = _attr(result, "canonical") or _attr(result, "canonical_code")
        return str(canonical) if canonical else None
    return None


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


_CANONICAL_SHAPE = re.compile(r"^(?:[0-9]{17}[0-9X]|[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10})$")


def resolve_canonical(code: str) -> ResolvedHolder | None:
    """The holder for a code already in canonical shape (no database needed), else ``None``.

    >>> resolve_canonical(" 91330322MA2C8XYL1K").resolved_via, resolve_canonical("330322000012346")
    ('normalized', None)
    """
    # plain ASCII letters and digits are their own NFKC form: upper-casing is all clean() would do
    cleaned = code.upper() if code.isascii() and code.isalnum() else clean(code)
    if _CANONICAL_SHAPE.match(cleaned):
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
    canonical = _master_lookup(session, normalized)
    if canonical and canonical != normalized:
        return ResolvedHolder(code, canonical, "master_index", (canonical, normalized))
    return ResolvedHolder(code, normalized, via, (normalized,))


def warm_up() -> None:
    """Import the identity part now rather than on the first request (it is heavy to import)."""
    _module("identity.normalize")
    _module("identity.master")
