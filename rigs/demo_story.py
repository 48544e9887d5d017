"""The demo's story of two applications (办件演示), after the main job has filled the hub.

1. **多证联办**: a person applies once at the window to set up an enterprise (item XK00101001). The
   hub finds the legal representative's resident identity card (1201) and the premises' property
   certificate (2101) among the licences the feeds issued and, with those two persons'
   authorisations, does not ask for them. Commerce (the lead) acts first; tax and public security
   then act in parallel. Each department's approval system (in the sandboxes) takes its dispatch
   and plays it out on the simulated clock; the hub pulls their steps through each department's
   case-step feed (:func:`pipeline.case_feed.run_feed`: a table over ODBC, the tax SOAP service, a
   table of the population registry).
2. **用地预审 → 立项**: an enterprise applies for its investment project's approval (XK00501000);
   the development-and-reform commission reads the land bureau's pre-review opinion (3101) instead
   of paper. Its approval platform (in the sandboxes) takes the dispatch and plays it out on the
   same clock; the hub pulls its steps through its case-step feed (its processing record
   ``tzxm.xm_bljl``, a table read over ODBC).

The hub runs on the simulated clock (:func:`hub.clock.clock_at`); the story prints each case's
timeline and materials, personal data masked. The dispatches reach the approval systems from the
hub's outbox here (in a deployment the push DAG delivers them: webhook, SOAP notice).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from cases import service as svc
from cases.intake import take_in
from cases.schemas import IntakeIn
from cases.tables import CaseMaterial, CaseRecord
from e_license_store.tables import LicenseIndexEntry
from hub.airflow_env import connection_uri_env
from hub.clock import clock_at
from hub.db import get_engine, session_factory
from hub.masking import mask_code, mask_name
from hub.models import OutboxEvent
from pipeline.case_feed import run_feed
from sandbox.approvals.behaviour import SHANGHAI, Profile, _days
from sandbox.approvals.clock import SimClock
from sandbox.approvals.system import ApprovalSystem, ApprovalSystems, Outlet, Truth
from sandbox.approvals.tables import COMMERCE, DEVELOPMENT_REFORM, PUBLIC_SECURITY, SqlOutlet, TaxOutlet
from sandbox.tax.store import TaxStore

FEEDS = {
    "commerce": "commerce_case_steps",
    "tax": "tax_case_steps",
    "public_security": "public_security_case_steps",
    "development_reform": "development_reform_case_steps",
}
#: the departments of the joint registration (多证联办)
JOINT = ("commerce", "tax", "public_security")
#: the story's departments keep their promises (the tests cover corrections, delays and refusals)
ON_TIME = Profile(correction=0.0, late=0.0, rejected=0.0)


def _holder_with(
    session: Session, *types: str, kind: str, on: dt.date, exclude: frozenset[str] = frozenset()
) -> tuple[str, str] | None:
    """(code, name) of a holder with a licence of each of ``types`` in force ``on`` that day."""
    first, *rest = types
    in_force = (LicenseIndexEntry.status == "valid", LicenseIndexEntry.valid_from <= on,
                (LicenseIndexEntry.valid_until.is_(None)) | (LicenseIndexEntry.valid_until >= on))  # fmt: skip
    for code, name in session.execute(
        select(LicenseIndexEntry.holder_code, LicenseIndexEntry.holder_name)
        .where(LicenseIndexEntry.license_type_code == first, LicenseIndexEntry.holder_kind == kind, *in_force)
        .order_by(LicenseIndexEntry.holder_code)
    ):  # fmt: skip
        if code in exclude:
            continue
        held = set(session.scalars(select(LicenseIndexEntry.license_type_code).where(
            LicenseIndexEntry.holder_code == code, *in_force)))  # fmt: skip
        if all(t in held for t in rest):
            return str(code), str(name)
    return None


def _consent(holder: str, *materials: str, until: dt.datetime) -> dict[str, Any]:
    return {"holder": holder, "materials": list(materials), "purpose": "办理本事项", "valid_until": until.isoformat()}


def approval_systems(state: Mapping[str, Any], *, seed: int) -> ApprovalSystems:
    """The approval systems of the running sandboxes (their stores, as ``hub sandbox up`` recorded them)."""
    data_dir = Path(state["data_dir"])
    truth = Truth(data_dir / "approvals.db")
    outlets: dict[str, Outlet] = {
        "commerce": SqlOutlet(state["commerce"]["sqlalchemy_url"], COMMERCE),
        "tax": TaxOutlet(TaxStore(data_dir / "tax.db")),
        "public_security": SqlOutlet(state["public_security"]["sqlalchemy_url"], PUBLIC_SECURITY),
    }
    if state.get("development_reform"):
        outlets["development_reform"] = SqlOutlet(state["development_reform"]["sqlalchemy_url"], DEVELOPMENT_REFORM)
    return ApprovalSystems([ApprovalSystem(d, o, truth, seed=seed, profile=ON_TIME) for d, o in outlets.items()], truth)


def _dispatches(session: Session, code: str, seen: set[int]) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(OutboxEvent).where(OutboxEvent.event_type == "case.dispatched", OutboxEvent.subject == code)
        .order_by(OutboxEvent.id)
    ).all()  # fmt: skip
    out = [{"data": r.payload} for r in rows if r.id not in seen]
    seen.update(r.id for r in rows)
    return out


def timeline_table(session: Session, case: CaseRecord, title: str) -> Table:
    reading = svc.read(session, case)
    table = Table(title=f"{title}: {case.code} — {reading.status}; held by {', '.join(reading.held_by) or 'nobody'}")
    for col in ("time (Asia/Shanghai)", "department", "seq", "step", "note"):
        table.add_column(col)
    notes = {(r.department, r.seq): r.note for r in svc.log(session, case)}
    for s in reading.timeline:
        at = s.occurred_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
        table.add_row(at, s.department, str(s.seq), s.step.value, notes.get((s.department, s.seq)) or "")
    return table


def materials_table(session: Session, case: CaseRecord) -> Table:
    table = Table(title="materials (免提交: found by the hub as licences, under the holders' authorisations)")
    for col in ("material", "holder", "provision", "licence", "found by"):
        table.add_column(col)
    for m in session.scalars(select(CaseMaterial).where(CaseMaterial.case_id == case.id)
                             .order_by(CaseMaterial.material_code)):  # fmt: skip
        table.add_row(f"{m.material_code} {m.name}", m.holder_role, m.provision, m.license_id or "", m.found_by or "")
    return table


def run_story(state: Mapping[str, Any], connections: Mapping[str, Mapping[str, Any]], console: Console,
              *, seed: int = 16) -> bool:  # fmt: skip
    """Both cases on the simulated clock; True when the joint registration concluded with every
    department's steps on its timeline and both recognised licences stood in for paper."""
    for conn_id, conn in connections.items():
        key, value = connection_uri_env(conn_id, conn)
        os.environ[key] = value
    sessions = session_factory(get_engine())
    start_day = dt.datetime.now(SHANGHAI).date() - dt.timedelta(days=14)
    clock_file = Path(state["data_dir"]) / "approvals_clock.json"
    if clock_file.exists():  # an earlier demo's story: carry on after it (the feeds read on from their positions)
        start_day = max(start_day, SimClock(clock_file).now().astimezone(SHANGHAI).date() + dt.timedelta(days=1))
    while not _days().is_workday(start_day):
        start_day += dt.timedelta(days=1)
    clock = SimClock(clock_file, start=dt.datetime.combine(start_day, dt.time(9, 30), tzinfo=SHANGHAI))
    until = clock.now() + dt.timedelta(days=180)
    with sessions() as session:
        applicant = _holder_with(session, "2101", "1201", kind="person", on=start_day)
        rep = _holder_with(session, "1201", kind="person", on=start_day,
                           exclude=frozenset({applicant[0]} if applicant else ()))  # fmt: skip
        firm = _holder_with(session, "3101", "1101", kind="enterprise", on=start_day)
    if applicant is None or rep is None:
        console.print("[red]no person holds both a property certificate and an identity card: nothing to tell[/red]")
        return False
    systems = approval_systems(state, seed=seed)
    body = IntakeIn.model_validate({
        "item_code": "XK00101001", "applicant": {"code": applicant[0], "name": applicant[1]},
        "parties": [{"role": "legal_representative", "code": rep[0], "name": rep[1]}],
        "subject": "温州洞头海霞科技有限公司（拟设立）",
        "materials": [{"code": "M01", "provided": "upload"}, {"code": "M02", "provided": "upload"},
                      {"code": "M05", "provided": "paper"}, {"code": "M06", "provided": "upload"}],
        "authorisations": [_consent("applicant", "M04", until=until),
                           _consent("legal_representative", "M03", until=until)],
        "received_at": clock.now().isoformat(),
    })  # fmt: skip
    console.print(
        f"[bold]多证联办[/bold]: {mask_name(applicant[1])} ({mask_code(applicant[0])}) applies once at the window; "
        f"legal representative {mask_name(rep[1])} ({mask_code(rep[0])})"
    )
    with clock_at(clock.now), sessions() as session:
        code = take_in(session, body, actor="window").case.code
        session.commit()
    status = play(sessions, systems, clock, code, days=15)
    with sessions() as session:
        case = session.scalars(select(CaseRecord).where(CaseRecord.code == code)).one()
        console.print(materials_table(session, case))
        console.print(timeline_table(session, case, "joint registration (多证联办)"))
        found = {m.material_code for m in session.scalars(select(CaseMaterial).where(CaseMaterial.case_id == case.id))
                 if m.provision == "licence"}  # fmt: skip
        departments = {s.department for s in svc.read(session, case).timeline}
    ok = status == "concluded" and {"M03", "M04"} <= found and set(JOINT) <= departments
    if firm is None:
        console.print("[red]no enterprise holds a land-use pre-review opinion and a business licence[/red]")
        return False
    if "development_reform" not in systems.systems:
        console.print("[red]the sandboxes have no development-and-reform approval platform: hub sandbox up[/red]")
        return False
    return _project_approval(sessions, systems, clock, firm, until, console) and ok


