"""The mutual-recognition API (互认接口): FastAPI app with scoped keys, masking and audit.

``create_app(settings)`` builds the app; every answer that releases data is recorded in the
audit log and committed before the answer is sent (group commit, see :mod:`recognition.audit`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.egress import redact_credentials
from e_license_store import identifier as license_ids
from e_license_store.catalogue import UnknownLicenseType, license_type
from e_license_store.index import LicenseIndexRow, license_versions
from e_license_store.model import LicenseDocument
from e_license_store.render import copy_document, render_copy_pdf
from e_license_store.verify import MAX_FILE_BYTES, IntegrityFailure
from hub.db import make_engine, session_factory
from hub.masking import mask_code, scrub_text
from hub.models import local_today
from hub.settings import Settings, get_settings
from recognition import audit, trail, views
from recognition import delivery as delivery_mod
from recognition import subscriptions as subs_mod
from recognition.audit_process import ProcessAuditWriter
from recognition.config import RecognitionSettings
from recognition.consumers import Principal, identify
from recognition.directory import LicenseDirectory, license_by_id_dbapi
from recognition.gate import AccessGate, GateMiddleware
from recognition.holders import ResolvedHolder, is_resident_id, resolve_canonical, resolve_holder
from recognition.keys import parse_key
from recognition.lineage import LineageNotFound, license_lineage
from recognition.problems import (
    ProblemError,
    destination_not_allowed,
    missing_scope,
    not_found,
    problem_response,
    responses,
    unauthorized,
)
from recognition.routers import api_docs, pages
from recognition.schemas import (
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    Health,
    HolderRef,
    LicenseDetail,
    LicenseLineage,
    LicensePage,
    LicenseStatusParam,
    Recognition,
    RecognitionCheck,
    RecognitionPage,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionPage,
    Verification,
    VerifyById,
)
from recognition.scopes import LINEAGE_READ

log = logging.getLogger(__name__)
#: operator alerts (a failed seal check on read): route this logger to the operators' channel
alerts = logging.getLogger("hub.alerts")

API_TITLE = "Exchange hub: mutual-recognition API (跨部门结果互认)"
MAX_UPLOAD = MAX_FILE_BYTES  # an uploaded licence file (the body limit adds room for the form around it)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "hub_api_requests_total", "API requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "hub_api_request_seconds",
            "API request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.audit_entries = Counter("hub_audit_entries_total", "Audit entries written", registry=self.registry)
        self.integrity_failures = Counter(
            "hub_license_integrity_failures_total", "Licence objects that failed their seal check on read",
            registry=self.registry,
        )  # fmt: skip
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def children(self, template: str, method: str, status: int) -> tuple[Counter, Histogram]:
        """The labelled series of one route, method and status (looked up once, then kept)."""
        key = (template, method, status)
        found = self._children.get(key)
        if found is None:
            found = (self.requests.labels(template, method, str(status)), self.latency.labels(template))
            self._children[key] = found
        return found


class AuditSink(Protocol):
    """Where answers' audit entries go: ``write`` returns once the entry is committed."""

    async def write(self, record: audit.AuditRecord) -> int: ...


@dataclass
class AppContext:
    settings: Settings
    config: RecognitionSettings
    engine: Engine
    sessions: sessionmaker[Session]
    directory: LicenseDirectory
    audit: AuditSink
    metrics: Metrics
    gate: AccessGate
    _keys: dict[str, tuple[Principal | None, float]] = field(default_factory=dict)
    _keys_lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)
    _readers: list[Any] = field(default_factory=list)

    @contextmanager
    def reader(self) -> Iterator[Any]:
        """A DBAPI connection of this thread for one short read, kept open between requests.

        The hot lookup runs without an ``await`` between checkout and return, so one
        connection per thread (the event loop's) serves it; that saves the pool's checkout,
        reset and, on PostgreSQL, its pre-ping per request. The read transaction ends on
        return, so no snapshot outlives the request; a connection that failed is dropped.
        """
        conn = getattr(self._local, "reader", None)
        if conn is None:
            conn = self.engine.raw_connection()
            conn.detach()  # its own life from here: closed by close_readers(), not returned to the pool
            self._local.reader = conn
            with self._keys_lock:
                self._readers.append(conn)
        try:
            yield conn
            conn.rollback()
        except BaseException:
            self._local.reader = None
            with self._keys_lock:
                if conn in self._readers:
                    self._readers.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()
            raise

    def close_readers(self) -> None:
        with self._keys_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            with contextlib.suppress(Exception):
                conn.close()

    def principal(self, token: str) -> Principal | None:
        """The key's principal; cached briefly so the hot path does not hash and query every time.

        Its expiry and binding are checked on every request (:meth:`AccessGate.admit`), cached or not.
        """
        now = time.monotonic()
        hit = self._keys.get(token)
        if hit is not None and hit[1] > now:
            return hit[0]
        with self.sessions() as session:
            found = identify(session, token)
        with self._keys_lock:
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[token] = (found, now + self.config.api_key_cache_seconds)
        return found


