"""Who applies (申请人), and who else a case names: any code the identity index knows.

An applicant may present a resident id, a USCC or a legacy code (a 15-digit id, a registration
number, an organisation code, an old taxpayer id); the identity part resolves it to the
canonical code licences are filed under (:func:`identity.rules.resolve_one`, the one-code form of
:func:`identity.resolve.resolve_codes` with the same answers, which writes nothing). The outcomes:

- known to the master index → that identity (``master_index``);
- a valid resident id or USCC the index does not know → refused (``applicant_unknown``), or,
  when the item allows it (``unknown_applicant: provisional``), taken under a *provisional*
  identity: the case keeps the canonical code, marked ``provisional`` (nothing is written to the
  identity index from here);
- a resident id or USCC that fails its own rules, or no code at all → ``invalid_code``;
- a legacy code the cross-walk does not know → ``applicant_unknown`` (a legacy code cannot stand
  for a new identity).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from cases.catalogue import APPLICANT
from cases.errors import CaseRefused, Refusal
from hub.dbapi import prepared, session_dbapi
from identifiers.normalize import normalize
from identity.rules import Resolved, resolve_one
from identity.statuses import NEW, RESOLVED
from identity.tables import ENTERPRISE, PERSON, IdentityCrosswalk

MASTER_INDEX, PROVISIONAL = "master_index", "provisional"
#: Kinds of code that are canonical themselves: unresolved, they failed their own rules.
_CANONICAL_KINDS = frozenset({"resident_id", "uscc"})
MAX_CODE = 64


@dataclass(frozen=True)
class Identified:
    """A party as the case records it."""

    kind: str
    #: the canonical resident id or USCC
    code: str
    #: ``master_index`` or ``provisional``
    identity: str


@dataclass(frozen=True)
class Resolution:
    """What the identity index says about a presented code, for each kind of party."""

    #: kind → canonical code, for the kinds the code resolves to (``None`` in ``status`` when not)
    canonical: dict[str, str]
    status: dict[str, str]
    malformed: bool


def resolve(
    session: Session,
    presented: str,
    *,
    normalized: Mapping[str, Any] | None = None,
    asked: Mapping[str, Resolved] | None = None,
) -> Resolution:
    """Ask the identity index about ``presented`` as a person's and as an enterprise's code
    (``asked``: the answers for some kinds already had, ``normalized`` the code's normal form)."""
    if not presented or len(presented) > MAX_CODE:
        return Resolution({}, {}, True)
    canonical: dict[str, str] = {}
    status: dict[str, str] = {}
    kinds: set[str] = set()
    norm = normalized if normalized is not None else normalize(presented)  # once, for both kinds of party
    for kind in (PERSON, ENTERPRISE):
        row = (asked or {}).get(kind) or resolve_one(session, presented, kind, normalized=norm)
        kinds.add(row.code_kind)
        status[kind] = row.status
        if row.status in (RESOLVED, NEW) and row.canonical_code:
            canonical[kind] = row.canonical_code
    malformed = not canonical and (kinds <= {"unknown"} or bool(kinds & _CANONICAL_KINDS))
    return Resolution(canonical, status, malformed)


def identify(session: Session, presented: str, kinds: Sequence[str], *, provisional: bool, field: str) -> Identified:
    """The party behind ``presented``, of one of ``kinds``; raises :class:`CaseRefused`.

    ``field`` names the input in the refusal (the code itself is never repeated).

    The kinds the party may be are asked first, in :func:`resolve`'s order: the first one the
    index knows is the answer :func:`resolve` would lead to, so the other kind is asked only when
    none is (to tell an unknown code from one of a kind the item does not take).
    """
    asked: dict[str, Resolved] = {}
    norm = normalize(presented) if presented and len(presented) <= MAX_CODE else None
    if norm is not None:
        for kind in (PERSON, ENTERPRISE):
            if kind not in kinds:
                continue
            row = asked[kind] = resolve_one(session, presented, kind, normalized=norm)
            if row.status == RESOLVED and row.canonical_code:
                return Identified(kind, row.canonical_code, MASTER_INDEX)
    found = resolve(session, presented, normalized=norm, asked=asked)
    if found.malformed:
        raise CaseRefused("invalid_code", f"{field}: not a valid resident id, USCC or legacy code")
    known = [k for k, s in found.status.items() if s == RESOLVED]
    for kind in known:
        if kind in kinds:
            return Identified(kind, found.canonical[kind], MASTER_INDEX)
    if known:
        raise CaseRefused("applicant_kind_not_allowed", f"{field}: the item is for {' or '.join(kinds)} applicants")
    new = [k for k, s in found.status.items() if s == NEW]
    if not new:
        raise CaseRefused("applicant_unknown", f"{field}: the identity index does not know this code")
    allowed = [k for k in new if k in kinds]
    if not allowed:
        raise CaseRefused("applicant_kind_not_allowed", f"{field}: the item is for {' or '.join(kinds)} applicants")
    if not provisional:
        raise CaseRefused(
            "applicant_unknown",
            f"{field}: the identity index does not know this code, and the item takes no provisional applicant",
        )
    return Identified(allowed[0], found.canonical[allowed[0]], PROVISIONAL)


#: a party's legacy codes in force, oldest first (built once: intake asks it for every party)
_LEGACY = (
    select(IdentityCrosswalk.legacy_code)
    .where(IdentityCrosswalk.canonical_code == bindparam("code"), IdentityCrosswalk.entity_kind == bindparam("kind"),
           IdentityCrosswalk.undone_at.is_(None))
    .order_by(IdentityCrosswalk.id)
)  # fmt: skip


def codes_of(session: Session, party: Identified) -> tuple[str, ...]:
    """Every code the party's licences may be filed under: the canonical one, then its legacy codes."""
    # prepared once, on the DBAPI cursor of the session's transaction: none of SQLAlchemy's execution
    raw, dialect = session_dbapi(session)
    legacy = [row[0] for row in prepared(_LEGACY, dialect).all(raw, {"code": party.code, "kind": party.kind})]
    return (party.code, *dict.fromkeys(c for c in legacy if c != party.code))


def codes_by_holder(
    session: Session, applicant: Identified, others: Mapping[str, Identified]
) -> dict[str, tuple[str, ...]]:
    """Every code of the applicant and of each party, by holder (``applicant`` or the party's role)."""
    return {APPLICANT: codes_of(session, applicant)} | {role: codes_of(session, p) for role, p in others.items()}


def lookup_codes(session: Session, presented: str) -> tuple[str, ...]:
    """The canonical codes a presented holder code may stand for (for lists by holder);
    raises ``invalid_code`` for a malformed one, empty for a code nobody has."""
    found = resolve(session, presented)
    if found.malformed:
        raise CaseRefused("invalid_code", "holder code: not a valid resident id, USCC or legacy code", Refusal.INVALID)
    return tuple(dict.fromkeys(found.canonical.values()))
