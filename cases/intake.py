"""Intake at the window (一窗受理): an application becomes a case under a new supervision code.

The outcome is the window's, as it knows them:

- ``not_accepted`` (不予受理) — the window refuses it, with its reasons (``reasons_required`` without);
- ``correction_required`` (补正, 一次性告知) — required materials are missing: the case is recorded
  (the applicant comes back with its code) and *everything* missing is listed at once;
- ``accepted_pending`` (容缺受理) — accepted with minor materials promised for a day;
- ``accepted_on_commitment`` (告知承诺制) — accepted on the applicant's written commitment
  instead of a proof;
- ``accepted`` (受理).

An accepted case gets one dispatch per department with a stage in the item. Licences stand for materials
only under their holder's authorisation (:mod:`cases.authorisation`), recorded with the case.
The window's first
two steps — ``received`` and the outcome (``accepted``, ``not_accepted`` or
``correction_requested``) — are written with it, as the window's steps 1 and 2.

Every check runs before the first write: a refused intake (:class:`cases.errors.CaseRefused`)
leaves nothing behind. An intake repeated with the same idempotency key (a double click) returns
the first case unchanged; the same key with a different application is refused
(``idempotency_key_reused``). Keys are kept only as a keyed digest with the consumer's id
(:func:`hub.pseudonyms.keyed_digest`): a key may be anything a client chose, a resident id included.
"""

from __future__ import annotations

import datetime as dt
import random
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, Table, bindparam, insert, select
from sqlalchemy.orm import Session, make_transient_to_detached

from cases import authorisation, conclusion, dispatch, notices, parties, supervision
from cases import materials as mat
from cases import service as svc
from cases.catalogue import APPLICANT, WINDOW, Catalogue, Item, UnknownItem, load_catalogue
from cases.errors import CaseRefused, Refusal
from cases.evaluation import CONCLUDED
from cases.schemas import AuthorisationIn, IntakeIn, IntakeOutcomeIn
from cases.steps import Step
from cases.tables import CaseAuthorisation, CaseDispatch, CaseMaterial, CaseRecord, CaseStep
from cases.views import CaseRows
from hub import sqlite_wal
from hub.bulk import insert_rows
from hub.clock import local_day
from hub.dbapi import prepared, session_dbapi
from hub.models import utcnow
from hub.outbox import emit_many
from hub.pseudonyms import keyed_digest
from identifiers import supervision_code

#: Draws of a new serial before giving up (31⁵ codes per window and day: a second draw is rare).
CODE_DRAWS = 8

_Row = typing.TypeVar("_Row")


@dataclass(frozen=True)
class Taken:
    case: CaseRecord
    #: the same intake was taken before (same idempotency key, same application)
    replayed: bool
    #: a new case's rows as written (:func:`cases.views.render` answers from them without reading
    #: the case back); ``None`` for a replayed intake, whose case is read
    rows: CaseRows | None = None


def intake_key(consumer: str, key: str) -> str:
    """How an idempotency key is kept: a keyed digest of the consumer and the key."""
    return keyed_digest("case-intake", consumer, key, length=64)


def replay(session: Session, body: IntakeIn, *, consumer: str, idempotency_key: str) -> Taken | None:
    """The case an earlier intake with this key made, if any (``idempotency_key_reused`` if it differs)."""
    found = session.scalar(select(CaseRecord).where(CaseRecord.intake_key == intake_key(consumer, idempotency_key)))
    if found is None:
        return None
    if found.intake_fingerprint != svc.fingerprint(body.model_dump(mode="json")):
        raise CaseRefused(
            "idempotency_key_reused", "this idempotency key was used for a different application", Refusal.CONFLICT
        )
    return Taken(found, True)


