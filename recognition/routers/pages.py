"""The public verification pages (证照公开核验页): ``/verify``, no key, server-rendered.

- ``GET /verify/{licence id}?v={version}&t={token}`` — what a licence's QR code opens
  (:mod:`e_license_store.verify_link`): the version's status now and the facts
  :mod:`recognition.verify_page` releases. A malformed id or version, a missing or wrong token,
  an unknown licence or version all get the same ``404`` page: a guessed id reveals nothing.
- ``GET /verify`` — the upload form; ``POST /verify`` — a PDF uploaded through it: a file the
  hub issued, unaltered, shows its licence's page; anything else a ``422`` page that says the file
  failed and nothing of the licence it names (``415`` not a PDF, ``413`` too large — the API's
  body limit applies before the form is read — ``400`` no file).

Every page is Chinese first, English by ``Accept-Language`` or ``?lang=en``
(:mod:`recognition.page_text`), works without JavaScript (there is none), and loads one
stylesheet from the hub itself; answers carry a strict Content-Security-Policy and
``Referrer-Policy: no-referrer`` (the token is in the URL). Requests pass the same per-address
rate limit as the API (:class:`recognition.gate.GateMiddleware` counts every request) and each
answer is audited: a read with what it released, a refusal with its reason. Problem answers that
arise before or outside these handlers under ``/verify`` (429, 413 from the body limit, 405) are
shown as pages too (:class:`HtmlProblemPages`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
from collections.abc import Mapping
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from e_license_store import identifier as license_ids
from e_license_store import verify_link
from e_license_store.index import LicenseIndexRow
from e_license_store.tables import LicenseVersionEntry
from e_license_store.verify import MAX_FILE_BYTES, IntegrityFailure
from hub.models import local_today
from recognition import audit, trail
from recognition.directory import license_by_id_dbapi
from recognition.page_text import HTML_LANG, TEXT, language
from recognition.problems import ProblemError
from recognition.verify_page import RELEASED_FIELDS, LicenceFacts, VerifiedVersions

if TYPE_CHECKING:
    from recognition.dependencies import AppContext

log = logging.getLogger(__name__)
alerts = logging.getLogger("hub.alerts")

#: the largest licence file the form accepts (the API's body limit adds room for the form around it)
MAX_UPLOAD = MAX_FILE_BYTES
MAX_VERSION = 999_999_999
PAGE_PREFIX = verify_link.PATH_PREFIX
STATUS_PREFIX = "/status"
CONSOLE_PREFIX = "/console"
STYLESHEET = "/static/pages/hub.css"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("recognition", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_STYLESHEET = files("recognition").joinpath("static", "hub.css").read_bytes()

router = APIRouter(include_in_schema=False)


def install(app: FastAPI) -> None:
    """Add the pages to ``app``: the routes, and problem answers under ``/verify`` shown as pages."""
    app.include_router(router)
    app.add_middleware(HtmlProblemPages)


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


class AuditUnavailable(Exception):
    """The page's audit entry could not be committed: no answer without it."""


async def audit_page(
    request: Request, action: str, *, subject: str | None, outcome: str = "ok", fields: list[str] | None = None,
    detail: dict[str, Any] | None = None, consumer: str = "anonymous",
) -> None:  # fmt: skip
    """The audit entry of a page answer, committed before the page leaves (an anonymous reader, or
    ``consumer``: the person signed in to the console)."""
    ctx = _ctx(request)
    entry = audit.AuditRecord(
        consumer=consumer,
        action=action,
        resource=f"{request.method} {trail.masked_path(request.scope)}"[:300],
        subject=subject,
        fields=fields or [],
        outcome=outcome,
        detail={"client": trail.client_address(request.scope), **(detail or {})},
    )
    try:
        await ctx.audit.write(entry)
    except Exception as exc:
        log.error("audit write failed: %s", type(exc).__name__)
        raise AuditUnavailable from exc
    setattr(request.state, trail.AUDITED, True)
    ctx.metrics.audit_entries.inc()


def page_language(request: Request) -> str:
    return language(request.query_params.get("lang"), request.headers.get("accept-language"))