@dataclass(frozen=True)
class Caller:
    principal: Principal
    purpose: str | None


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def caller(request: Request) -> Caller:
    """Authentication: ``Authorization: Bearer <key>``; the purpose from ``X-Purpose`` or the consumer's default."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("send Authorization: Bearer <API key>")
    presented = parse_key(token.strip())
    if presented is not None:
        setattr(request.state, trail.KEY_ID, presented[0])
    principal = _ctx(request).principal(token.strip())
    if principal is None:
        raise unauthorized("the API key is unknown or revoked")
    await _ctx(request).gate.admit(request.scope, principal)  # expiry, source binding, rate (recognition.gate)
    setattr(request.state, trail.CALLER, principal)
    purpose = request.headers.get("x-purpose")
    if purpose:
        if f"purpose:{purpose}" not in principal.scopes.scopes:
            raise missing_scope(f"purpose:{purpose}")
    else:
        purpose = principal.scopes.default_purpose
    return Caller(principal, purpose)


CallerDep = Annotated[Caller, Depends(caller)]


def require(c: Caller, scope: str) -> None:
    if not c.principal.scopes.has(scope):
        raise missing_scope(scope)


def holder_ref(resolved: ResolvedHolder, personal: bool) -> HolderRef:
    person = is_resident_id(resolved.canonical) or is_resident_id(resolved.presented)
    mask = person and not personal
    return HolderRef(
        presented=(mask_code(resolved.presented, person=True) or "") if mask else resolved.presented,
        canonical=(mask_code(resolved.canonical, person=True) or "") if mask else resolved.canonical,
        resolved_via=resolved.resolved_via,
    )


summary = views.summary


def _masked_path(request: Request) -> str:
    """The request path with its parameters masked (a holder code may be a resident id)."""
    return trail.masked_path(request.scope)


def _audit_subject(code: str) -> str:
    """A code as the audit log keeps it: a resident id (or anything shaped like one) masked."""
    return (mask_code(code, person=True) or "") if is_resident_id(code) else scrub_text(code)


async def record(
    request: Request,
    c: Caller | None,
    action: str,
    *,
    subject: str | None,
    outcome: str = "ok",
    fields: list[str] | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write the audit entry and wait until it is committed; no entry, no answer (503)."""
    ctx = _ctx(request)
    entry = audit.AuditRecord(
        consumer=c.principal.name if c else "anonymous",
        key_id=c.principal.key_id if c else None,
        action=action,
        resource=f"{request.method} {_masked_path(request)}"[:300],
        subject=subject,
        fields=fields or [],
        purpose=c.purpose if c else None,
        outcome=outcome,
        detail=detail or {},
    )
    try:
        await ctx.audit.write(entry)
    except Exception as exc:
        log.error("audit write failed: %s", type(exc).__name__)
        raise ProblemError(503, "audit_unavailable", "Audit log unavailable", "the read could not be recorded") from exc
    setattr(request.state, trail.AUDITED, True)
    ctx.metrics.audit_entries.inc()


def _trail_writer(ctx: AppContext) -> trail.TrailWriter:
    """How :class:`recognition.trail.AuditTrail` records an answer no handler recorded."""

    async def write(scope: Scope, status: int, state: dict[str, Any]) -> None:
        principal: Principal | None = state.get(trail.CALLER)
        code = state.get(trail.PROBLEM_CODE)
        outcome = "ok" if status < 400 else ("refused" if status < 500 else "error")
        detail: dict[str, Any] = {"status": status, "client": trail.client_address(scope)}
        if code:
            detail["code"] = code
        entry = audit.AuditRecord(
            consumer=principal.name if principal else "anonymous",
            key_id=principal.key_id if principal else state.get(trail.KEY_ID),
            action="refuse" if status >= 400 else "read",
            resource=f"{scope.get('method', '')} {trail.masked_path(scope)}"[:300],
            outcome=outcome,
            detail=detail,
        )
        await ctx.audit.write(entry)
        ctx.metrics.audit_entries.inc()

    return write


