"""An intake's rows written in a handful of statements equal what the case repository's one-change
functions write for it (``append``, ``open_stages``, ``refresh``, ``announce_*``, ``release``): the
same case, materials, authorisations, steps, dispatches, clocks and outbox events in the same
order — for accepted, staged (a later stage waits), correction-requested and not-accepted intakes,
received now or days ago in another timezone (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from cases import authorisation, dispatch, intake
from cases import materials as mat
from cases import service as svc
from cases.catalogue import WINDOW, Item
from cases.notices import NOTICE_EVENT
from cases.schemas import AuthorisationIn, IntakeIn
from cases.steps import Step
from cases.supervision_tables import CaseClock
from cases.tables import CaseAuthorisation, CaseDispatch, CaseMaterial, CaseRecord, CaseStep
from hub.models import OutboxEvent
from identifiers import supervision_code
from tests.cases.world import ADDRESS, E1, P1, World, consent, joint_registration

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _step_by_step(
    session: Session,
    case: CaseRecord,
    item: Item,
    decisions: Sequence[mat.Decision],
    consents: Mapping[str, AuthorisationIn],
    *,
    actor: str,
    received_at: dt.datetime,
    now: dt.datetime,
) -> None:
    """The intake's writes one change at a time, through the functions every later change uses."""
    session.add(case)
    session.flush()
    for d in decisions:
        session.add(
            CaseMaterial(
                case_id=case.id, material_code=d.material.code, name=d.material.name, required=d.material.required,
                holder_role=d.material.holder, license_type_code=d.material.license_type, provision=d.provision,
                license_id=d.license_id, license_version=d.license_version, found_by=d.found_by,
                promised_by=d.promised_by, updated_at=svc.utc(now),
            )
        )  # fmt: skip
    used = [(d.material.holder, d.material.code, d.license_id, d.license_version) for d in decisions
            if d.license_id is not None and d.license_version is not None]  # fmt: skip
    authorisation.record(session, case, consents, used, actor=actor, at=received_at)
    outcome, detail = case.intake_outcome, case.outcome_detail or {}
    rows = [svc.append(session, case, WINDOW, 1, Step.RECEIVED, received_at, actor=actor, now=now)[0]]
    second = {
        "not_accepted": (Step.NOT_ACCEPTED, {"reasons": detail.get("reasons", [])}),
        "correction_required": (Step.CORRECTION_REQUESTED, {"missing": detail.get("missing", [])}),
    }.get(outcome, (Step.ACCEPTED, {"outcome": outcome}))
    rows.append(svc.append(session, case, WINDOW, 2, second[0], received_at, actor=actor, detail=second[1],
                           now=now)[0])  # fmt: skip
    if outcome.startswith("accepted"):
        svc.open_stages(session, case, item, received_at)
    reading = svc.refresh(session, case, now)
    svc.announce_received(session, case)
    for row in rows:
        svc.announce_step(session, case, row, reading.status)
    dispatch.release(session, case, reading.stages, received_at)


def _plain(value: Any, case: CaseRecord, refs: Sequence[str]) -> Any:
    """``value`` with the case's code and the authorisations' references replaced (they differ by draw)."""
    text = json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
    text = text.replace(supervision_code.format(case.code), "<PRINTED>").replace(case.code, "<CODE>")
    for i, ref in enumerate(refs):
        text = text.replace(ref, f"<AU{i}>")
    return json.loads(text)


def _columns(row: Any, leave_out: Sequence[str]) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in leave_out}


