"""The holders' authorisation to use their licences for a case (授权), as personal-information law expects.

A licence material (免提交) stands for paper only when its holder — the applicant, or a party such
as the seller of a property — has authorised its use for this case: which materials, for which
purpose, until when. Without an authorisation the hub does not look for the holder's licence and
the material is requested as paper.

The authorisation is recorded at intake with the licences found under it, shown on the case,
and revocable. A department reads a recognised licence of a case only while the authorisation
covering that material is in force (:func:`in_force_for`); the audit entry of the read names its
reference. Revoking it is announced through the outbox (``case.authorisation_revoked``); the
recorded materials stay as they were (the department has read what it read), later reads are
refused.

Every check runs before the first write (:func:`check`): a refused intake leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.catalogue import Item
from cases.errors import CaseRefused, Refusal
from cases.schemas import AuthorisationIn, AuthorisationOut, RevokeIn
from cases.tables import CaseAuthorisation, CaseRecord
from hub.outbox import emit

IN_FORCE, EXPIRED, REVOKED = "in_force", "expired", "revoked"


def _utc(value: dt.datetime) -> dt.datetime:
    # in UTC, however it was given or read (SQLite hands back naive UTC)
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def new_ref() -> str:
    """A public reference of an authorisation: ``AU`` and 12 hexadecimal digits (no personal data)."""
    return "AU" + secrets.token_hex(6).upper()


def check(
    item: Item, given: Sequence[AuthorisationIn], holders: Sequence[str], at: dt.datetime
) -> dict[str, AuthorisationIn]:
    """The authorisations of an intake by holder role; raises :class:`CaseRefused`.

    ``holders``: the roles the intake names (``applicant`` and its parties').
    """
    out: dict[str, AuthorisationIn] = {}
    for a in given:
        if a.holder not in holders:
            raise CaseRefused(
                "authorisation_holder_unknown", f"an authorisation by {a.holder!r}, who is not a party of this intake"
            )
        if a.holder in out:
            raise CaseRefused("authorisation_repeated", f"{a.holder} authorises twice: one authorisation per holder")
        for code in a.materials:
            m = item.material(code)
            if m is None or m.license_type is None or m.holder != a.holder:
                raise CaseRefused(
                    "authorisation_material_invalid",
                    f"material {code} is not a licence material of the {a.holder} in the item {item.code}",
                )
        if len(set(a.materials)) != len(a.materials):
            raise CaseRefused("authorisation_material_invalid", f"{a.holder}'s authorisation lists a material twice")
        if _utc(a.valid_until) <= _utc(at):
            raise CaseRefused("authorisation_expired", f"{a.holder}'s authorisation ends before the intake")
        out[a.holder] = a
    return out


def covered(given: Mapping[str, AuthorisationIn]) -> dict[str, frozenset[str]]:
    """The material codes each holder's authorisation covers."""
    return {role: frozenset(a.materials) for role, a in given.items()}


def record(
    session: Session,
    case: CaseRecord,
    given: Mapping[str, AuthorisationIn],
    used: Sequence[tuple[str, str, str, int]],
    *,
    actor: str,
    at: dt.datetime,
) -> list[CaseAuthorisation]:
    """Write the authorisations of an intake; ``used``: (holder role, material, licence id, version)."""
    rows = build(case, given, used, actor=actor, at=at)
    session.add_all(rows)
    session.flush()
    return rows


def build(
    case: CaseRecord,
    given: Mapping[str, AuthorisationIn],
    used: Sequence[tuple[str, str, str, int]],
    *,
    actor: str,
    at: dt.datetime,
) -> list[CaseAuthorisation]:
    """The authorisations of an intake as :func:`record` writes them, not yet added to a session."""
    return [
        CaseAuthorisation(
            ref=new_ref(), case_id=case.id, holder_role=role, materials=list(a.materials),
            licences=[{"material": m, "license_id": lid, "version": v} for r, m, lid, v in used if r == role],
            purpose=a.purpose, reference=a.reference, granted_at=_utc(at), valid_until=_utc(a.valid_until),
            granted_by=actor,
        )
        for role, a in given.items()
    ]  # fmt: skip


def of_case(session: Session, case: CaseRecord) -> list[CaseAuthorisation]:
    return list(
        session.scalars(
            select(CaseAuthorisation).where(CaseAuthorisation.case_id == case.id).order_by(CaseAuthorisation.id)
        )
    )


def state(row: CaseAuthorisation, at: dt.datetime) -> str:
    if row.revoked_at is not None:
        return REVOKED
    return IN_FORCE if _utc(row.valid_until) > _utc(at) else EXPIRED


def covering(rows: Sequence[CaseAuthorisation], holder_role: str, material_code: str) -> CaseAuthorisation | None:
    """The authorisation (of any state) by ``holder_role`` that covers ``material_code``."""
    return next((r for r in rows if r.holder_role == holder_role and material_code in (r.materials or ())), None)


def in_force_by_holder(rows: Sequence[CaseAuthorisation], at: dt.datetime) -> dict[str, frozenset[str]]:
    """What the case's authorisations in force at ``at`` cover, by holder (for materials supplied later)."""
    return {r.holder_role: frozenset(r.materials or ()) for r in rows if state(r, at) == IN_FORCE}


def note_found(rows: Sequence[CaseAuthorisation], used: Sequence[tuple[str, str, str, int]]) -> None:
    """Add licences found after intake (materials supplied after a correction) to their authorisations."""
    for role, material, license_id, version in used:
        row = covering(rows, role, material)
        if row is not None:
            kept = [e for e in row.licences or () if e.get("material") != material]
            row.licences = [*kept, {"material": material, "license_id": license_id, "version": version}]


def in_force_for(
    session: Session, case: CaseRecord, holder_role: str, material_code: str, at: dt.datetime
) -> CaseAuthorisation:
    """The authorisation under which a department reads the licence of a material; refused without one."""
    row = covering(of_case(session, case), holder_role, material_code)
    if row is None:
        raise CaseRefused(
            "authorisation_missing", f"no authorisation covers material {material_code} of this case", Refusal.FORBIDDEN
        )
    now_state = state(row, at)
    if now_state != IN_FORCE:
        raise CaseRefused(
            f"authorisation_{now_state}",
            f"the authorisation {row.ref} covering material {material_code} is {now_state}", Refusal.FORBIDDEN,
        )  # fmt: skip
    return row


def revoke(
    session: Session, case: CaseRecord, ref: str, body: RevokeIn, *, actor: str, now: dt.datetime
) -> CaseAuthorisation:
    """Revoke an authorisation of ``case``; the caller commits. Announced as ``case.authorisation_revoked``."""
    row = session.scalar(
        select(CaseAuthorisation).where(CaseAuthorisation.case_id == case.id, CaseAuthorisation.ref == ref)
    )
    if row is None:
        raise CaseRefused(
            "authorisation_not_found", "this case has no authorisation with this reference", Refusal.NOT_FOUND
        )
    if row.revoked_at is not None:
        raise CaseRefused("authorisation_revoked", f"the authorisation {ref} is already revoked", Refusal.CONFLICT)
    at = body.revoked_at or now
    if _utc(at) > _utc(now) + dt.timedelta(minutes=5):
        raise CaseRefused("time_in_future", "revoked_at lies in the future")
    if _utc(at) < _utc(row.granted_at):
        raise CaseRefused(
            "authorisation_revoked_before_granted", "revoked_at lies before the authorisation was granted"
        )
    row.revoked_at, row.revoked_by, row.revocation_reason = _utc(at), actor, body.reason
    session.flush()
    emit(
        session, "case.authorisation_revoked", case.code,
        {"code": case.code, "ref": row.ref, "holder": row.holder_role, "materials": list(row.materials or ()),
         "revoked_at": _utc(at).isoformat()},
        f"case.authorisation_revoked:{case.code}:{row.ref}", region_code=case.region_code,
    )  # fmt: skip
    return row


def out(row: CaseAuthorisation, at: dt.datetime, *, text: str | None = None) -> AuthorisationOut:
    """An authorisation as shown on the case; ``text``: the revocation reason as the reader may see it."""
    return AuthorisationOut(
        ref=row.ref, holder=row.holder_role, materials=list(row.materials or ()),
        licences=[dict(e) for e in row.licences or ()], purpose=row.purpose, reference=row.reference,
        granted_at=_utc(row.granted_at), valid_until=_utc(row.valid_until), state=state(row, at),
        revoked_at=_utc(row.revoked_at) if row.revoked_at else None, revocation_reason=text,
    )  # fmt: skip
