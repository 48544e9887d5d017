"""A department's approval system (部门审批系统): takes the cases dispatched to it, plays each out
(:mod:`sandbox.approvals.behaviour`) and puts every step on record, at the time the department's
staff would, in the department's own protocol (an :class:`Outlet`).

What the systems decided is also kept as ground truth (``approvals.db`` beside the sandbox's
data: every dispatch taken with its fate, every step with its time) — read by tests and
benchmarks only; the hub reads the departments' protocols.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import sqlalchemy as sa

from sandbox.approvals.behaviour import Dispatch, PlannedStep, Profile, plan
from sandbox.approvals.history import MATERIALS
from sandbox.approvals.lights import Expected, expected_lights

_meta = sa.MetaData()
TAKEN = sa.Table(
    "dispatch_taken", _meta,
    sa.Column("code", sa.String(24), primary_key=True), sa.Column("department", sa.String(40), primary_key=True),
    sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("fate", sa.String(16), nullable=False),
)  # fmt: skip
PLANNED = sa.Table(
    "planned_step", _meta,
    sa.Column("code", sa.String(24), primary_key=True), sa.Column("department", sa.String(40), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True), sa.Column("step", sa.String(32), nullable=False),
    sa.Column("occurred_at", sa.String(40), nullable=False), sa.Column("visible_at", sa.String(40), nullable=False),
    sa.Column("note", sa.String(500)), sa.Column("missing", sa.Text),
    sa.Column("published", sa.Boolean, nullable=False, default=False),
    sa.Index("planned_step_due", "department", "published", "visible_at"),
)  # fmt: skip
#: the applications the window accepted (the case's own clock starts there; its item names the limits)
RECEIVED = sa.Table(
    "window_receipt", _meta,
    sa.Column("code", sa.String(24), primary_key=True), sa.Column("item_code", sa.String(24), nullable=False),
    sa.Column("accepted_at", sa.String(40), nullable=False),
)  # fmt: skip


class Outlet(Protocol):
    """Where a department's system puts its steps on record (its table, service or packages)."""

    def create(self) -> None: ...

    def write(self, steps: Sequence[PlannedStep]) -> None: ...


class Truth:
    """The approval systems' ground truth (tests and benchmarks only)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.engine = sa.create_engine(f"sqlite:///{self.path}", poolclass=sa.pool.NullPool)
        _meta.create_all(self.engine)

    def steps(self, *, department: str | None = None) -> pd.DataFrame:
        """Every step put on record so far: code, department, seq, step, occurred_at (UTC), note, missing, fate."""
        query = sa.select(PLANNED, TAKEN.c.fate).join(
            TAKEN, sa.and_(TAKEN.c.code == PLANNED.c.code, TAKEN.c.department == PLANNED.c.department)
        ).where(PLANNED.c.published.is_(True))  # fmt: skip
        if department:
            query = query.where(PLANNED.c.department == department)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(
                conn.execute(query.order_by(PLANNED.c.code, PLANNED.c.department, PLANNED.c.seq)).mappings().all()
            )
        if frame.empty:
            return pd.DataFrame(columns=["code", "department", "seq", "step", "occurred_at", "note", "missing", "fate"])
        frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
        return frame.drop(columns=["visible_at", "published"])

    def pending(self) -> int:
        """Steps planned but not yet on record (their time to be entered has not come)."""
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).where(PLANNED.c.published.is_(False))) or 0)

    def receive(self, code: str, item_code: str, accepted_at: dt.datetime) -> None:
        """Record the window's acceptance of an application (once per code)."""
        with self.engine.begin() as conn:
            if conn.execute(sa.select(RECEIVED.c.code).where(RECEIVED.c.code == code)).first() is None:
                at = accepted_at.astimezone(dt.UTC).isoformat()
                conn.execute(RECEIVED.insert(), [{"code": code, "item_code": item_code, "accepted_at": at}])

    def lights(self, as_of: dt.datetime, *, share: float = 0.8) -> pd.DataFrame:
        """Every received case's clocks as of ``as_of`` (:mod:`sandbox.approvals.lights`): code, department
        (``*`` for the case's own), state, used, limit, light, overdue (working days)."""
        with self.engine.connect() as conn:
            steps = [{**r, "occurred_at": dt.datetime.fromisoformat(r["occurred_at"]),
                      "visible_at": dt.datetime.fromisoformat(r["visible_at"])}
                     for r in conn.execute(sa.select(PLANNED.c.code, PLANNED.c.department, PLANNED.c.seq,
                                                     PLANNED.c.step, PLANNED.c.occurred_at, PLANNED.c.visible_at))
                     .mappings()]  # fmt: skip
            receipts = {r.code: (r.item_code, dt.datetime.fromisoformat(r.accepted_at))
                        for r in conn.execute(sa.select(RECEIVED))}  # fmt: skip
        rows = expected_lights(steps, receipts, as_of=as_of, share=share)
        return pd.DataFrame([vars(r) for r in rows], columns=list(Expected.__dataclass_fields__))

    def fates(self) -> dict[tuple[str, str], str]:
        with self.engine.connect() as conn:
            return {(r.code, r.department): r.fate for r in conn.execute(sa.select(TAKEN))}