def take_in(
    session: Session,
    body: IntakeIn,
    *,
    actor: str,
    consumer: str | None = None,
    idempotency_key: str | None = None,
    department: str | None = None,
    catalogue: Catalogue | None = None,
    now: dt.datetime | None = None,
    rng: random.Random | None = None,
) -> Taken:
    """Take ``body`` in; the caller commits. ``department``: the counter of that department took it
    (a department-bound key), which may take in only the items it leads."""
    now = now or utcnow()
    catalogue = catalogue or load_catalogue()
    owner = consumer or actor
    if idempotency_key is not None:
        earlier = replay(session, body, consumer=owner, idempotency_key=idempotency_key)
        if earlier is not None:
            return earlier
    try:
        item = catalogue.item(body.item_code)
    except UnknownItem:
        raise CaseRefused("unknown_item", "the item code is not in the service-item catalogue") from None
    if department is not None and item.lead != department:
        raise CaseRefused("item_not_led", f"{department}'s counter takes in only the items it leads", Refusal.FORBIDDEN)
    received_at = body.received_at or now
    if received_at > now + svc.CLOCK_SKEW:
        raise CaseRefused("time_in_future", "received_at lies in the future")
    applicant = parties.identify(
        session, body.applicant.code, item.applicant_kinds, provisional=item.unknown_applicant == "provisional",
        field="applicant.code",
    )  # fmt: skip
    agent = (
        parties.identify(session, body.agent.code, ("person",), provisional=True, field="agent.code")
        if body.agent is not None else None
    )  # fmt: skip
    others = _parties(session, item, body)
    day = local_day(received_at)
    given = mat.by_code(item, body.materials)
    consents = authorisation.check(item, body.authorisations, [APPLICANT, *others], received_at)
    decisions = mat.decide(
        session, item, given, parties.codes_by_holder(session, applicant, others), day,
        authorised=authorisation.covered(consents),
    )  # fmt: skip
    outcome, detail = _outcome(body, decisions)
    code = _new_code(session, catalogue.region_code, day, rng)
    case = _built(
        CaseRecord, code=code, item_code=item.code, item_name=item.name, implementation_code=item.implementation_code,
        lead_department=item.lead, region_code=catalogue.region_code, statutory_days=item.statutory_days,
        promised_days=item.promised_days, received_by=department or WINDOW, received_at=svc.utc(received_at),
        received_on=day, intake_outcome=outcome, outcome_detail=detail, status="received",
        applicant_kind=applicant.kind, applicant_code=applicant.code, applicant_identity=applicant.identity,
        applicant_name=body.applicant.name, applicant_phone=body.applicant.phone,
        applicant_address=body.applicant.address,
        agent=None if body.agent is None or agent is None else {
            "code": agent.code, "name": body.agent.name, "phone": body.agent.phone,
            "authorisation": body.agent.authorisation, "identity": agent.identity,
        },
        parties={role: {"kind": p.kind, "code": p.code, "identity": p.identity, "name": _party_name(body, role)}
                 for role, p in others.items()} or None,
        delivery_method=body.delivery.method.value, delivery_address=body.delivery.address, subject=body.subject,
        intake_key=intake_key(owner, idempotency_key) if idempotency_key is not None else None,
        intake_fingerprint=svc.fingerprint(body.model_dump(mode="json")), created_by=actor, updated_at=svc.utc(now),
    )  # fmt: skip
    rows = _write(session, case, item, decisions, consents, actor=actor, received_at=received_at, now=now)
    return Taken(case, False, rows)


