"""``/v1/cases``: the case repository (办件库) — intake, a case's timeline, an applicant's cases, department steps.

Authentication and the database session are dependencies (:data:`recognition.dependencies.CallerDep`,
:data:`~recognition.dependencies.SessionDep`). Who may do what:

- ``POST /v1/cases`` — ``cases:write`` (the front desk); a department-bound key takes in only
  the items its department leads (``item_not_led``). ``Idempotency-Key`` makes a double click
  harmless: the same key and application answer the first case (``200``,
  ``Idempotent-Replayed: true``), the same key with another application ``409 idempotency_key_reused``.
- ``GET /v1/cases/{code}``, ``GET /v1/holders/{code}/cases`` — ``cases:read``; a department-bound
  key sees only cases its department has a stage in (any other answers as if it did not exist).
- ``GET /v1/cases/{code}/receipt`` — ``cases:read``: the receipt (受理回执) PDF, masked like the case.
- ``POST /v1/cases/{code}/authorisations/{ref}/revoke`` — ``cases:write``: the holder withdraws
  the authorisation to use their licences for the case (``case.authorisation_revoked``).
- ``GET /v1/cases/{code}/materials/{material}/licence`` — ``cases:read`` with a key bound to a
  department the case is dispatched to: the licence that stands for the material, read under the
  holder's authorisation in force (``authorisation_revoked``, ``authorisation_expired`` otherwise);
  the audit entry names the authorisation.
- ``POST /v1/cases/{code}/steps`` — ``cases:steps:<department>`` for a department's steps,
  ``cases:write`` for the window's; a department-bound key reports only its own department's
  (``403 wrong_department``).

Personal data (applicant, agent, parties, delivery address; ids and phones in free text) is
masked by kind unless the key has ``personal:read`` (:mod:`cases.views`). Every answer is audited
(:func:`recognition.dependencies.record`) after its write is committed; refusals are audited by the trail
with their ``code``. Every refusal of the case repository is an ``application/problem+json`` with
a stable code (:data:`cases.errors.CODES`), written nothing, and counted in
``hub_cases_refusals_total{code}``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cases import authorisation, parties
from cases import intake as intake_mod
from cases import service as svc
from cases.catalogue import WINDOW, load_catalogue
from cases.errors import CaseRefused, Refusal
from cases.receipt import render_receipt
from cases.schemas import AuthorisationOut, CaseOut, CasePage, IntakeIn, RevokeIn, StepIn, StepRecorded
from cases.tables import CaseMaterial
from cases.views import case_out, case_summary, holder_shown, render, step_out
from e_license_store.index import get_license
from hub import sqlite_wal
from hub.masking import mask_presented_code, scrub_text
from hub.models import utcnow
from recognition import views as license_views
from recognition.case_reads import case_rows
from recognition.dependencies import (
    AppContext,
    Caller,
    CallerDep,
    SessionDep,
    caller,
    record,
    require,
    verified,
)
from recognition.problems import ProblemError, missing_scope, responses
from recognition.routers.cases_fast_path import CaseIntakeRoute
from recognition.schemas import LicenseDetail
from recognition.scopes import CASES_READ, CASES_WRITE, ScopeSet

router = APIRouter(prefix="/v1", tags=["cases"])

_STATUS = {Refusal.INVALID: 422, Refusal.CONFLICT: 409, Refusal.FORBIDDEN: 403, Refusal.NOT_FOUND: 404}


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


SupervisionCode = Annotated[str, Path(min_length=1, max_length=64, description="The supervision code (统一服务监管码)")]
AuthorisationRef = Annotated[str, Path(pattern=r"^AU[0-9A-F]{12}$", description="The authorisation's reference")]
MaterialCodePath = Annotated[str, Path(pattern=r"^M[0-9]{2}$", description="The material's code in the item")]
HolderCode = Annotated[str, Path(min_length=1, max_length=64, description="Resident id or USCC, or a legacy code")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
        description="Makes a repeated intake (a double click) answer the first case instead of making a second",
    ),
]  # fmt: skip


class _Counters:
    def __init__(self, ctx: AppContext) -> None:
        registry = ctx.metrics.registry
        self.refusals = Counter("hub_cases_refusals_total", "Case inputs refused, by code", ["code"], registry=registry)
        self.replays = Counter(
            "hub_cases_replays_total", "Intakes and steps repeated (nothing changed)", ["what"], registry=registry
        )


def _counters(request: Request) -> _Counters:
    found: _Counters | None = getattr(request.app.state, "cases_counters", None)
    if found is None:  # one event loop: nothing runs between this check and the assignment
        found = _Counters(_ctx(request))
        request.app.state.cases_counters = found
    return found


def _refused(request: Request, exc: CaseRefused) -> ProblemError:
    _counters(request).refusals.labels(exc.code).inc()
    return ProblemError(_STATUS[exc.kind], exc.code, exc.title, exc.detail)


def _answer(model: Any, *, created: bool, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=201 if created else 200, headers=headers)


async def take_in(
    request: Request, c: CallerDep, s: SessionDep, body: IntakeIn, idempotency_key: IdempotencyKey = None
) -> Response:
    require(c, CASES_WRITE)
    personal = c.principal.scopes.personal
    owner = c.principal.consumer_id
    # the answer waits for its audit entry, whose sync of SQLite's log makes this commit durable too
    sqlite_wal.sync_later(s)
    try:
        try:
            taken = intake_mod.take_in(s, body, actor=c.principal.name, consumer=owner,
                                       idempotency_key=idempotency_key, department=c.principal.department)  # fmt: skip
            # a new case's answer is built from memory after the commit (no statement), so SQLite's
            # write lock is not held while it is; a replayed one's is read before
            out = None if taken.rows is not None else _intake_answer(s, taken, personal)
            s.commit()
        except IntegrityError:
            # another request took the same key in meanwhile (or drew the same code): read what it wrote
            s.rollback()
            found = (
                intake_mod.replay(s, body, consumer=owner, idempotency_key=idempotency_key)
                if idempotency_key is not None else None
            )  # fmt: skip
            if found is None:
                taken = intake_mod.take_in(s, body, actor=c.principal.name, consumer=owner,
                                           department=c.principal.department)  # fmt: skip
            else:
                taken = found
            out = None if taken.rows is not None else _intake_answer(s, taken, personal)
            s.commit()
    except CaseRefused as exc:
        s.rollback()
        raise _refused(request, exc) from None
    if out is None:
        out = _intake_answer(s, taken, personal)
    if taken.replayed:
        _counters(request).replays.labels("intake").inc()
    await record(
        request, c, "case_intake", subject=out.code, fields=["case"] + ([] if personal else ["masked"]),
        outcome="replayed" if taken.replayed else "ok",
        detail={"item": out.item.code, "intake_outcome": out.intake_outcome, "status": out.status,
                "materials_recognised": [m.code for m in out.materials if m.found_by == "hub"]},
    )  # fmt: skip
    headers = {"Idempotent-Replayed": "true"} if taken.replayed else None
    # validated when built: serialised by pydantic-core in one pass (as the timeline read sends it)
    return Response(out.model_dump_json(), status_code=200 if taken.replayed else 201, headers=headers,
                    media_type="application/json")  # fmt: skip


router.add_api_route(
    "/cases",
    take_in,
    methods=["POST"],
    response_model=CaseOut,
    status_code=201,
    responses={200: {"model": CaseOut, "description": "The same intake repeated: the first case"},
               **responses(401, 403, 409, 503)},
    summary="Take in an application (一窗受理): a new case under its supervision code",
    route_class_override=CaseIntakeRoute,
)  # fmt: skip


def _intake_answer(s: Session, taken: intake_mod.Taken, personal: bool) -> CaseOut:
    """The answer to an intake: a new case's from the rows ``take_in`` wrote (the same answer as
    ``GET /v1/cases/{code}`` gives for it, without reading it back), a replayed one's as read."""
    if taken.rows is not None:
        return render(taken.rows, personal=personal)
    return case_out(s, taken.case, personal=personal, replayed=taken.replayed)


