"""The public case status page (办件进度公开查询): ``/status``, no key, server-rendered.

- ``GET /status/{supervision code}`` — what the receipt's code opens: the case as
  :mod:`recognition.status_page` releases it (item, status, every department's stage and steps
  with their times, who holds it now, the supervision lights, the applicant's name masked). The code may be typed as
  printed (``330322-20250612-7K3PQ0``), with spaces, full-width or in lower case.
- A code whose check character does not match says "check the code" (``400``, 请核对): a
  mistyped or swapped character is the likely cause, not a missing case; any other malformed
  code says what a code looks like (``400``); a well-formed code of no case ``404``.
- ``GET /status`` — the look-up form; ``GET /status?code=…`` (the form sent) redirects (``303``)
  to the code's page, so the form works without JavaScript.

Like ``/verify`` (:mod:`recognition.routers.pages`): Chinese first, English by ``Accept-Language``
or ``?lang=en``; the same security headers; the per-address rate limit of every request; each
answer audited before it leaves (a read with what it released, a refusal with its reason).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from stdnum.exceptions import InvalidChecksum, ValidationError

from cases import service as case_service
from cases.errors import CaseRefused
from cases.supervision_tables import CaseClock
from cases.views import case_out
from identifiers import supervision_code
from recognition.routers.pages import (
    SECURITY_HEADERS,
    STATUS_PREFIX,
    AuditUnavailable,
    audit_page,
    page_language,
    problem_page,
    refuse,
    render,
)
from recognition.status_page import RELEASED_FIELDS, facts

if TYPE_CHECKING:
    from recognition.dependencies import AppContext

router = APIRouter(include_in_schema=False)
ACTION = "status_page"
MAX_CODE = 64


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


@router.get(STATUS_PREFIX, response_class=HTMLResponse)
async def status_home(request: Request) -> Response:
    """The look-up form; with ``?code=`` (the form sent) a redirect to that code's page."""
    lang = page_language(request)
    typed = request.query_params.get("code")
    if typed is not None and typed.strip():
        target = f"{STATUS_PREFIX}/{quote(typed.strip()[:MAX_CODE], safe='')}?{urlencode({'lang': lang})}"
        return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    return render("status_home.html", status=200, lang=lang, path=request.url.path, query={})


@router.get(STATUS_PREFIX + "/{code}", response_class=HTMLResponse)
async def status_case(request: Request, code: str) -> HTMLResponse:
    """A case's progress by its supervision code (see the module docstring)."""
    compact: str | None = None
    reason = None
    if len(code) > MAX_CODE:
        reason = "malformed_code"
    else:
        try:
            compact = supervision_code.validate(code)
        except InvalidChecksum:
            reason = "check_character"
        except ValidationError:
            reason = "malformed_code"
    if reason is not None or compact is None:
        check = reason == "check_character"
        return await refuse(
            request, 400, reason or "malformed_code", action=ACTION, section=STATUS_PREFIX,
            heading="st_check_title" if check else None, message="st_check_body" if check else None,
        )  # fmt: skip
    ctx = _ctx(request)
    with ctx.sessions() as session:
        try:
            case = case_service.find_case(session, compact)
        except CaseRefused:
            shown = None
        else:
            clocks = {c.department: c for c in session.scalars(select(CaseClock).where(CaseClock.case_id == case.id))}
            shown = facts(case_out(session, case, personal=False), clocks)
    if shown is None:
        return await refuse(request, 404, "unknown_case", action=ACTION, subject=compact, section=STATUS_PREFIX)
    lang = page_language(request)
    try:
        await audit_page(request, ACTION, subject=compact, fields=RELEASED_FIELDS, detail=shown.audit_detail())
    except AuditUnavailable:
        return problem_page(503, lang, section=STATUS_PREFIX)
    # the language switch names the code as printed, however it was typed
    return render("status_case.html", status=200, lang=lang, path=f"{STATUS_PREFIX}/{shown.printed_code}", query={},
                  f=shown)  # fmt: skip