def _written(session: Session, code: str) -> dict[str, Any]:
    """Everything stored for the case under ``code`` (ids, draws and the clocks' write time left out)."""
    case = session.scalars(select(CaseRecord).where(CaseRecord.code == code)).one()

    def of(model: Any, order: Any, leave_out: Sequence[str]) -> list[dict[str, Any]]:
        rows = session.scalars(select(model).where(model.case_id == case.id).order_by(*order))
        return [_columns(r, ("id", "case_id", *leave_out)) for r in rows]

    grants = list(session.scalars(select(CaseAuthorisation).where(CaseAuthorisation.case_id == case.id)
                                  .order_by(CaseAuthorisation.id)))  # fmt: skip
    refs = [g.ref for g in grants]
    events = session.scalars(select(OutboxEvent).where(OutboxEvent.subject == code).order_by(OutboxEvent.id))
    out = {
        "case": _columns(case, ("id", "code")),
        "materials": of(CaseMaterial, (CaseMaterial.material_code,), ()),
        "authorisations": of(CaseAuthorisation, (CaseAuthorisation.id,), ("ref",)),
        "steps": of(CaseStep, (CaseStep.id,), ()),
        "dispatches": of(CaseDispatch, (CaseDispatch.id,), ()),
        "clocks": of(CaseClock, (CaseClock.department,), ("updated_at",)),
        "events": [_columns(e, ("id", "created_at")) for e in events],
    }
    return _plain(out, case, refs)


def _take(session: Session, body: dict[str, Any], seed: int) -> str:
    taken = intake.take_in(session, IntakeIn.model_validate(body), actor="window", now=NOW, rng=random.Random(seed))
    session.commit()
    return taken.case.code


BODIES = {
    "accepted, notices, parallel stages after the lead": lambda: joint_registration(
        materials=[{"code": c, "provided": "upload"} for c in ("M01", "M02", "M03", "M05", "M06")],
    ),
    "received days ago, in +08:00": lambda: joint_registration(
        received_at=(NOW - dt.timedelta(days=3)).astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat(),
    ),
    "correction required, everything missing at once": lambda: joint_registration(
        materials=[{"code": "M01", "provided": "upload"}], authorisations=[],
    ),
    "not accepted": lambda: joint_registration(outcome="not_accepted", reasons=["不属于本机关管辖"]),
    "an enterprise's change, licences recognised": lambda: {
        "item_code": "XK00102000", "applicant": {"code": E1, "name": "企业", "address": ADDRESS},
        "materials": [{"code": "M01", "provided": "upload"}], "authorisations": [consent("M02", "M03")],
    },
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BODIES))
def test_intake_writes_what_the_step_by_step_route_writes(
    city: World, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    body = BODIES[case]()
    with city.sessions() as s:
        fast = _take(s, body, seed=1)
    with monkeypatch.context() as m:
        m.setattr(intake, "_write", _step_by_step)
        with city.sessions() as s:
            slow = _take(s, body, seed=2)
    assert fast != slow
    with city.sessions() as s:
        got, want = _written(s, fast), _written(s, slow)
    assert got["case"]["status"] == want["case"]["status"]
    for part in want:
        assert got[part] == want[part], part
    kinds = [e["event_type"] for e in got["events"]]
    assert kinds[kinds.index("case.received") :][:3] == ["case.received", "case.step", "case.step"]
    assert ("case.dispatched" in kinds) == got["case"]["intake_outcome"].startswith("accepted")
    if case.startswith("accepted"):  # the lead first; tax and public security wait for it
        assert [d["status"] for d in got["dispatches"]] == ["dispatched", "pending", "pending"]
        assert kinds[0] == NOTICE_EVENT and len(got["clocks"]) == 4


def test_an_accepted_intake_is_a_handful_of_statements(city: World) -> None:
    """Reads (identity, licences, a free code), then one INSERT per table; the outbox is not read
    (every event names the new case's code, drawn free just now)."""
    body = joint_registration(applicant=P1)  # with a phone: the applicant's notice is written too
    statements: list[str] = []
    listener = lambda *a: statements.append(" ".join(str(a[2]).split()))  # noqa: E731
    event.listen(city.engine, "before_cursor_execute", listener)
    try:
        with city.sessions() as s:
            _take(s, body, seed=3)
    finally:
        event.remove(city.engine, "before_cursor_execute", listener)
    writes = [q for q in statements if q.startswith(("INSERT", "UPDATE", "DELETE"))]
    tables = [q.split()[2] for q in writes]
    assert not any(q.startswith(("UPDATE", "DELETE")) for q in writes)
    # each table once; the outbox once for every event of the intake (notices, received, steps, dispatch)
    assert sorted(tables) == sorted(set(tables)), tables
    assert not [q for q in statements if "FROM outbox_event" in q]
    assert "outbox_event" in tables
    assert len(statements) <= 20, statements