def _readable_case(request: Request, c: Caller, s: Session, code: str) -> tuple[CaseOut, bool]:
    """The case under ``code`` as this caller may read it (``cases:read``; a department's only its
    cases), masked unless it has ``personal:read``; and whether it has."""
    require(c, CASES_READ)
    personal = c.principal.scopes.personal
    try:
        case = svc.find_case(s, code, department=c.principal.department)
    except CaseRefused as exc:
        raise _refused(request, exc) from None
    return case_out(s, case, personal=personal), personal


class CaseTimelineRoute(APIRoute):
    """The timeline route, with FastAPI's parameter solving skipped when it has nothing to decide.

    Its only parameter is the code in the path: when that is 1..64 characters (what the declared
    ``Path`` accepts) and no dependency overrides are set, the handler authenticates with the same
    dependency and calls the same endpoint function; otherwise, or when the app was built with
    ``fast_paths=False`` (``app.state.fast_paths``), FastAPI's full path answers. The OpenAPI
    document is FastAPI's, from the same declaration. A test checks both paths answer alike.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        endpoint = self.endpoint
        overrides = self.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            code = request.path_params.get("code")
            if (
                getattr(overrides, "dependency_overrides", None)
                or not getattr(request.app.state, "fast_paths", True)
                or not isinstance(code, str)
                or not 1 <= len(code) <= 64
            ):
                return await full(request)
            response: Response = await endpoint(request, await caller(request), code)
            return response

        return handler


# The case repository's hot read: the case's rows with a few precompiled statements on the
# thread's reader connection (recognition.case_reads), no ORM session; the answer is case_out's.
# (No docstring: it would become the operation's description in the OpenAPI document.)
async def get_case(request: Request, c: CallerDep, code: SupervisionCode) -> Response:
    require(c, CASES_READ)
    personal = c.principal.scopes.personal
    try:
        compact = svc.parse_code(code)
    except CaseRefused as exc:
        raise _refused(request, exc) from None
    ctx = _ctx(request)
    with ctx.reader() as dbapi_conn:
        found = case_rows(dbapi_conn, ctx.engine.dialect, compact, department=c.principal.department)
    if found is None:
        raise _refused(request, svc.not_found())
    out = render(found, personal=personal)
    await record(
        request, c, "case_read", subject=out.code, fields=["case", "timeline"] + ([] if personal else ["masked"]),
        detail={"status": out.status, "steps": len(out.timeline)},
    )  # fmt: skip
    # validated when built: sent as is instead of FastAPI validating the model a second time
    return Response(out.model_dump_json(), media_type="application/json")


router.add_api_route(
    "/cases/{code}",
    get_case,
    methods=["GET"],
    response_model=CaseOut,
    responses=responses(401, 403, 404, 503),
    summary="A case's timeline by its supervision code: every department's steps, who holds it now",
    route_class_override=CaseTimelineRoute,
)


@router.get(
    "/cases/{code}/receipt",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The receipt (受理回执) as a PDF"},
               **responses(401, 403, 404, 503)},
    summary="The receipt of a case: a PDF with its supervision code and a QR code to its status page",
)  # fmt: skip
async def get_receipt(request: Request, c: CallerDep, s: SessionDep, code: SupervisionCode) -> Response:
    out, personal = _readable_case(request, c, s, code)
    pdf = render_receipt(out)
    await record(
        request, c, "case_receipt", subject=out.code, fields=["case", "receipt"] + ([] if personal else ["masked"]),
        detail={"status": out.status, "intake_outcome": out.intake_outcome},
    )  # fmt: skip
    return Response(
        pdf, media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="receipt-{out.code}.pdf"'},
    )  # fmt: skip


@router.get(
    "/holders/{code}/cases",
    response_model=CasePage,
    responses=responses(401, 403, 503),
    summary="An applicant's cases, newest first (by any of their codes)",
)
async def holder_cases(
    request: Request,
    c: CallerDep,
    s: SessionDep,
    code: HolderCode,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> CasePage:
    require(c, CASES_READ)
    personal = c.principal.scopes.personal
    try:
        codes = parties.lookup_codes(s, code)
    except CaseRefused as exc:
        raise _refused(request, exc) from None
    rows = svc.cases_of(s, codes, department=c.principal.department, limit=limit, offset=offset)
    kind = rows[0].applicant_kind if rows else None
    holder = holder_shown(codes[0], kind, personal) if codes else (mask_presented_code(code) or "")
    page = CasePage(
        holder=holder, masked=not personal, items=[case_summary(s, r, personal=personal) for r in rows],
        limit=limit, offset=offset, next_offset=offset + limit if len(rows) == limit else None,
    )  # fmt: skip
    await record(
        request, c, "case_list", subject=holder_shown(codes[0], kind, False) if codes else holder,
        fields=["case"] + ([] if personal else ["masked"]), detail={"cases": [i.code for i in page.items]},
    )  # fmt: skip
    return page


def _acting_department(c: Caller, body: StepIn) -> str:
    """The department the step is reported for, once the key may act for it."""
    bound = c.principal.department
    department = body.department or bound
    if department is None:
        raise CaseRefused("unknown_department", "name the department (or use a key bound to one)")
    if department != WINDOW and department not in load_catalogue().departments:
        raise CaseRefused("unknown_department", f"department {department!r} is not in the catalogue")
    if bound is not None and department != bound:
        raise CaseRefused("wrong_department", f"this key acts for {bound} only", Refusal.FORBIDDEN)
    needed = CASES_WRITE if department == WINDOW else f"cases:steps:{department}"
    if not c.principal.scopes.has(needed):
        raise missing_scope(needed)
    return department


@router.post(
    "/cases/{code}/steps",
    response_model=StepRecorded,
    status_code=201,
    responses={200: {"model": StepRecorded, "description": "The same step again: nothing changed"},
               **responses(401, 403, 404, 409, 503)},
    summary="Report a department's step of a case (idempotent per department and seq)",
)  # fmt: skip
async def post_step(request: Request, c: CallerDep, s: SessionDep, code: SupervisionCode, body: StepIn) -> JSONResponse:
    personal = c.principal.scopes.personal
    try:
        department = _acting_department(c, body)
        try:
            done = svc.record_step(s, code, department, body, actor=c.principal.name)
            s.commit()
        except IntegrityError:  # the same step written by a concurrent request: the retry finds it
            s.rollback()
            done = svc.record_step(s, code, department, body, actor=c.principal.name)
            s.commit()
    except CaseRefused as exc:
        s.rollback()
        raise _refused(request, exc) from None
    impossible = next(
        (p.impossible for p in done.reading.timeline if (p.department, p.seq) == (department, body.seq)), None
    )
    out = StepRecorded(
        code=done.case.code, step=step_out(done.row, impossible, personal), replayed=done.replayed,
        status=done.reading.status, held_by=done.reading.held_by,
    )  # fmt: skip
    if done.replayed:
        _counters(request).replays.labels("step").inc()
    await record(
        request, c, "case_step", subject=done.case.code, fields=["step"], outcome="replayed" if done.replayed else "ok",
        detail={"department": department, "seq": body.seq, "step": body.step.value, "impossible": impossible,
                "arrived_out_of_order": done.row.arrived_out_of_order},
    )  # fmt: skip
    return _answer(out, created=not done.replayed)


class AuthorisationRevoked(BaseModel):
    """An authorisation revoked: later reads of the licences under it are refused."""

    model_config = ConfigDict(extra="forbid")
    code: str
    authorisation: AuthorisationOut


@router.post(
    "/cases/{code}/authorisations/{ref}/revoke",
    response_model=AuthorisationRevoked,
    responses=responses(401, 403, 404, 409, 503),
    summary="Revoke a holder's authorisation to use their licences for this case",
)
async def revoke_authorisation(
    request: Request, c: CallerDep, s: SessionDep, code: SupervisionCode, ref: AuthorisationRef, body: RevokeIn
) -> AuthorisationRevoked:
    require(c, CASES_WRITE)
    now = utcnow()
    try:
        case = svc.find_case(s, code, department=c.principal.department)
        row = authorisation.revoke(s, case, ref, body, actor=c.principal.name, now=now)
        out = AuthorisationRevoked(
            code=case.code, authorisation=authorisation.out(row, now, text=scrub_text(body.reason))
        )
        s.commit()
    except CaseRefused as exc:
        s.rollback()
        raise _refused(request, exc) from None
    await record(
        request, c, "case_authorisation_revoke", subject=out.code, fields=["authorisation"],
        detail={"authorisation": ref, "holder": out.authorisation.holder, "materials": out.authorisation.materials},
    )  # fmt: skip
    return out


class MaterialLicence(BaseModel):
    """A recognised licence of a case (免提交) as the department reads it, under the holder's authorisation."""

    model_config = ConfigDict(extra="forbid")
    code: str
    material: str
    authorisation: AuthorisationOut
    license_version: int = Field(description="The version recorded for the case")
    licence: LicenseDetail = Field(description="The licence now (its status may have changed since intake)")


