"""Holders (持证主体): their licences (the API's hot route, 持证查询) and their results across departments
(跨部门结果互认). A holder is named by a resident id or USCC, or a legacy code the master index resolves."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from e_license_store.catalogue import UnknownLicenseType, license_type, number_shown
from hub.models import local_today
from recognition.dependencies import (
    CallerDep,
    HolderCode,
    Limit,
    Offset,
    SessionDep,
    audit_subject,
    context,
    holder_ref,
    next_offset,
    record,
    require,
    summary,
)
from recognition.holders import resolve_canonical, resolve_holder
from recognition.problems import missing_scope, responses
from recognition.routers.holders_fast_path import HolderLicensesRoute
from recognition.schemas import LicensePage, LicenseStatusParam, Recognition, RecognitionCheck, RecognitionPage


def router(*, fast_paths: bool = True) -> APIRouter:
    """The holders' routes; ``fast_paths`` puts licences by holder on its measured fast path."""
    r = APIRouter()
    r.add_api_route(
        "/v1/holders/{code}/licenses",
        holder_licenses,
        methods=["GET"],
        response_model=LicensePage,
        responses=responses(401, 403, 503),
        tags=["licences"],
        summary="Licences of a holder (持证查询)",
        route_class_override=HolderLicensesRoute if fast_paths else None,
    )
    r.add_api_route(
        "/v1/holders/{code}/recognitions",
        recognitions,
        methods=["GET"],
        response_model=RecognitionPage,
        responses=responses(401, 403, 503),
        tags=["recognition"],
        summary="Every current licence and approval result of a holder, across departments (跨部门结果互认)",
    )
    return r


# The hot route: no session dependency (the fast path calls it without FastAPI's solving); a
# legacy code opens one to ask the master index.
async def holder_licenses(
    request: Request,
    c: CallerDep,
    code: HolderCode,
    type: Annotated[list[str] | None, Query(max_length=20, description="Licence type codes")] = None,
    status: LicenseStatusParam | None = None,
    valid_on: Annotated[dt.date | None, Query(description="Only licences valid on this date")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Response:
    scopes = c.principal.scopes
    readable = scopes.readable_types
    if type:
        for t in type:
            if not scopes.can_read_type(t):
                raise missing_scope(f"licenses:read:{t}")
        types: list[str] | None = list(type)
    elif readable is None:
        types = None
    elif readable:
        types = sorted(readable)
    else:
        raise missing_scope("licenses:read:*")
    ctx = context(request)
    resolved = resolve_canonical(code)
    if resolved is None:  # a legacy code: the identity part resolves it (ORM, master index)
        with ctx.sessions() as session:
            resolved = resolve_holder(session, code)
    # a DBAPI connection and a precompiled statement: the lookup without SQLAlchemy's
    # per-execution bookkeeping, which costs several times the query itself
    with ctx.reader() as dbapi_conn:
        rows = ctx.directory.by_holder_dbapi(
            dbapi_conn, ctx.engine.dialect, resolved.codes, type_codes=types,
            status=status.value if status else None, valid_on=valid_on, limit=limit, offset=offset,
        )  # fmt: skip
    # validated by pydantic-core in one call: cheaper than model_construct's Python loop per item
    page = LicensePage.model_validate(
        {
            "holder": holder_ref(resolved, scopes.personal),
            "masked": not scopes.personal,
            "items": [summary(r, scopes.personal) for r in rows],
            "limit": limit,
            "offset": offset,
            "next_offset": next_offset(offset, limit, len(rows)),
        }
    )
    await record(
        request, c, "read", subject=audit_subject(resolved.canonical),
        fields=["metadata"] + ([] if scopes.personal else ["masked"]),
        detail={"licenses": [r.license_id for r in rows], "types": types},
    )  # fmt: skip
    # already validated: sent as is instead of FastAPI validating the model a second time
    return Response(page.model_dump_json(), media_type="application/json")


async def recognitions(
    request: Request,
    c: CallerDep,
    session: SessionDep,
    code: HolderCode,
    as_of: Annotated[dt.date | None, Query(description="Results valid on this date (default today)")] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    offset: Offset = 0,
) -> RecognitionPage:
    require(c, "recognitions:read")
    scopes = c.principal.scopes
    readable = scopes.readable_types
    if readable is not None and not readable:
        raise missing_scope("licenses:read:*")
    day = as_of or local_today()
    ctx = context(request)
    items = []
    resolved = resolve_holder(session, code)
    rows = ctx.directory.by_holder(
        session, resolved.codes, type_codes=sorted(readable) if readable is not None else None,
        status="valid", valid_on=day, limit=limit, offset=offset,
    )  # fmt: skip
    for row in rows:
        check = ctx.directory.verify_current(session, row)
        try:
            ltype = license_type(row.license_type_code)
            kind = "approval" if ltype.is_approval_result else "license"
            department: str | None = ltype.issuer_department
        except UnknownLicenseType:
            kind, department = "license", None
        items.append(
            Recognition(
                kind=kind, license_id=row.license_id, type_code=row.license_type_code,
                type_name=row.license_type_name,
                number=number_shown(row.license_type_code, row.license_number, scopes.personal),
                issuer_code=row.issuer_code,
                issuer_name=row.issuer_name, source_department=department, issue_date=row.issue_date,
                valid_from=row.valid_from, valid_until=row.valid_until, status=row.status,
                version=row.version,
                verification=RecognitionCheck(
                    ok=check.ok, signature_ok=check.signature_ok, hash_ok=check.hash_ok,
                    problems=list(check.problems),
                ),
            )
        )  # fmt: skip
    page = RecognitionPage(
        holder=holder_ref(resolved, scopes.personal), as_of=day, items=items, limit=limit, offset=offset,
        next_offset=next_offset(offset, limit, len(rows)),
    )  # fmt: skip
    await record(
        request, c, "recognitions", subject=audit_subject(resolved.canonical), fields=["metadata", "verification"],
        detail={"licenses": [i.license_id for i in items], "as_of": day.isoformat()},
    )  # fmt: skip
    return page