def _write(
    session: Session,
    case: CaseRecord,
    item: Item,
    decisions: Sequence[mat.Decision],
    consents: Mapping[str, AuthorisationIn],
    *,
    actor: str,
    received_at: dt.datetime,
    now: dt.datetime,
) -> CaseRows | None:
    """Write a new case in a handful of statements: its row, then its materials, authorisations,
    the window's two steps, its dispatches and clocks one INSERT each, and every event announcing
    it in one INSERT (:func:`hub.outbox.emit_many`) — what :func:`cases.service.append`,
    :func:`~cases.service.open_stages`, :func:`~cases.service.refresh` and
    :func:`cases.dispatch.release` write for a case, read from what is known here instead of
    from the database (a new case has no earlier steps, clocks or events).

    Events in the order those write them: the applicant's notices, ``case.received``, the two
    ``case.step``, then ``case.dispatched`` for every stage that waits for no other.

    Returns the case's rows as :func:`cases.views.gather` would read them back — the objects just
    written, in the order the reads give them (steps and dispatches as written, materials by
    code), the licences the materials name as they were read to decide, no results (no licence
    can name a code drawn just now) — or ``None`` if the intake concluded the case (never, as the
    window's two steps stand; then the case is read back).
    """
    outcome, detail = case.intake_outcome, case.outcome_detail or {}
    at = svc.utc(received_at)
    second = {
        "not_accepted": (Step.NOT_ACCEPTED, {"reasons": detail.get("reasons", [])}),
        "correction_required": (Step.CORRECTION_REQUESTED, {"missing": detail.get("missing", [])}),
    }.get(outcome, (Step.ACCEPTED, {"outcome": outcome}))
    recorded_at = svc.utc(now)
    # the two steps as append() writes them: neither arrived out of order (nothing before them);
    # ``id`` only orders them in the reading below (ties in time keep the log's order), as the stored ids will
    steps = [
        _built(CaseStep, id=seq, department=WINDOW, seq=seq, step=step.value, occurred_at=at, recorded_at=recorded_at,
               actor=actor, note=None, detail=dict(extra), arrived_out_of_order=False,
               fingerprint=svc.step_fingerprint(step.value, received_at, None, dict(extra)))
        for seq, (step, extra) in enumerate(((Step.RECEIVED, {}), second), start=1)
    ]  # fmt: skip
    stages = (
        [_built(CaseDispatch, id=i, department=stage.department, stage_name=stage.name, after=list(stage.after),
                statutory_days=stage.statutory_days, promised_days=stage.promised_days, status=dispatch.PENDING,
                created_at=received_at, dispatched_at=None)
         for i, stage in enumerate(item.stages, start=1)]
        if outcome.startswith("accepted") else []
    )  # fmt: skip
    reading = svc.read(session, case, steps, stages)
    case.status = reading.status
    # Everything the writes need is built before the first of them: on SQLite the first INSERT
    # takes the database's one write lock, held until the commit, and every other writer of every
    # process waits meanwhile; between the INSERTs below only the new case's id is filled in.
    materials = [
        _built(
            CaseMaterial, material_code=d.material.code, name=d.material.name, required=d.material.required,
            holder_role=d.material.holder, license_type_code=d.material.license_type, provision=d.provision,
            license_id=d.license_id, license_version=d.license_version, found_by=d.found_by,
            promised_by=d.promised_by, updated_at=svc.utc(now),
        )
        for d in decisions
    ]  # fmt: skip
    used = [(d.material.holder, d.material.code, d.license_id, d.license_version) for d in decisions
            if d.license_id is not None and d.license_version is not None]  # fmt: skip
    grants = authorisation.build(case, consents, used, actor=actor, at=received_at)
    # dispatch.release: every stage that waits for none concluded goes out with the intake
    if case.status in ("withdrawn", "rejected"):
        released = []
    else:
        state = {v.department: v.state for v in reading.stages}
        released = [d for d in stages if dispatch.releasable(d, state)]
    for d in released:  # as release() stamps them: the intake's time as given
        d.status, d.dispatched_at = dispatch.DISPATCHED, dispatch.utc_stamp(received_at)
    # service.refresh: clocks and their lights (a new case has none stored), conclusion, notices
    today = local_day(case.updated_at)
    clocks = supervision.clock_readings(case, reading.timeline, reading.status, today=today,
                                        dispatches=reading.dispatches)  # fmt: skip
    events = notices.events(case, reading.timeline, reading.status)
    events.append(svc.received_event(case))
    events += [svc.step_event(case, r.department, r.seq, r.step, r.occurred_at, False, reading.status) for r in steps]
    if released:
        refs = dispatch.material_refs(materials, grants)
        events += [dispatch.dispatched_event(case, d, received_at, refs) for d in released]
    sqlite_wal.hold_writers_lock(session)  # SQLite: queue for its write lock without its busy handler's sleeps
    _insert_case(session, case)
    children: list[CaseStep | CaseDispatch | CaseMaterial | CaseAuthorisation] = [*steps, *stages, *materials, *grants]
    for row in children:
        row.case_id = case.id
    _insert(session, CaseMaterial, materials)
    _insert(session, CaseAuthorisation, grants)
    _insert(session, CaseStep, steps, without=("id",))
    _insert(session, CaseDispatch, stages, without=("id",))
    supervision.insert_clocks(session, case, clocks, today)
    conclusion.record(session, case, reading.timeline, reading.status)
    emit_many(session, events, fresh=True)  # every key names the new case's code
    if reading.status in CONCLUDED:
        return None
    licences = {d.licence.license_id: d.licence for d in decisions if d.licence is not None}
    return CaseRows(
        case=case, steps=steps, dispatches=stages, consents=grants,
        materials=sorted(materials, key=lambda m: m.material_code), licences=licences, results=[],
        conclusion=None, evaluation=None, reading=reading,  # steps and dispatches as read above (their
        # reading takes no dispatch's status: the release does not change it)
    )  # fmt: skip


