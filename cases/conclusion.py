"""Joint issuance and the one output window (并联审批，窗口统一出件): a case concluded (办结) with its
outcome, the licences its departments issued for it listed together, and a promised licence that
never arrived flagged rather than silently closed.

- When a case's log first adds up to ``concluded`` or ``rejected`` (:func:`record`, called by
  :func:`cases.service.refresh` in the step's transaction) its conclusion is written once
  (``case_conclusion``): the outcome (``granted`` or ``rejected``), when the last stage concluded,
  the licences its approved stages issue (the catalogue's ``yields``) and those not yet in the
  e-licence store under the case's supervision code (a licence's issuing record carries the code;
  :func:`e_license_store.index.licenses_of_case`).
- A department's licence travels through its own feed and may reach the store after its step:
  the supervision task (:func:`check_missing`) looks again at every conclusion still missing a
  licence; one still missing ``grace`` after the conclusion is flagged (``flagged_at``) and
  announced once to the supervision office (``supervision.licence_missing``, key
  ``supervision.licence_missing:<code>``).
- The output (出件) is the window's ``delivered`` step: picked up at the window, or posted with
  the carrier and tracking number (:func:`output`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.catalogue import WINDOW, Catalogue, load_catalogue
from cases.steps import LoggedStep, Step
from cases.supervision_tables import CaseConclusion
from cases.tables import CaseRecord
from e_license_store.tables import LicenseIndexEntry
from hub.models import utcnow
from hub.outbox import emit_many

GRANTED, REJECTED = "granted", "rejected"
MISSING_EVENT = "supervision.licence_missing"
#: how long a promised licence may take to reach the store after its stage concluded
GRACE = dt.timedelta(hours=24)
#: codes per query to the licence index
CHUNK = 1000


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC


def expected_licences(item_yields: Mapping[str, Sequence[str]], timeline: Sequence[LoggedStep]) -> list[dict[str, str]]:
    """The licences the approved stages issue, by department in the catalogue's stage order."""
    approved = {s.department for s in timeline if s.step is Step.APPROVED and s.impossible is None}
    return [
        {"department": department, "license_type_code": t}
        for department, types in item_yields.items()
        if department in approved
        for t in types
    ]


def issued_types(session: Session, codes: Iterable[str]) -> dict[str, set[str]]:
    """The licence types in the store issued for each supervision code."""
    wanted = sorted(set(codes))
    out: dict[str, set[str]] = {c: set() for c in wanted}
    for lo in range(0, len(wanted), CHUNK):
        q = select(LicenseIndexEntry.case_code, LicenseIndexEntry.license_type_code).where(
            LicenseIndexEntry.case_code.in_(wanted[lo : lo + CHUNK])
        )
        for code, type_code in session.execute(q):
            out[str(code)].add(str(type_code))
    return out


def _missing(expected: Sequence[Mapping[str, str]], found: set[str]) -> list[dict[str, str]]:
    return [dict(e) for e in expected if e["license_type_code"] not in found]


def record(
    session: Session,
    case: CaseRecord,
    timeline: Sequence[LoggedStep],
    status: str,
    *,
    catalogue: Catalogue | None = None,
    now: dt.datetime | None = None,
) -> CaseConclusion | None:
    """The case's conclusion, written the first time its status is concluded or rejected."""
    if status not in ("concluded", "rejected"):
        return None
    row = session.get(CaseConclusion, case.id)
    if row is not None:
        return row
    item = (catalogue or load_catalogue()).item(case.item_code)
    yields = {s.department: s.yields for s in item.stages}
    expected = expected_licences(yields, timeline) if status == "concluded" else []
    missing = _missing(expected, issued_types(session, [case.code])[case.code]) if expected else []
    times = [_utc(s.occurred_at) for s in timeline if s.department != WINDOW and s.impossible is None]
    row = CaseConclusion(
        case_id=case.id, outcome=GRANTED if status == "concluded" else REJECTED,
        concluded_at=max(times) if times else _utc(case.received_at), expected=expected, missing=missing,
        complete=not missing, checked_at=now or utcnow(),
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class Checked:
    looked_at: int
    completed: int
    flagged: int


def check_missing(session: Session, *, now: dt.datetime | None = None, grace: dt.timedelta = GRACE) -> Checked:
    """Every conclusion still missing a licence looked at again; those past ``grace`` flagged and announced."""
    now = now or utcnow()
    rows = list(session.scalars(select(CaseConclusion).where(CaseConclusion.complete.is_(False))))
    if not rows:
        return Checked(0, 0, 0)
    cases = {
        cid: (code, item, region)
        for cid, code, item, region in session.execute(
            select(CaseRecord.id, CaseRecord.code, CaseRecord.item_code, CaseRecord.region_code).where(
                CaseRecord.id.in_([r.case_id for r in rows])
            )
        )
    }
    found = issued_types(session, [c[0] for c in cases.values()])
    completed, events = 0, []
    for row in rows:
        code, item, region = cases[row.case_id]
        row.missing, row.checked_at = _missing(row.expected, found[code]), now
        if not row.missing:
            row.complete, completed = True, completed + 1
        elif row.flagged_at is None and _utc(row.concluded_at) + grace <= now:
            row.flagged_at = now
            events.append({
                "event_type": MISSING_EVENT, "subject": code, "region_code": region,
                "payload": {"code": code, "item_code": item, "missing": row.missing,
                            "concluded_at": _utc(row.concluded_at).isoformat()},
                "idempotency_key": f"{MISSING_EVENT}:{code}",
            })  # fmt: skip
    emit_many(session, events)
    session.flush()
    return Checked(len(rows), completed, len(events))


def output(timeline: Sequence[LoggedStep]) -> dict[str, Any] | None:
    """How the result left the window (出件): the first ``delivered`` step's method, time, carrier and
    tracking number; ``None`` while it waits."""
    for s in timeline:
        if s.department == WINDOW and s.step is Step.DELIVERED and s.impossible is None:
            detail = s.detail or {}
            return {"method": detail.get("method", "pickup"), "at": _utc(s.occurred_at),
                    "carrier": detail.get("carrier"), "tracking_number": detail.get("tracking_number")}  # fmt: skip
    return None