@router.get(
    "/cases/{code}/materials/{material}/licence",
    response_model=MaterialLicence,
    responses=responses(401, 403, 404, 409, 503),
    summary="A department reads the licence that stands for a material of its case, under the authorisation",
)
async def material_licence(
    request: Request, c: CallerDep, s: SessionDep, code: SupervisionCode, material: MaterialCodePath
) -> MaterialLicence:
    require(c, CASES_READ)
    personal = c.principal.scopes.personal
    now = utcnow()
    try:
        department = c.principal.department
        if department is None:
            raise CaseRefused(
                "department_key_required", "a case's licences are read by the departments it is dispatched to",
                Refusal.FORBIDDEN,
            )  # fmt: skip
        case = svc.find_case(s, code, department=department)
        held = s.scalar(
            select(CaseMaterial).where(CaseMaterial.case_id == case.id, CaseMaterial.material_code == material)
        )
        if held is None:
            raise CaseRefused(
                "unknown_material", f"material {material}: the case has no such material", Refusal.NOT_FOUND
            )
        if held.license_id is None or held.license_version is None:
            raise CaseRefused(
                "material_not_a_licence", f"material {material} is provided as {held.provision}", Refusal.CONFLICT
            )
        under = authorisation.in_force_for(s, case, held.holder_role, material, now)
        row = get_license(s, held.license_id)
    except CaseRefused as exc:
        s.rollback()
        raise _refused(request, exc) from None
    if row is None:  # the index lost it: nothing to read, and that is the hub's fault
        raise ProblemError(503, "licence_unavailable", "Licence unavailable", "the licence index has no such licence")
    ctx = _ctx(request)
    # the authorisation releases every field the licence type's catalogue knows (masked by kind
    # unless the key has personal:read); the key needs no licence-type scope of its own
    scopes = ScopeSet.parse(["fields:*", *(["personal:read"] if personal else [])])
    surface = await verified(request, c, row, lambda: ctx.directory.surface(row))
    released = license_views.release(row.license_type_code, surface,
                                     license_views.party_of(row.holder_kind, row.holder_code), scopes)  # fmt: skip
    detail = LicenseDetail(
        **license_views.summary(row, personal), key_id=row.key_id, surface=released.surface,
        withheld_fields=released.withheld, masked=released.masked,
    )  # fmt: skip
    out = MaterialLicence(
        code=case.code, material=material, license_version=held.license_version, licence=detail,
        authorisation=authorisation.out(under, now, text=None).model_copy(
            update={"purpose": under.purpose if personal else scrub_text(under.purpose),
                    "reference": None if under.reference is None or personal else scrub_text(under.reference)}
        ),
    )  # fmt: skip
    await record(
        request, c, "case_licence_read", subject=row.license_id, fields=sorted(released.surface),
        detail={"case": case.code, "material": material, "authorisation": under.ref, "department": department,
                "version": held.license_version, "masked": released.masked},
    )  # fmt: skip
    return out
