"""``/v1/cases/stats`` and ``/v1/cases/escalations``: what the supervision office (电子监察) reads,
and how a department acknowledges an escalation (督办).

- ``GET /v1/cases/stats`` — ``supervision:read``: the figures per item or department for a period
  of receipt (:mod:`cases.stats`);
- ``GET /v1/cases/escalations`` — ``supervision:read`` (every department's) or a department-bound
  key with ``cases:steps:<its department>`` (its own);
- ``POST /v1/cases/escalations/{id}/acknowledgement`` — the department pressed, with a key bound
  to it and ``cases:steps:<department>``; another department's escalation is not found;
- ``POST /v1/cases/{code}/evaluation`` — ``cases:write`` (the window's evaluation device or the
  portal, for the applicant): the applicant's evaluation of a concluded case (好差评,
  :mod:`cases.evaluation`), once; the same one again is answered as recorded.

The figures hold no personal data; escalations name the supervision code and the department.
Every answer is audited (:func:`recognition.dependencies.record`); refusals by the trail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cases import evaluation, supervision, supervision_gauges
from cases.errors import CaseRefused, Refusal
from cases.schemas import EvaluationOut
from cases.service import find_case, utc
from cases.stats import figures
from cases.tables import CaseRecord
from hub.models import local_today
from recognition.dependencies import AppContext, CallerDep, SessionDep, record, require
from recognition.problems import ProblemError, missing_scope, responses
from recognition.scopes import CASES_WRITE, SUPERVISION_READ

router = APIRouter(prefix="/v1", tags=["supervision"])


class OpenCases(Collector):
    """``hub_cases_open{department, light}`` on ``/metrics``: open clocks as the supervision task last
    counted them (``cases.supervision_gauges.count_open``); a scrape reads that small table, never the cases."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "hub_cases_open",
            "Open case clocks by department (* for the cases) and light",
            labels=["department", "light"],
        )
        try:
            with self.sessions() as s:
                rows = supervision_gauges.gauges(s)
        except SQLAlchemyError:
            rows = []  # the scrape still answers; the API's own metrics matter more than this gauge
        for department, light, n in rows:
            family.add_metric([department, light], n)
        yield family


def install(ctx: AppContext) -> None:
    """Register the open-cases gauge on the app's metrics registry."""
    ctx.metrics.registry.register(OpenCases(ctx.sessions))


class FiguresOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="Item code, department, or * for all")
    name: str
    received: int
    concluded: int
    on_the_spot: int = Field(description="即办件: concluded without a working day used")
    early: int = Field(description="提前办结: concluded before the promised limit")
    overdue: int
    median_days: float | None
    p90_days: float | None
    corrections_per_case: float
    on_the_spot_rate: float | None
    early_rate: float | None
    evaluated: int = Field(description="好差评: the applicants' evaluations of these cases")
    poor: int = Field(description="差评: evaluations graded dissatisfied or very dissatisfied")
    poor_rate: float | None


class StatsOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: dt.date
    until: dt.date
    by: str
    rows: list[FiguresOut]


class EscalationOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int
    code: str = Field(description="The case's supervision code")
    department: str
    overdue: int = Field(description="Working days over the promised limit when raised")
    raised_on: dt.date
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None


class AcknowledgementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=2000, description="What the department does about it")


@router.get(
    "/cases/stats",
    response_model=StatsOut,
    responses=responses(401, 403, 422, 503),
    summary="The figures supervisors report, per item or department (scope supervision:read)",
)
async def stats(
    request: Request,
    c: CallerDep,
    s: SessionDep,
    since: Annotated[dt.date | None, Query(description="First day of receipt (default: 30 days ago)")] = None,
    until: Annotated[dt.date | None, Query(description="Last day of receipt (default: today)")] = None,
    by: Annotated[Literal["item", "department"], Query()] = "item",
) -> StatsOut:
    require(c, SUPERVISION_READ)
    today = local_today()
    first, last = since or today - dt.timedelta(days=30), until or today
    if last < first or (last - first).days > 366 * 3:
        raise ProblemError(422, "invalid_period", "Invalid period", "until must follow since, within three years")
    rows = figures(s, since=first, until=last, by=by)
    out = StatsOut(since=first, until=last, by=by, rows=[FiguresOut(**r.as_dict()) for r in rows])
    await record(request, c, "case_stats", subject=f"{first}..{last}", fields=["figures"], detail={"by": by})
    return out


def _escalation_out(row: Any, code: str) -> EscalationOut:
    return EscalationOut(
        id=row.id, code=code, department=row.department, overdue=row.overdue, raised_on=row.raised_on,
        acknowledged_at=utc(row.acknowledged_at) if row.acknowledged_at else None, acknowledged_by=row.acknowledged_by,
    )  # fmt: skip