class MetricsMiddleware:
    """Counts and times requests by route template (never by raw path: codes are personal data)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            counter, histogram = self.metrics.children(template, scope.get("method", ""), status[0])
            counter.inc()
            histogram.observe(time.perf_counter() - started)


def create_app(
    settings: Settings | None = None,
    *,
    directory: LicenseDirectory | None = None,
    engine: Engine | None = None,
    config: RecognitionSettings | None = None,
    fast_paths: bool = True,
    audit_process: bool | None = None,
) -> FastAPI:
    """The app.

    ``fast_paths=False`` leaves every request to FastAPI's parsing (see :class:`_HolderLicensesRoute`).
    ``audit_process`` commits the audit log from a child process (the default, see
    :mod:`recognition.audit_process`) or, when false, from a thread; an in-memory database,
    which no other process can open, always takes the thread.
    """
    settings = settings or get_settings()
    config = config or RecognitionSettings()
    engine = engine or make_engine(settings.resolved_db_url())
    metrics = Metrics()
    in_memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
    writer: AuditSink
    on_start: Callable[[], Any]
    on_stop: Callable[[], Any]
    if in_memory or audit_process is False:
        thread_writer = audit.AuditWriter(engine)
        writer, on_start, on_stop = thread_writer, thread_writer.start, thread_writer.close
    else:
        process_writer = ProcessAuditWriter(engine)
        writer, on_start, on_stop = process_writer, process_writer.start, process_writer.aclose
    ctx = AppContext(
        settings=settings,
        config=config,
        engine=engine,
        sessions=session_factory(engine),
        directory=directory or LicenseDirectory(),
        audit=writer,
        metrics=metrics,
        gate=AccessGate.from_settings(config, settings.home, registry=metrics.registry),
    )
    app = FastAPI(
        title=API_TITLE,
        version="1.0.0",
        description=(
            "Licences by holder, licence by id and file, verification, cross-department results, "
            "subscriptions and deliveries. `Authorization: Bearer <key>`; no key, no data. "
            "Errors are RFC 9457 problem details with a stable `code`."
        ),
        docs_url=None,  # /docs and /redoc with vendored bundles: recognition.routers.api_docs
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.add_middleware(trail.BodyLimit, limit_for=config.body_limit)
    app.add_middleware(GateMiddleware, gate=ctx.gate)  # per-address limits before routing and authentication
    app.add_middleware(trail.AuditTrail, write=_trail_writer(ctx))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _install_error_handlers(app)
    _routes(app, fast_paths=fast_paths)
    app.include_router(api_docs.router)
    pages.install(app)  # the public verification pages, /verify
    from recognition.routers import cases as cases_router  # the routers import this module: import them here
    from recognition.routers import console as console_router
    from recognition.routers import status as status_router
    from recognition.routers import supervision as supervision_router

    app.include_router(supervision_router.router)  # before /v1/cases/{code}: /v1/cases/stats is not a code
    supervision_router.install(ctx)
    app.include_router(cases_router.router)
    app.include_router(status_router.router)  # the public case status pages, /status
    app.include_router(console_router.router)  # the operator console, /console
    app.router.add_event_handler("startup", on_start)
    app.router.add_event_handler("shutdown", on_stop)
    app.router.add_event_handler("shutdown", ctx.close_readers)
    app.router.add_event_handler("shutdown", ctx.gate.aclose)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    # Problem details repeat the path with its parameters masked (``instance``) and name their
    # reason (``code``) to the audit trail, which records every refusal.
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        setattr(request.state, trail.PROBLEM_CODE, exc.code)
        return problem_response(
            exc.status, exc.code, exc.title, exc.detail, instance=_masked_path(request),
            missing_scope=exc.missing_scope, headers=exc.headers,
        )  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the offending input is left out: it may be a resident id
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        setattr(request.state, trail.PROBLEM_CODE, "validation_error")
        return problem_response(
            422, "validation_error", "Invalid request", "the request does not match the API",
            instance=_masked_path(request), errors=jsonable_encoder(errors),
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        code = codes.get(exc.status_code, f"http_{exc.status_code}")
        setattr(request.state, trail.PROBLEM_CODE, code)
        return problem_response(
            exc.status_code, code, str(exc.detail), instance=_masked_path(request),
            headers=getattr(exc, "headers", None),
        )  # fmt: skip

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s: %s", _masked_path(request), type(exc).__name__, exc_info=exc)
        return problem_response(500, "internal_error", "Internal error", instance=_masked_path(request))


_STATUS_VALUES = {s.value: s for s in LicenseStatusParam}
_PLAIN_INT = re.compile(r"(?:0|[1-9][0-9]{0,6})")
_PLAIN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _plain_holder_query(request: Request) -> dict[str, Any] | None:
    """The licences-by-holder parameters when every one is in its plain form, else ``None``.

    Plain means what FastAPI would accept without a doubt and read the same way: digits
    within the declared bounds, an ISO date, a listed status, at most 20 types, a code of
    1..64 characters, no repeated single-valued parameter. Anything else, valid or not,
    goes to FastAPI, which answers it (or rejects it) as it always did.
    """
    code = request.path_params.get("code")
    if not isinstance(code, str) or not 1 <= len(code) <= 64:
        return None
    args: dict[str, Any] = {"code": code, "type": None, "status": None, "valid_on": None, "limit": 50, "offset": 0}
    raw = request.scope.get("query_string", b"")
    if not raw:
        return args
    seen: set[str] = set()
    types: list[str] = []
    # the same reading of the query string as Starlette's QueryParams
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name == "type":
            types.append(value)
            continue
        if name not in args:
            continue  # FastAPI ignores parameters the route does not declare
        if name in seen:
            return None
        seen.add(name)
        if name == "status":
            if value not in _STATUS_VALUES:
                return None
            args["status"] = _STATUS_VALUES[value]
        elif name == "valid_on":
            if not _PLAIN_DATE.fullmatch(value):
                return None
            try:
                args["valid_on"] = dt.date.fromisoformat(value)
            except ValueError:
                return None
        elif name in ("limit", "offset"):
            if not _PLAIN_INT.fullmatch(value):
                return None
            number = int(value)
            low, high = (1, 200) if name == "limit" else (0, 1_000_000)
            if not low <= number <= high:
                return None
            args[name] = number
        else:
            return None
    if types:
        if len(types) > 20:
            return None
        args["type"] = types
    return args


class _HolderLicensesRoute(APIRoute):
    """The licences-by-holder route, with FastAPI's parameter solving skipped for plain requests.

    It is the API's hot path, and FastAPI's generic dependency and parameter solving costs
    more than the lookup itself. For a request whose parameters are all plain
    (:func:`_plain_holder_query`) the handler authenticates with the same dependency and
    calls the same endpoint function; every other request, and every request while
    dependency overrides are set, takes FastAPI's full path. The OpenAPI document is
    FastAPI's, generated from the same declaration. A test checks both paths answer alike.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        endpoint = self.endpoint
        overrides = self.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            args = None if getattr(overrides, "dependency_overrides", None) else _plain_holder_query(request)
            if args is None:
                return await full(request)
            c = await caller(request)
            response: Response = await endpoint(request, c, **args)
            return response

        return handler


