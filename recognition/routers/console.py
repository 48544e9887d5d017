"""The operator and steward console (运维控制台): ``/console``, named accounts, server-rendered.

- ``GET /console/login``, ``POST /console/login`` — sign in with a named account
  (:mod:`recognition.console_accounts`, created with ``hub console users add``). The login form
  carries a CSRF token that must match a cookie set with the form (double submit). A wrong name
  or password: the form again, ``401``. Signed in: a session cookie ``hub_console`` (HttpOnly,
  SameSite=Strict, Path=/console, Secure over HTTPS) for ``HUB_CONSOLE_SESSION_MINUTES``.
- ``GET /console`` — what the account's role may see: the feeds with their last run and its
  counts from the run ledger (linking to the run in Airflow's UI), quarantined records by feed
  and reason, dead letters (with replay for operators), the outbox backlog, cases lit yellow or red
  (:mod:`recognition.console_data`). ``GET /console/quarantine?department=`` the quarantined
  records themselves, masked; ``GET /console/deliveries/{id}`` one delivery.
- ``POST /console/deliveries/{id}/replay`` — replay a delivery through
  :func:`recognition.delivery_ops.replay`, the function ``hub deliver --replay`` calls; the push
  worker sends it again with its idempotency key.
- ``POST /console/logout`` — ends the session in the database at once.

Every form carries the session's CSRF token; a POST without it, or with another, is ``403``. No
session: a page asks for a sign-in (``GET /console`` redirects to the form); an expired or ended
session ``401``; a role without the right ``403``; an API key (``Authorization``) ``403`` — keys
are for programs, the console is for people — or ``401`` when the key is unknown. Every answer,
refusals included, is audited before it leaves, naming the person (``console:<name>``).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import secrets
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.settings import get_settings
from recognition import console_accounts as accounts
from recognition import console_data as data
from recognition import delivery_ops
from recognition.console_accounts import SignedIn
from recognition.page_text import TEXT
from recognition.routers.pages import (
    CONSOLE_PREFIX,
    SECURITY_HEADERS,
    AuditUnavailable,
    audit_page,
    page_language,
    problem_page,
    refuse,
    render,
)
from recognition.tables import Delivery
from validation.quarantine import QuarantineView, list_quarantine

if TYPE_CHECKING:
    from recognition.dependencies import AppContext

router = APIRouter(include_in_schema=False)
COOKIE = "hub_console"
LOGIN_COOKIE = "hub_console_login"
LOGIN = CONSOLE_PREFIX + "/login"


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=CONSOLE_PREFIX, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")  # fmt: skip


def _forget(response: Response, name: str) -> None:
    response.delete_cookie(name, path=CONSOLE_PREFIX, httponly=True, samesite="strict")


def _redirect(to: str, lang: str) -> RedirectResponse:
    return RedirectResponse(f"{to}?lang={lang}", status_code=303, headers=SECURITY_HEADERS)


def _same(presented: object, expected: str | None) -> bool:
    return (
        isinstance(presented, str)
        and bool(expected)
        and hmac.compare_digest(presented.encode("utf-8"), str(expected).encode("utf-8"))
    )


async def _refuse(
    request: Request, status: int, reason: str, *, action: str, heading: str | None = None,
    message: str | None = None, consumer: str = "anonymous", subject: str | None = None,
) -> HTMLResponse:  # fmt: skip
    return await refuse(request, status, reason, action=action, heading=heading, message=message,
                        section=CONSOLE_PREFIX, consumer=consumer, subject=subject)  # fmt: skip


async def _signed_in(request: Request, action: str, permission: str | None = None) -> SignedIn | Response:
    """The person signed in, or the (audited) answer to give instead."""
    ctx = _ctx(request)
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, key = header.partition(" ")
        principal = ctx.principal(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
        if principal is None:
            return await _refuse(request, 401, "unknown_key", action=action, message="co_api_key_body")
        return await _refuse(request, 403, "api_key_not_for_console", action=action, message="co_api_key_body",
                             consumer=principal.name)  # fmt: skip
    token = request.cookies.get(COOKIE)
    if not token:
        if request.method == "GET":
            try:
                await audit_page(request, action, subject=None, outcome="refused",
                                 detail={"status": 303, "code": "not_signed_in"})  # fmt: skip
            except AuditUnavailable:
                return problem_page(503, page_language(request), section=CONSOLE_PREFIX)
            return _redirect(LOGIN, page_language(request))
        return await _refuse(request, 401, "not_signed_in", action=action)
    with ctx.sessions() as session:
        state, me = accounts.find_session(session, token)
    if me is None:
        expired = state == "expired"
        page = await _refuse(
            request, 401, f"session_{state}", action=action,
            heading="co_expired_title" if expired else "co_signin_title",
            message="co_expired_body" if expired else "co_ended_body",
        )  # fmt: skip
        _forget(page, COOKIE)
        return page
    if permission is not None and not me.may(permission):
        return await _refuse(request, 403, "role_not_allowed", action=action, consumer=me.actor,
                             subject=permission)  # fmt: skip
    return me


async def _form(request: Request, action: str, expected_csrf: str | None, consumer: str) -> FormData | Response:
    """The form of a POST, once its CSRF token matches; else the (audited) refusal."""
    try:
        form = await request.form(max_files=0, max_fields=10)
    except StarletteHTTPException:
        return await _refuse(request, 400, "malformed_form", action=action, consumer=consumer)
    presented = form.get("csrf")
    if not _same(presented, expected_csrf):
        code = "csrf_token_missing" if not presented else "csrf_token_mismatch"
        return await _refuse(request, 403, code, action=action, message="co_csrf_body", consumer=consumer)
    return form


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return aware.astimezone(ZoneInfo(_timezone())).strftime("%Y-%m-%d %H:%M:%S")


def _timezone() -> str:
    return get_settings().source_timezone


def _page(request: Request, name: str, me: SignedIn | None, *, status: int = 200, **values: Any) -> HTMLResponse:
    ctx = _ctx(request)
    base = ctx.config.airflow_ui_url
    return render(
        name, status=status, lang=page_language(request), path=request.url.path, query={}, me=me, when=_when,
        airflow=lambda f: data.airflow_run_url(base, f.mapping, f.run_id), **values,
    )  # fmt: skip


async def _audited(request: Request, page: Response, action: str, me: SignedIn, *, subject: str | None = None,
                   fields: list[str] | None = None, detail: dict[str, Any] | None = None) -> Response:  # fmt: skip
    try:
        await audit_page(request, action, subject=subject, fields=fields, detail=detail, consumer=me.actor)
    except AuditUnavailable:
        return problem_page(503, page_language(request), section=CONSOLE_PREFIX)
    return page


# -- signing in and out ---------------------------------------------------------------------------------------
def _login_form(request: Request, *, status: int = 200, error: str | None = None) -> HTMLResponse:
    csrf = secrets.token_urlsafe(32)
    page = _page(request, "console_login.html", None, status=status, csrf=csrf, error=error)
    _set_cookie(request, page, LOGIN_COOKIE, csrf, max_age=600)
    return page


@router.get(LOGIN, response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    """The sign-in form (audited by the trail)."""
    return _login_form(request)


@router.post(LOGIN, response_class=HTMLResponse)
async def login(request: Request) -> Response:
    action = "console_sign_in"
    form = await _form(request, action, request.cookies.get(LOGIN_COOKIE), "anonymous")
    if isinstance(form, Response):
        return form
    name = str(form.get("name") or "").strip()[:60]
    password = str(form.get("password") or "")[:200]
    ctx = _ctx(request)
    minutes = ctx.config.console_session_minutes

    def check() -> tuple[str, SignedIn] | None:  # scrypt takes tens of milliseconds: off the event loop
        with ctx.sessions() as session:
            user = accounts.authenticate(session, name, password)
            if user is None:
                return None
            started = accounts.start_session(session, user, ttl=dt.timedelta(minutes=minutes))
            session.commit()
            return started

    started = await run_in_threadpool(check)
    if started is None:
        try:
            await audit_page(request, action, subject=None, outcome="refused",
                             detail={"status": 401, "code": "wrong_name_or_password", "name": name})  # fmt: skip
        except AuditUnavailable:
            return problem_page(503, page_language(request), section=CONSOLE_PREFIX)
        return _login_form(request, status=401, error=TEXT[page_language(request)]["co_wrong_password"])
    token, me = started
    try:
        await audit_page(request, action, subject=me.name, detail={"role": me.role,
                         "expires_at": me.expires_at.isoformat()}, consumer=me.actor)  # fmt: skip
    except AuditUnavailable:
        return problem_page(503, page_language(request), section=CONSOLE_PREFIX)
    answer = _redirect(CONSOLE_PREFIX, page_language(request))
    _set_cookie(request, answer, COOKIE, token, max_age=minutes * 60)
    _forget(answer, LOGIN_COOKIE)
    return answer


@router.post(CONSOLE_PREFIX + "/logout", response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    action = "console_sign_out"
    me = await _signed_in(request, action)
    if isinstance(me, Response):
        return me
    form = await _form(request, action, me.csrf_token, me.actor)
    if isinstance(form, Response):
        return form
    with _ctx(request).sessions() as session:
        accounts.end_session(session, request.cookies.get(COOKIE, ""))
        session.commit()
    answer = _redirect(LOGIN, page_language(request))
    _forget(answer, COOKIE)
    return await _audited(request, answer, action, me, subject=me.name)


# -- what operators see ----------------------------------------------------------------------------------------
@router.get(CONSOLE_PREFIX, response_class=HTMLResponse)
async def home(request: Request) -> Response:
    action = "console_view"
    me = await _signed_in(request, action)
    if isinstance(me, Response):
        return me
    values: dict[str, Any] = {"feeds": [], "quarantine": [], "dead": [], "backlog": None, "lit": []}
    with _ctx(request).sessions() as session:
        if me.may("feeds"):
            values["feeds"] = data.feeds(session)
        if me.may("quarantine"):
            values["quarantine"] = data.quarantine_counts(session)
        if me.may("deliveries"):
            values["dead"] = data.dead_letters(session)
        if me.may("outbox"):
            values["backlog"] = data.backlog(session)
        if me.may("cases"):
            values["lit"] = data.lit_clocks(session)
    shown = [k for k in ("feeds", "quarantine", "dead", "backlog", "lit") if me.may({"dead": "deliveries",
             "backlog": "outbox", "lit": "cases"}.get(k, k))]  # fmt: skip
    page = _page(request, "console_home.html", me, replayed=None, **values)
    return await _audited(request, page, action, me, subject="overview", fields=shown,
                          detail={"dead_letters": [d.id for d in values["dead"]]})  # fmt: skip


def _record_text(view: QuarantineView) -> str:
    record = (view.payload or {}).get("record", {})
    return json.dumps(record, ensure_ascii=False, default=str, sort_keys=True)[:400]


@router.get(CONSOLE_PREFIX + "/quarantine", response_class=HTMLResponse)
async def quarantine(request: Request) -> Response:
    action = "console_quarantine"
    me = await _signed_in(request, action, "quarantine")
    if isinstance(me, Response):
        return me
    department = (request.query_params.get("department") or "").strip()[:100] or None
    with _ctx(request).sessions() as session:
        records = list_quarantine(session, department=department, limit=100)
    page = _page(request, "console_quarantine.html", me, records=records, department=department, record=_record_text)
    return await _audited(request, page, action, me, subject=department or "quarantine", fields=["masked"],
                          detail={"records": [r.id for r in records]})  # fmt: skip


def _delivery_id(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


@router.get(CONSOLE_PREFIX + "/deliveries/{delivery_id}", response_class=HTMLResponse)
async def delivery(request: Request, delivery_id: str) -> Response:
    action = "console_delivery"
    me = await _signed_in(request, action, "deliveries")
    if isinstance(me, Response):
        return me
    number = _delivery_id(delivery_id)
    with _ctx(request).sessions() as session:
        found = data.one_delivery(session, number) if number is not None else None
    if found is None:
        return await _refuse(request, 404, "unknown_delivery", action=action, consumer=me.actor)
    page = _page(request, "console_delivery.html", me, d=found, replayed=request.query_params.get("replayed") == "1")
    return await _audited(request, page, action, me, subject=str(found.id), detail={"status": found.status})


@router.post(CONSOLE_PREFIX + "/deliveries/{delivery_id}/replay", response_class=HTMLResponse)
async def replay(request: Request, delivery_id: str) -> Response:
    """Replay a delivery through the service function ``hub deliver --replay`` calls."""
    action = "console_replay"
    me = await _signed_in(request, action, "deliveries:replay")
    if isinstance(me, Response):
        return me
    form = await _form(request, action, me.csrf_token, me.actor)
    if isinstance(form, Response):
        return form
    number = _delivery_id(delivery_id)
    before: str | None = None
    with _ctx(request).sessions() as session:
        current = session.get(Delivery, number) if number is not None else None
        if current is not None and number is not None:
            before = current.status
            status_after: str | None = delivery_ops.replay(session, number).status
            session.commit()
        else:
            status_after = None
    if status_after is None:
        return await _refuse(request, 404, "unknown_delivery", action=action, consumer=me.actor)
    answer = RedirectResponse(f"{CONSOLE_PREFIX}/deliveries/{number}?replayed=1&lang={page_language(request)}",
                              status_code=303, headers=SECURITY_HEADERS)  # fmt: skip
    try:
        await audit_page(request, action, subject=str(number), consumer=me.actor,
                         detail={"status": status_after, "before": before})  # fmt: skip
    except AuditUnavailable:
        return problem_page(503, page_language(request), section=CONSOLE_PREFIX)
    return answer