def _built(model: type[_Row], **values: Any) -> _Row:
    """A transient ``model`` holding ``values``, as ``model(**values)`` would: the declarative
    constructor sets each through the attribute's instrumentation (history, events), which a row
    intake writes through Core and never flushes does not need (none of them has a relationship)."""
    row: _Row = model.__mapper__.class_manager.new_instance()  # type: ignore[attr-defined]
    row.__dict__.update(values)
    return row


_CASE_TABLE = typing.cast(Table, CaseRecord.__table__)
_CASE_COLUMNS = tuple(c.key for c in _CASE_TABLE.columns if c.key != "id")
_CASE_INSERT = insert(_CASE_TABLE)


def _insert_case(session: Session, case: CaseRecord) -> None:
    """``case`` (transient, every column but ``id`` set) as one INSERT, then in ``session`` as if
    loaded: persistent under its new id, nothing pending — what ``add`` and ``flush`` leave,
    without the unit of work's bookkeeping for one row."""
    values = {key: getattr(case, key) for key in _CASE_COLUMNS}
    # on the session's connection, as a Core statement built once (no ORM execution path: nothing
    # is loaded, and nothing is pending before the case's first write)
    result = typing.cast(CursorResult[Any], session.connection().execute(_CASE_INSERT, values))
    case.id = result.inserted_primary_key[0]  # type: ignore[index]  # one row: its key
    make_transient_to_detached(case)
    session.add(case)


def _insert(session: Session, model: Any, rows: Sequence[Any], *, without: Sequence[str] = ()) -> None:
    """``rows`` (transient objects of ``model``) as one INSERT of their column values (no ORM flush of each)."""
    if not rows:
        return
    table = model.__table__
    # the attributes set, as the ORM would insert them (a column left unset takes its default)
    names = [c.key for c in table.columns if c.key in rows[0].__dict__ and c.key not in without]
    values = [{n: getattr(r, n) for n in names} for r in rows]
    if any(c.default is not None or c.server_default is not None for c in table.columns if c.key not in names):
        session.execute(insert(table), values)  # SQLAlchemy fills the defaults in
    else:  # every column given or NULL: the driver's executemany with the columns' own conversions
        insert_rows(session.connection(), table, values)


def _party_name(body: IntakeIn, role: str) -> str:
    return next(p.name for p in body.parties if p.role == role)


def _parties(session: Session, item: Item, body: IntakeIn) -> dict[str, parties.Identified]:
    named = {}
    for p in body.parties:
        party = item.party(p.role)
        if party is None or p.role == APPLICANT:
            raise CaseRefused("unknown_party", f"the item {item.code} has no party {p.role!r}")
        if p.role in named:
            raise CaseRefused("unknown_party", f"party {p.role!r} is named twice")
        named[p.role] = parties.identify(session, p.code, party.kinds, provisional=True, field=f"parties.{p.role}.code")
    for party in item.parties:
        if party.required and party.role not in named:
            raise CaseRefused("party_missing", f"the item {item.code} needs the {party.role} ({party.name})")
    return named


def _outcome(body: IntakeIn, decisions: Sequence[mat.Decision]) -> tuple[str, dict[str, object]]:
    if body.outcome is IntakeOutcomeIn.not_accepted:
        reasons = [r.strip() for r in body.reasons if r.strip()]
        if not reasons:
            raise CaseRefused("reasons_required", "not accepted (不予受理) needs the reasons")
        return "not_accepted", {"reasons": reasons}
    missing = [
        {"code": d.material.code, "name": d.material.name, **({"reason": d.reason} if d.reason else {})}
        for d in decisions if d.missing
    ]  # fmt: skip
    if missing:
        return "correction_required", {"missing": missing}
    provisions = {d.provision for d in decisions}
    if mat.PROMISED in provisions:
        return "accepted_pending", {}
    if mat.COMMITMENT in provisions:
        return "accepted_on_commitment", {}
    return "accepted", {}


_CODE_TAKEN = select(CaseRecord.id).where(CaseRecord.code == bindparam("code"))


def _new_code(session: Session, region: str, day: dt.date, rng: random.Random | None) -> str:
    raw, dialect = session_dbapi(session)  # prepared once, on the DBAPI cursor of the session's transaction
    taken = prepared(_CODE_TAKEN, dialect)
    for _ in range(CODE_DRAWS):
        code = supervision_code.generate(region, day, rng=rng)
        if taken.first(raw, {"code": code}) is None:
            return code
    raise RuntimeError(f"no free supervision code after {CODE_DRAWS} draws")  # 31⁵ per window and day