HolderCode = Annotated[str, Path(min_length=1, max_length=64, description="Resident id or USCC, or a legacy code")]
LicenseId = Annotated[str, Path(min_length=1, max_length=64, description="Licence identifier")]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


def _next(offset: int, limit: int, got: int) -> int | None:
    return offset + limit if got == limit else None


def _id_type(license_id: str) -> str | None:
    """The licence type a well-formed licence id names (its first part), else ``None``."""
    try:
        return license_ids.parse(license_id)[0]
    except license_ids.InvalidLicenseId:
        return None


def _readable_row(request: Request, c: Caller, license_id: str) -> LicenseIndexRow:
    """The licence if it exists and the caller may read its type, else 404.

    A licence of a type outside the caller's scopes gets the same answer as no licence, so
    the answer never reveals whether it exists; a 403 comes only from what the id itself
    says (its type code), before any lookup.
    """
    scopes = c.principal.scopes
    if not scopes.can_read_any:
        raise missing_scope("licenses:read:*")
    named = _id_type(license_id)
    if named is not None and not scopes.can_read_type(named):
        raise missing_scope(f"licenses:read:{named}")
    ctx = _ctx(request)
    with ctx.reader() as dbapi_conn:  # the by-id read without the ORM (see AppContext.reader)
        row = license_by_id_dbapi(dbapi_conn, ctx.engine.dialect, license_id)
    if row is None or not scopes.can_read_type(row.license_type_code):
        raise not_found(f"licence {trail.mask_param('license_id', license_id)}")
    return row