def _switch_href(path: str, query: Mapping[str, str], lang: str) -> str:
    """The same page in the other language."""
    params = {k: v for k, v in query.items() if k in ("v", "t")}
    params["lang"] = TEXT[lang]["switch_lang"]
    return f"{path}?{urlencode(params)}"


def render(name: str, *, status: int, lang: str, path: str, query: Mapping[str, str], **values: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(
        t=TEXT[lang], lang=lang, html_lang=HTML_LANG[lang], switch_href=_switch_href(path, query, lang), **values
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


#: a problem's status -> the page's heading and message
_PROBLEM_TEXT = {
    400: ("upload_fail_title", "upload_fail_form"),
    404: ("not_found_title", "not_found_body"),
    405: ("method_title", "method_body"),
    413: ("upload_fail_title", "upload_fail_too_large"),
    415: ("upload_fail_title", "upload_fail_not_pdf"),
    429: ("rate_limited_title", "rate_limited_body"),
    503: ("unavailable_title", "unavailable_body"),
}


#: the public sections: path prefix -> the problem page's template and its own problem texts by status
SECTIONS: dict[str, tuple[str, dict[int, tuple[str, str]]]] = {
    PAGE_PREFIX: ("verify_problem.html", {}),
    STATUS_PREFIX: ("status_problem.html", {404: ("st_not_found_title", "st_not_found_body"),
                                            400: ("st_malformed_title", "st_malformed_body")}),
    CONSOLE_PREFIX: ("console_problem.html", {401: ("co_signin_title", "co_signin_needed"),
                                              403: ("co_forbidden_title", "co_forbidden_body"),
                                              404: ("co_not_found_title", "co_not_found_body")}),
}  # fmt: skip


def section_of(path: str) -> str | None:
    """The public section (``/verify``, ``/status``) a path is in, if any."""
    for prefix in SECTIONS:
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return None


def problem_page(
    status: int, lang: str, *, heading: str | None = None,
    message: str | None = None, headers: Mapping[str, str] | None = None, section: str = PAGE_PREFIX,
) -> HTMLResponse:  # fmt: skip
    """A page saying what went wrong (``heading``/``message`` are text keys; default: by status)."""
    t = TEXT[lang]
    template, texts = SECTIONS[section]
    default_heading, default_message = texts.get(status) or _PROBLEM_TEXT.get(status, ("error_title", "error_body"))
    # the language switch leads to the home page: a refused path is never repeated (it may be anything typed)
    page = render(
        template, status=status, lang=lang, path=section, query={},
        heading=t[heading or default_heading], message=t[message or default_message],
        with_form=status in (400, 404, 413, 415, 422),
    )  # fmt: skip
    for name, value in (headers or {}).items():
        page.headers[name] = value
    return page


async def refuse(
    request: Request, status: int, reason: str, *, action: str, subject: str | None = None,
    heading: str | None = None, message: str | None = None, detail: dict[str, Any] | None = None,
    section: str = PAGE_PREFIX, consumer: str = "anonymous",
) -> HTMLResponse:  # fmt: skip
    """A refusal page, audited with its reason (which the page itself never tells)."""
    lang = page_language(request)
    try:
        await audit_page(
            request, action, subject=subject, outcome="refused" if status < 500 else "error",
            detail={"status": status, "code": reason, **(detail or {})}, consumer=consumer,
        )  # fmt: skip
    except AuditUnavailable:
        return problem_page(503, lang, section=section)
    return problem_page(status, lang, heading=heading, message=message, section=section)


def _parse_version(raw: str | None) -> int | None:
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        return None
    version = int(raw)
    return version if 1 <= version <= MAX_VERSION else None


def _version_row(ctx: AppContext, current: LicenseIndexRow, version: int) -> LicenseIndexRow | None:
    """``current`` as of ``version`` (its stored object and recorded hash), if the licence has it."""
    if version == current.version:
        return current
    if version > current.version:
        return None
    with ctx.sessions() as session:
        entry = session.get(LicenseVersionEntry, (current.license_id, version))
        if entry is None:
            return None
        # an earlier version's object has no recorded hash (the index keeps the current one's): its
        # seal is verified instead
        return dataclasses.replace(
            current, version=version, object_key=entry.object_key, content_sha256=entry.content_sha256,
            key_id=entry.key_id, object_sha256=None,
        )  # fmt: skip


async def _licence_page(
    request: Request, current: LicenseIndexRow, shown: LicenseIndexRow, *, action: str, by: str,
    uploaded: bool = False,
) -> HTMLResponse:  # fmt: skip
    """The page of ``shown`` (a version of the licence whose current entry is ``current``), audited."""
    ctx = _ctx(request)
    lang = page_language(request)
    today = local_today()
    try:
        shown_facts: LicenceFacts = verified_versions(request).facts(ctx.directory, current, shown, today)
    except IntegrityFailure as exc:
        ctx.metrics.integrity_failures.inc()
        alerts.error(
            "ALERT licence integrity check failed: %s v%s: %s", exc.license_id, exc.version, "; ".join(exc.problems)
        )
        return await refuse(
            request, 503, "integrity_check_failed", action=action, subject=shown.license_id,
            heading="integrity_title", message="integrity_body",
            detail={"version": exc.version, "problems": exc.problems[:10], "by": by},
        )  # fmt: skip
    try:
        await audit_page(
            request, action, subject=shown.license_id, fields=RELEASED_FIELDS,
            detail={"by": by, **shown_facts.audit_detail()},
        )  # fmt: skip
    except AuditUnavailable:
        return problem_page(503, lang)
    html = _licence_html(lang, shown_facts, today, uploaded, _switch_href(request.url.path, request.query_params, lang))
    return HTMLResponse(html, status_code=200, headers=SECURITY_HEADERS)


def verified_versions(request: Request) -> VerifiedVersions:
    """This process's :class:`VerifiedVersions` (one per app)."""
    found: VerifiedVersions | None = getattr(request.app.state, "verified_versions", None)
    if found is None:  # one event loop: nothing runs between this check and the assignment
        found = request.app.state.verified_versions = VerifiedVersions()
    return found


@functools.lru_cache(maxsize=4096)
def _licence_html(lang: str, f: LicenceFacts, today: dt.date, uploaded: bool, switch_href: str) -> str:
    """A licence's page: a pure function of what it shows (the facts, today, the language), so a repeat
    view of the same facts is not rendered again."""
    return _templates.get_template("verify_licence.html").render(
        t=TEXT[lang], lang=lang, html_lang=HTML_LANG[lang], switch_href=switch_href, f=f, today=today,
        uploaded=uploaded,
    )  # fmt: skip


@router.get(PAGE_PREFIX, response_class=HTMLResponse)
async def verify_home(request: Request) -> HTMLResponse:
    """The verification home page: what the page is for, and the upload form (audited by the trail)."""
    return render("verify_home.html", status=200, lang=page_language(request), path=request.url.path,
                  query=request.query_params)  # fmt: skip


async def verify_licence(request: Request) -> HTMLResponse:
    """What a licence's QR code opens (see the module docstring)."""
    license_id = str(request.path_params["license_id"])
    ctx = _ctx(request)
    version = _parse_version(request.query_params.get("v"))
    presented = request.query_params.get("t", "")
    reason: str | None = None
    current: LicenseIndexRow | None = None
    shown: LicenseIndexRow | None = None
    if not license_ids.is_valid(license_id):
        reason = "malformed_id"
    elif version is None:
        reason = "malformed_version"
    elif not verify_link.check_token(license_id, version, presented):
        reason = "bad_token"  # checked before any lookup: a guess costs no query and learns nothing
    else:
        with ctx.reader() as dbapi_conn:  # the by-id read without the ORM (see AppContext.reader)
            current = license_by_id_dbapi(dbapi_conn, ctx.engine.dialect, license_id)
        shown = _version_row(ctx, current, version) if current is not None else None
        if shown is None:
            reason = "unknown_licence" if current is None else "unknown_version"
    if reason is not None or current is None or shown is None:
        subject = license_id if license_ids.is_valid(license_id) else None
        return await refuse(request, 404, reason or "not_found", action="verify_page", subject=subject)
    return await _licence_page(request, current, shown, action="verify_page", by="link")


# A plain Starlette route: the handler reads and checks the id and the query itself, so FastAPI's
# parameter solving (which cost more than the page's own lookups) has nothing to do.
router.add_route(PAGE_PREFIX + "/{license_id}", verify_licence, methods=["GET"], include_in_schema=False)


@router.post(PAGE_PREFIX, response_class=HTMLResponse)
async def verify_upload(request: Request) -> HTMLResponse:
    """A licence PDF uploaded through the form (see the module docstring)."""
    action = "verify_page_file"
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        return await refuse(request, 415, "unsupported_media_type", action=action)
    try:
        form = await request.form(max_files=1, max_fields=5)
    except ProblemError as exc:  # the body limit, reached while the form was read
        return await refuse(request, exc.status, exc.code, action=action)
    except StarletteHTTPException:  # a malformed form (Starlette's MultiPartException)
        return await refuse(request, 400, "malformed_form", action=action)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return await refuse(request, 400, "file_missing", action=action, message="upload_fail_missing")
        data = await upload.read(MAX_UPLOAD + 1)
    finally:
        await form.close()
    if len(data) > MAX_UPLOAD:
        return await refuse(request, 413, "file_too_large", action=action)
    if not data.startswith(b"%PDF-"):
        return await refuse(request, 415, "not_a_pdf", action=action, detail={"bytes": len(data)})
    ctx = _ctx(request)
    with ctx.sessions() as session:
        result = ctx.directory.verify_bytes(session, data)
    genuine = result.well_formed and result.signature_ok and result.hash_ok and result.license_id is not None
    current = None
    if genuine and result.license_id is not None:
        with ctx.reader() as dbapi_conn:
            current = license_by_id_dbapi(dbapi_conn, ctx.engine.dialect, result.license_id)
    shown = _version_row(ctx, current, result.version) if current is not None and result.version else None
    if current is None or shown is None:
        # nothing of the licence the file names is told: an altered file and an invented one look alike
        copy = any("masked copy" in p for p in result.problems)
        return await refuse(
            request, 422, "masked_copy" if copy else "not_genuine", action=action, heading="upload_fail_title",
            message="upload_fail_copy" if copy else "upload_fail_altered",
            detail={"file_sha256": result.file_sha256, "problems": result.problems[:10]},
        )  # fmt: skip
    return await _licence_page(request, current, shown, action=action, by="file", uploaded=True)


@router.get(STYLESHEET, response_class=Response)
async def stylesheet() -> Response:
    return Response(_STYLESHEET, media_type="text/css", headers={"Cache-Control": "public, max-age=86400"})


class HtmlProblemPages:
    """Shows a problem answer (``application/problem+json``) under ``/verify`` or ``/status`` as a page.

    The per-address rate limit, the body limit and the router answer before any page handler
    runs (429, 413, 404, 405); a person who scanned a QR code gets a page in their language with
    the same status and ``Retry-After``, not JSON. The audit trail inside has recorded the answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or section_of(scope.get("path", "")) is None:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = bytearray()

        async def send_page(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"application/problem+json"):
                    start = message
                    return
            elif message["type"] == "http.response.body" and start is not None:
                body.extend(message.get("body", b""))
                if message.get("more_body"):
                    return
                await self._page(scope, start, bytes(body), send)
                return
            await send(message)

        await self.app(scope, receive, send_page)

    async def _page(self, scope: Scope, start: Message, body: bytes, send: Send) -> None:
        request = Request(scope)
        try:
            status = int(json.loads(body).get("status", start["status"]))
        except (ValueError, AttributeError):
            status = int(start["status"])
        keep = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])
                if k.lower() in (b"retry-after", b"www-authenticate")}  # fmt: skip
        page = problem_page(
            status, page_language(request), headers=keep, section=section_of(request.url.path) or PAGE_PREFIX
        )
        await page(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