class ApprovalSystem:
    """One department's approval system."""

    def __init__(self, department: str, outlet: Outlet, truth: Truth, *, seed: int, profile: Profile | None = None):
        self.department = department
        self.outlet = outlet
        self.truth = truth
        self.seed = seed
        self.profile = profile or Profile()
        outlet.create()

    def take(self, dispatch: Dispatch) -> bool:
        """Take a dispatched case (once: a dispatch pushed again changes nothing); plans its steps."""
        if dispatch.department != self.department:
            raise ValueError(f"{self.department}'s system was handed a dispatch for {dispatch.department}")
        with self.truth.engine.begin() as conn:
            if conn.execute(sa.select(TAKEN.c.code).where(TAKEN.c.code == dispatch.code,
                                                          TAKEN.c.department == self.department)).first():  # fmt: skip
                return False
            # the n-th dispatch of the department plays out the same way in every run of a history
            ordinal = conn.scalar(sa.select(sa.func.count()).where(TAKEN.c.department == self.department)) or 0
            fate, steps = plan(dispatch, seed=self.seed, profile=self.profile, ordinal=int(ordinal))
            conn.execute(TAKEN.insert(), [{"code": dispatch.code, "department": self.department,
                                           "dispatched_at": dispatch.dispatched_at, "fate": fate}])  # fmt: skip
            conn.execute(PLANNED.insert(), [
                {"code": s.code, "department": s.department, "seq": s.seq, "step": s.step,
                 "occurred_at": s.occurred_at.isoformat(), "visible_at": s.visible_at.isoformat(), "note": s.note,
                 "missing": json.dumps([{"code": c, "name": n} for c, n in s.missing], ensure_ascii=False)
                 if s.missing else None, "published": False}
                for s in steps
            ])  # fmt: skip
        return True

    def resend(self) -> int:
        """Put every step on record so far on record again (a department re-exporting its records)."""
        with self.truth.engine.connect() as conn:
            rows = conn.execute(
                sa.select(PLANNED).where(PLANNED.c.department == self.department, PLANNED.c.published.is_(True))
                .order_by(PLANNED.c.visible_at, PLANNED.c.code, PLANNED.c.seq)
            ).mappings().all()  # fmt: skip
        if rows:
            self.outlet.write([_planned(dict(r)) for r in rows])
        return len(rows)

    def tick(self, now: dt.datetime) -> int:
        """Put on record every step whose time to be entered has come by ``now``; returns how many."""
        with self.truth.engine.begin() as conn:
            rows = conn.execute(
                sa.select(PLANNED).where(PLANNED.c.department == self.department, PLANNED.c.published.is_(False))
            ).mappings().all()  # fmt: skip
            due = [r for r in rows if dt.datetime.fromisoformat(r["visible_at"]) <= now]
            if not due:
                return 0
            due.sort(key=lambda r: (r["visible_at"], r["code"], r["seq"]))
            self.outlet.write([_planned(dict(r)) for r in due])
            for r in due:
                key = (PLANNED.c.code == r["code"], PLANNED.c.department == r["department"], PLANNED.c.seq == r["seq"])
                conn.execute(PLANNED.update().where(*key).values(published=True))
        return len(due)


def _planned(r: Mapping[str, Any]) -> PlannedStep:
    missing = tuple((m["code"], m["name"]) for m in json.loads(r["missing"])) if r["missing"] else ()
    return PlannedStep(r["code"], r["department"], int(r["seq"]), r["step"],
                       dt.datetime.fromisoformat(r["occurred_at"]), dt.datetime.fromisoformat(r["visible_at"]),
                       r["note"], missing)  # fmt: skip


def dispatch_of(event: Mapping[str, Any]) -> Dispatch:
    """The dispatch a ``case.dispatched`` event announces (the event itself, or its ``data``).

    The materials a department may find wanting are those the applicant brought (paper or
    upload); licences the hub recognised stand for themselves."""
    data = event.get("data", event)
    item_code = str(data.get("item_code") or "")
    brought = tuple((m["code"], MATERIALS.get((item_code, m["code"]), m["code"])) for m in data.get("materials") or ()
                    if m.get("provision") in ("paper", "upload"))  # fmt: skip
    return Dispatch(
        code=str(data["code"]), department=str(data["department"]),
        dispatched_at=dt.datetime.fromisoformat(str(data["dispatched_at"])),
        promised_days=int(data.get("promised_days") or 0), statutory_days=int(data.get("statutory_days") or 0),
        item_code=item_code, materials=brought,
    )  # fmt: skip


class ApprovalSystems:
    """Every department's approval system of one sandbox, on one simulated clock."""

    def __init__(self, systems: Iterable[ApprovalSystem], truth: Truth) -> None:
        self.systems = {s.department: s for s in systems}
        self.truth = truth

    def take(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Hand each ``case.dispatched`` event to its department's system; returns how many were new."""
        taken = 0
        for event in events:
            d = dispatch_of(event)
            system = self.systems.get(d.department)
            if system is not None:
                taken += system.take(d)
        return taken

    def tick(self, now: dt.datetime) -> dict[str, int]:
        return {name: s.tick(now) for name, s in self.systems.items()}