def play(sessions: Any, systems: ApprovalSystems, clock: SimClock, code: str, *, days: int) -> str:
    """Half-hour by half-hour of the simulated clock (``days`` at most), until case ``code`` concludes
    or is refused and the departments have entered every step they took (a step entered the next
    morning, 补录, may come after the result): the approval systems take its dispatches, put their
    steps on record when their time comes, and the hub pulls them through each department's
    case-step feed. Returns its status."""
    seen: set[int] = set()
    status = ""
    for _ in range(days * 24 * 2):
        with clock_at(clock.now):
            with sessions() as session:
                systems.take(_dispatches(session, code, seen))
            published = systems.tick(clock.now())
            for department, n in published.items():
                if n:
                    run_feed(FEEDS[department], f"story-{department}-{clock.now():%Y%m%dT%H%M}")
            with sessions() as session:
                status = session.scalars(select(CaseRecord.status).where(CaseRecord.code == code)).one()
        if status in ("concluded", "rejected") and not systems.truth.pending():
            break
        clock.advance(dt.timedelta(minutes=30))
    return str(status)


def _project_approval(sessions: Any, systems: ApprovalSystems, clock: SimClock, firm: tuple[str, str],
                      until: dt.datetime, console: Console) -> bool:  # fmt: skip
    """用地预审 → 立项: the commission accepts the pre-review opinion without paper."""
    clock.advance(dt.timedelta(hours=1))
    body = IntakeIn.model_validate({
        "item_code": "XK00501000", "applicant": {"code": firm[0], "name": firm[1]},
        "subject": "洞头海岛旅游配套项目",
        "materials": [{"code": "M01", "provided": "upload"}, {"code": "M04", "provided": "paper"}],
        "authorisations": [_consent("applicant", "M02", "M03", until=until)],
        "received_at": clock.now().isoformat(),
    })  # fmt: skip
    console.print(f"[bold]用地预审 → 立项[/bold]: {firm[1]} applies for its project's approval")
    with clock_at(clock.now), sessions() as session:
        case = take_in(session, body, actor="window").case
        code, outcome, detail = case.code, case.intake_outcome, case.outcome_detail
        session.commit()
    if not outcome.startswith("accepted"):
        console.print(f"[red]the project approval was not accepted at the window: {outcome} {detail}[/red]")
        return False
    # the promised limit is ten working days: a month of the simulated clock covers it and a holiday
    status = play(sessions, systems, clock, code, days=31)
    with sessions() as session:
        case = session.scalars(select(CaseRecord).where(CaseRecord.code == code)).one()
        console.print(materials_table(session, case))
        console.print(timeline_table(session, case, "project approval (用地预审 → 立项)"))
        departments = {s.department for s in svc.read(session, case).timeline}
    return status == "concluded" and "development_reform" in departments