def _department_of(c: Any) -> str | None:
    """``None``: every department's (supervision office); else the department the key acts for."""
    if c.principal.scopes.has(SUPERVISION_READ) and c.principal.department is None:
        return None
    bound = c.principal.department
    if bound is None:
        raise missing_scope(SUPERVISION_READ)
    if not c.principal.scopes.has(f"cases:steps:{bound}"):
        raise missing_scope(f"cases:steps:{bound}")
    return str(bound)


@router.get(
    "/cases/escalations",
    response_model=list[EscalationOut],
    responses=responses(401, 403, 503),
    summary="Open escalations (督办): every department's, or the calling department's",
)
async def open_escalations(request: Request, c: CallerDep, s: SessionDep) -> list[EscalationOut]:
    department = _department_of(c)
    rows = [r for r in supervision.escalations(s) if department is None or r.department == department]
    ids = {r.case_id for r in rows}
    codes = dict(s.execute(select(CaseRecord.id, CaseRecord.code).where(CaseRecord.id.in_(ids))).all())
    out = [_escalation_out(r, codes[r.case_id]) for r in rows]
    await record(request, c, "escalation_list", subject=department or "*", fields=["escalations"],
                 detail={"escalations": [e.id for e in out]})  # fmt: skip
    return out


@router.post(
    "/cases/escalations/{escalation_id}/acknowledgement",
    response_model=EscalationOut,
    responses=responses(401, 403, 404, 503),
    summary="The department acknowledges an escalation of its own (idempotent)",
)
async def acknowledge(
    request: Request,
    c: CallerDep,
    s: SessionDep,
    escalation_id: Annotated[int, Path(ge=1, le=2**62)],
    body: AcknowledgementIn,
) -> EscalationOut:
    department = c.principal.department
    if department is None:
        raise ProblemError(403, "department_key_required", "Department key required",
                           "an escalation is acknowledged by the department's own key")  # fmt: skip
    if not c.principal.scopes.has(f"cases:steps:{department}"):
        raise missing_scope(f"cases:steps:{department}")
    try:
        row = supervision.acknowledge(s, escalation_id, department, by=c.principal.name, note=body.note)
    except LookupError:
        raise ProblemError(404, "not_found", "Not found", "no such escalation of this department") from None
    code = s.scalar(select(CaseRecord.code).where(CaseRecord.id == row.case_id)) or ""
    s.commit()
    out = _escalation_out(row, code)
    await record(request, c, "escalation_acknowledged", subject=code, fields=["escalation"],
                 detail={"escalation": row.id, "department": department})  # fmt: skip
    return out


class EvaluationIn(BaseModel):
    """The applicant's evaluation (好差评) of a concluded case."""

    model_config = ConfigDict(extra="forbid")

    grade: Literal["very_satisfied", "satisfied", "basically_satisfied", "dissatisfied", "very_dissatisfied"] = Field(
        description="非常满意, 满意, 基本满意, 不满意, 非常不满意"
    )
    comment: str | None = Field(default=None, max_length=500, description="The applicant's words")
    channel: Literal["window", "portal", "app", "sms"] = Field(default="portal", description="Where it was left")


_STATUS = {Refusal.INVALID: 422, Refusal.CONFLICT: 409, Refusal.FORBIDDEN: 403, Refusal.NOT_FOUND: 404}


@router.post(
    "/cases/{code}/evaluation",
    response_model=EvaluationOut,
    status_code=201,
    responses={200: {"model": EvaluationOut, "description": "The same evaluation sent again: as recorded"},
               **responses(401, 403, 404, 409, 422, 503)},
    summary="The applicant's evaluation of a concluded case (好差评), once",
)  # fmt: skip
async def evaluate(
    request: Request,
    c: CallerDep,
    s: SessionDep,
    code: Annotated[str, Path(min_length=1, max_length=64, description="The supervision code (统一服务监管码)")],
    body: EvaluationIn,
) -> JSONResponse:
    require(c, CASES_WRITE)
    try:
        case = find_case(s, code, department=c.principal.department)
        done = evaluation.evaluate(s, case, body.grade, body.comment, channel=body.channel, by=c.principal.name)
        out = evaluation.out(done.row, case.code, personal=c.principal.scopes.personal, replayed=done.replayed)
        s.commit()
    except CaseRefused as exc:
        s.rollback()
        raise ProblemError(_STATUS[exc.kind], exc.code, exc.title, exc.detail) from None
    outcome = "replayed" if done.replayed else "ok"
    detail = {"grade": out.grade, "channel": out.channel}
    await record(request, c, "case_evaluation", subject=out.code, fields=["evaluation"], outcome=outcome, detail=detail)
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if done.replayed else 201)