_T = TypeVar("_T")


async def verified(request: Request, c: Caller, row: LicenseIndexRow, read: Callable[[], _T]) -> _T:
    """``read()`` of a licence's stored objects, which verifies them; a failed check is an
    operator alert and a 503 problem, never the tampered content and never a crash."""
    try:
        return read()
    except IntegrityFailure as exc:
        ctx = _ctx(request)
        ctx.metrics.integrity_failures.inc()
        alerts.error(
            "ALERT licence integrity check failed: %s v%s: %s", exc.license_id, exc.version, "; ".join(exc.problems)
        )
        await record(
            request, c, "read", subject=row.license_id, outcome="integrity_failure",
            detail={"version": exc.version, "problems": exc.problems[:10]},
        )  # fmt: skip
        raise ProblemError(
            503, "integrity_check_failed", "Licence failed its integrity check",
            "the stored licence does not match its seal; operators have been alerted",
        ) from None  # fmt: skip


def _routes(app: FastAPI, *, fast_paths: bool = True) -> None:
    @app.get("/healthz", response_model=Health, tags=["operations"])
    def healthz(request: Request) -> Health:
        try:
            with _ctx(request).engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise ProblemError(503, "database_unavailable", "Database unavailable") from exc
        return Health(status="ok", database="ok")

    metrics_doc = {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Metrics"}

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: metrics_doc, **responses(401, 403)},
        summary="Prometheus metrics (scope metrics:read)",
    )
    async def metrics(request: Request, c: CallerDep) -> Response:
        require(c, "metrics:read")
        body = generate_latest(_ctx(request).metrics.registry)
        await record(request, c, "read", subject="metrics")
        return Response(body, media_type=CONTENT_TYPE_LATEST)

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
        ctx = _ctx(request)
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
                "next_offset": _next(offset, limit, len(rows)),
            }
        )
        await record(
            request, c, "read", subject=_audit_subject(resolved.canonical),
            fields=["metadata"] + ([] if scopes.personal else ["masked"]),
            detail={"licenses": [r.license_id for r in rows], "types": types},
        )  # fmt: skip
        # already validated: sent as is instead of FastAPI validating the model a second time
        return Response(page.model_dump_json(), media_type="application/json")

    app.router.add_api_route(
        "/v1/holders/{code}/licenses",
        holder_licenses,
        methods=["GET"],
        response_model=LicensePage,
        responses=responses(401, 403, 503),
        tags=["licences"],
        summary="Licences of a holder (持证查询)",
        route_class_override=_HolderLicensesRoute if fast_paths else None,
    )
    # Starlette tries routes in order; the hot route goes first (its pattern overlaps no other)
    app.router.routes.insert(0, app.router.routes.pop())

    @app.get(
        "/v1/licenses/{license_id}",
        response_model=LicenseDetail,
        responses=responses(401, 403, 404, 503),
        tags=["licences"],
        summary="One licence with the surface fields the scope releases",
    )
    async def get_license(request: Request, c: CallerDep, license_id: LicenseId) -> LicenseDetail:
        row = _readable_row(request, c, license_id)
        scopes = c.principal.scopes
        ctx = _ctx(request)
        surface = await verified(request, c, row, lambda: ctx.directory.surface(row))
        released = views.release(row.license_type_code, surface, views.party_of(row.holder_kind, row.holder_code),
                                 scopes)  # fmt: skip
        detail = LicenseDetail(
            **summary(row, scopes.personal), key_id=row.key_id, surface=released.surface,
            withheld_fields=released.withheld, masked=released.masked,
        )  # fmt: skip
        await record(
            request, c, "read", subject=row.license_id, fields=sorted(released.surface),
            detail={"withheld": released.withheld, "masked": released.masked},
        )  # fmt: skip
        return detail

    @app.get(
        "/v1/licenses/{license_id}/file",
        response_class=Response,
        responses={
            200: {
                "description": (
                    "The licence file (PDF, or the sealed JSON document when no PDF is rendered yet). A caller "
                    "without `personal:read` or without every surface field gets a masked copy (副本) instead: "
                    "the fields it may see, masked, marked as a copy and naming the original's id, version "
                    "and verification link; a copy carries no seal."
                ),
                "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}},
                            "application/json": {"schema": {"type": "object"}}},
            },
            **responses(401, 403, 404, 503),
        },
        tags=["licences"],
        summary="The licence file, or its masked copy (副本)",
    )  # fmt: skip
    async def get_license_file(request: Request, c: CallerDep, license_id: LicenseId) -> Response:
        row = _readable_row(request, c, license_id)
        require(c, "licenses:file")
        ctx = _ctx(request)
        scopes = c.principal.scopes
        document = await verified(request, c, row, lambda: ctx.directory.document(row))
        released, holder_name, holder_code = views.release_document(document, scopes)
        with ctx.sessions() as session:
            if released.complete:
                f = await verified(request, c, row, lambda: ctx.directory.file(session, row))
                content, media_type, filename = f.content, f.media_type, f.filename
            elif ctx.directory.has_pdf(session, row):
                content = render_copy_pdf(document, holder_name=holder_name, holder_code=holder_code,
                                          surface=released.surface)  # fmt: skip
                media_type, filename = "application/pdf", f"{row.license_id}-v{row.version}-copy.pdf"
            else:
                copy = copy_document(
                    document, content_sha256=row.content_sha256, holder_name=holder_name, holder_code=holder_code,
                    surface=released.surface, withheld=released.withheld,
                )  # fmt: skip
                content = json.dumps(copy, ensure_ascii=False, sort_keys=True).encode()
                media_type, filename = "application/json", f"{row.license_id}-v{row.version}-copy.json"
        kind = "original" if released.complete else "copy"
        await record(
            request, c, "file", subject=row.license_id,
            fields=["file"] if released.complete else sorted(released.surface),
            detail={"media_type": media_type, "rendering": kind, "withheld": released.withheld,
                    "masked": released.masked},
        )  # fmt: skip
        return Response(
            content, media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store",
                     "X-Hub-Rendering": kind},
        )  # fmt: skip

    @app.get(
        "/v1/licenses/{license_id}/lineage",
        response_model=LicenseLineage,
        responses=responses(401, 403, 404, 503),
        tags=["licences"],
        summary="Where the licence's fields came from (数据血缘), personal values masked",
    )
    async def get_license_lineage(
        request: Request,
        c: CallerDep,
        license_id: LicenseId,
        field: Annotated[
            str | None, Query(max_length=80, description="Only this field (holder_name, surface.address, ...)")
        ] = None,
    ) -> LicenseLineage:
        require(c, LINEAGE_READ)
        row = _readable_row(request, c, license_id)
        ctx = _ctx(request)
        with ctx.sessions() as session:
            recorded = {v.version: v.content_sha256 for v in license_versions(session, row.license_id)}

            def read_version(version: int) -> LicenseDocument:
                if version == row.version:
                    return ctx.directory.document(row)
                return ctx.directory.version_document(row, version, recorded[version])

            try:
                out = await verified(
                    request, c, row,
                    lambda: license_lineage(session, row.license_id, row.version, read_version, field=field),
                )  # fmt: skip
            except LineageNotFound as exc:
                raise not_found(str(exc)) from None
        await record(request, c, "read", subject=row.license_id, fields=["lineage", *sorted(out["fields"])])
        return LicenseLineage.model_validate(out)

    verify_body = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/VerifyById"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    }

    @app.post(
        "/v1/licenses/verify",
        response_model=Verification,
        responses=responses(400, 401, 403, 404, 415, 503),
        openapi_extra=verify_body,
        tags=["licences"],
        summary="Verify a licence by id or an uploaded licence file (证照核验)",
    )
    async def verify(request: Request, c: CallerDep) -> Verification:
        require(c, "licenses:verify")
        ctx = _ctx(request)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=5)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ProblemError(400, "file_missing", "No file", "send the licence file in the form field 'file'")
            data = await upload.read(MAX_UPLOAD + 1)
            if len(data) > MAX_UPLOAD:
                raise ProblemError(400, "file_too_large", "File too large", f"at most {MAX_UPLOAD} bytes")
            with ctx.sessions() as session:
                result = ctx.directory.verify_bytes(session, data)
            how = "file"
        elif ctype == "application/json":
            try:
                body = VerifyById.model_validate_json(await request.body())
            except ValidationError as exc:
                raise RequestValidationError(exc.errors(include_input=False)) from exc
            row = _readable_row(request, c, body.license_id)
            with ctx.sessions() as session:
                result = ctx.directory.verify_current(session, row)
            how = "id"
        else:
            raise ProblemError(415, "unsupported_media_type", "Unsupported media type",
                               "send application/json {license_id} or multipart/form-data with a file")  # fmt: skip
        named = result.license_id and _id_type(result.license_id)
        if named and not c.principal.scopes.can_read_type(named):
            # the presented file names its type: verifying it needs that type's scope like reading it
            raise missing_scope(f"licenses:read:{named}")
        out = Verification.model_validate(result.to_dict())
        await record(
            request, c, "verify", subject=out.license_id, fields=["verification"],
            outcome="ok" if out.ok else "not_ok", detail={"by": how, "problems": out.problems[:10]},
        )  # fmt: skip
        return out

    @app.get(
        "/v1/holders/{code}/recognitions",
        response_model=RecognitionPage,
        responses=responses(401, 403, 503),
        tags=["recognition"],
        summary="Every current licence and approval result of a holder, across departments (跨部门结果互认)",
    )
    async def recognitions(
        request: Request,
        c: CallerDep,
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
        ctx = _ctx(request)
        items = []
        with ctx.sessions() as session:
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
                        type_name=row.license_type_name, number=row.license_number, issuer_code=row.issuer_code,
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
            next_offset=_next(offset, limit, len(rows)),
        )  # fmt: skip
        await record(
            request, c, "recognitions", subject=_audit_subject(resolved.canonical), fields=["metadata", "verification"],
            detail={"licenses": [i.license_id for i in items], "as_of": day.isoformat()},
        )  # fmt: skip
        return page

    def _sub_out(sub: Any, *, with_secret: bool = False) -> SubscriptionOut:
        created = sub.created_at if sub.created_at.tzinfo else sub.created_at.replace(tzinfo=dt.UTC)
        return SubscriptionOut(
            id=sub.id, name=sub.name, origin=sub.origin, event_types=list(sub.event_types),
            license_types=sub.license_types, regions=sub.regions, channel=sub.channel,
            url=redact_credentials(sub.target_url),  # rows stored before credentials were refused
            created_at=created, secret=sub.secret if with_secret else None,
        )  # fmt: skip

    @app.post(
        "/v1/subscriptions",
        response_model=SubscriptionOut,
        status_code=201,
        responses=responses(401, 403, 503),
        tags=["push"],
        summary="Subscribe to events (订阅); a webhook subscription's signing secret is returned once",
    )
    async def create_subscription(request: Request, c: CallerDep, body: SubscriptionIn) -> SubscriptionOut:
        require(c, "subscriptions:manage")
        event_types = [e.value for e in body.event_types]
        # every event type needs the scope its events are released under (licence type, identities:read)
        missing = c.principal.scopes.missing_for_subscription(event_types, body.license_types)
        if missing is not None:
            await record(request, c, "subscribe", subject=None, outcome="refused", detail={"missing_scope": missing})
            raise missing_scope(missing)
        ctx = _ctx(request)
        error: subs_mod.SubscriptionError | None = None
        with ctx.sessions() as session:
            try:
                sub = subs_mod.create(
                    session, name=body.name, event_types=event_types, url=str(body.url), channel=body.channel.value,
                    license_types=body.license_types, regions=body.regions, consumer_id=c.principal.consumer_id,
                )  # fmt: skip
                out = _sub_out(sub, with_secret=True)
                session.commit()
            except subs_mod.SubscriptionError as exc:
                error = exc
        if isinstance(error, subs_mod.DestinationNotAllowed):
            await record(request, c, "subscribe", subject=None, outcome="refused",
                         detail={"reason": "destination_not_allowed"})  # fmt: skip
            raise destination_not_allowed(str(error)) from error
        if error is not None:
            raise ProblemError(422, "invalid_subscription", "Invalid subscription", str(error)) from error
        await record(request, c, "subscribe", subject=out.id, detail={"event_types": out.event_types})
        return out

    @app.get("/v1/subscriptions", response_model=SubscriptionPage, responses=responses(401, 403, 503), tags=["push"])
    async def list_subscriptions(
        request: Request, c: CallerDep, limit: Limit = 50, offset: Offset = 0
    ) -> SubscriptionPage:
        require(c, "subscriptions:manage")
        ctx = _ctx(request)
        owner = None if c.principal.scopes.has("deliveries:admin") else c.principal.consumer_id
        with ctx.sessions() as session:
            rows = subs_mod.list_for(session, owner, limit=limit, offset=offset)
            items = [_sub_out(s) for s in rows]
        await record(request, c, "read", subject="subscriptions", detail={"count": len(items)})
        return SubscriptionPage(items=items, limit=limit, offset=offset, next_offset=_next(offset, limit, len(items)))

    @app.delete(
        "/v1/subscriptions/{subscription_id}",
        status_code=204,
        response_class=Response,
        responses=responses(401, 403, 404, 503),
        tags=["push"],
    )
    async def delete_subscription(
        request: Request, c: CallerDep, subscription_id: Annotated[str, Path(min_length=1, max_length=40)]
    ) -> Response:
        require(c, "subscriptions:manage")
        ctx = _ctx(request)
        owner = None if c.principal.scopes.has("deliveries:admin") else c.principal.consumer_id
        with ctx.sessions() as session:
            done = subs_mod.delete(session, subscription_id, owner)
            session.commit()
        if not done:
            raise not_found(f"subscription {trail.mask_param('subscription_id', subscription_id)}")
        await record(request, c, "unsubscribe", subject=subscription_id)
        return Response(status_code=204)

    @app.get(
        "/v1/deliveries",
        response_model=DeliveryPage,
        responses=responses(401, 403, 503),
        tags=["push"],
        summary="Deliveries of the caller's subscriptions, including those held back behind a dead letter",
    )
    async def list_deliveries(
        request: Request,
        c: CallerDep,
        status: DeliveryStatus | None = None,
        subscription_id: Annotated[str | None, Query(max_length=40)] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> DeliveryPage:
        require(c, "deliveries:read")
        ctx = _ctx(request)
        admin = c.principal.scopes.has("deliveries:admin")
        with ctx.sessions() as session:
            sub_ids: list[str] | None
            if admin:
                sub_ids = None
            else:
                sub_ids = [s.id for s in subs_mod.list_for(session, c.principal.consumer_id, limit=10_000, offset=0)]
            if subscription_id is not None:
                sub_ids = [subscription_id] if sub_ids is None or subscription_id in sub_ids else []
            views = delivery_mod.list_deliveries(
                session, subscription_ids=sub_ids, status=status.value if status else None, limit=limit, offset=offset
            )
            items = [_delivery_out(v, full_error=admin) for v in views]
        await record(request, c, "read", subject="deliveries", detail={"count": len(items)})
        return DeliveryPage(items=items, limit=limit, offset=offset, next_offset=_next(offset, limit, len(items)))


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _delivery_out(v: delivery_mod.DeliveryView, *, full_error: bool) -> DeliveryOut:
    """A delivery as shown; its error in full only to operators (``deliveries:admin``), to a consumer
    only the receiver's answer or the class of failure (:func:`recognition.delivery.public_error`)."""
    d = v.delivery
    held = v.held_by is not None and d.status == delivery_mod.PENDING
    return DeliveryOut(
        id=d.id, subscription_id=d.subscription_id, event_id=d.event_id, event_type=d.event_type,
        idempotency_key=d.idempotency_key, status="held" if held else d.status, held_back=held,
        held_by=v.held_by if held else None, attempts=d.attempts,
        next_attempt_at=_utc(d.next_attempt_at) if d.status == delivery_mod.PENDING else None,
        last_error=d.last_error if full_error else delivery_mod.public_error(d.last_error),
        created_at=_utc(d.created_at) or d.created_at, delivered_at=_utc(d.delivered_at),
    )  # fmt: skip


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document without a database (for docs and clients)."""
    app = create_app(Settings(db_url="sqlite://"), directory=LicenseDirectory())
    return app.openapi()
