"""The mutual-recognition API (互认接口): the app's assembly.

``create_app(settings)`` builds the :class:`~recognition.dependencies.AppContext`, the middleware
(body limits, per-address gate, audit trail, metrics), the problem-details error handlers, and
includes one router per resource from :mod:`recognition.routers`: operations, holders, licences,
verification, subscriptions, deliveries, the cases and supervision resources, the stewards' identity
review queue, the API docs, and the public pages and the operator console. Every answer that releases
data is recorded in the audit log and committed before the answer is sent (group commit, see :mod:`recognition.audit`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub import sqlite_wal
from hub.db import make_engine, session_factory
from hub.settings import Settings, get_settings
from recognition import audit, trail
from recognition.audit_process import ProcessAuditWriter
from recognition.config import RecognitionSettings
from recognition.consumers import Principal
from recognition.dependencies import AppContext, AuditSink, Metrics, masked_path
from recognition.directory import LicenseDirectory
from recognition.gate import AccessGate, GateMiddleware
from recognition.problems import ProblemError, problem_response
from recognition.routers import (
    api_docs,
    cases,
    console,
    console_review,
    deliveries,
    holders,
    identity_review,
    licences,
    operations,
    pages,
    status,
    subscriptions,
    supervision,
    verification,
)

log = logging.getLogger(__name__)

API_TITLE = "Exchange hub: mutual-recognition API (跨部门结果互认)"


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

    ``fast_paths=False`` leaves every request to FastAPI's parsing (see
    :mod:`recognition.routers.holders_fast_path`).
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
    app.state.fast_paths = fast_paths  # the case timeline's fast path reads it (recognition.routers.cases)
    app.add_middleware(trail.BodyLimit, limit_for=config.body_limit)
    app.add_middleware(GateMiddleware, gate=ctx.gate)  # per-address limits before routing and authentication
    app.add_middleware(trail.AuditTrail, write=_trail_writer(ctx))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _install_error_handlers(app)
    app.include_router(operations.router)
    app.include_router(holders.router(fast_paths=fast_paths))
    # Starlette tries routes in order; the hot route goes first (its pattern overlaps no other)
    hot = next(r for r in app.router.routes if getattr(r, "path", None) == "/v1/holders/{code}/licenses")
    app.router.routes.remove(hot)
    app.router.routes.insert(0, hot)
    app.include_router(licences.router)
    app.include_router(verification.router)
    app.include_router(subscriptions.router)
    app.include_router(deliveries.router)
    app.include_router(api_docs.router)
    pages.install(app)  # the public verification pages, /verify
    app.include_router(supervision.router)  # before /v1/cases/{code}: /v1/cases/stats is not a code
    supervision.install(ctx)
    app.include_router(cases.router)
    app.include_router(identity_review.router)  # the stewards' review queue, /v1/identity/review
    app.include_router(status.router)  # the public case status pages, /status
    app.include_router(console.router)  # the operator console, /console
    app.include_router(console_review.router)  # its identity review queue, /console/review
    app.router.add_event_handler("startup", on_start)
    if not in_memory:
        # a SQLite file's log checkpointed by a thread, not inside a request's commit
        checkpointer = sqlite_wal.Checkpointer(engine)
        app.router.add_event_handler("startup", checkpointer.start)
        app.router.add_event_handler("shutdown", checkpointer.stop)
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
            exc.status, exc.code, exc.title, exc.detail, instance=masked_path(request),
            missing_scope=exc.missing_scope, headers=exc.headers,
        )  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the offending input is left out: it may be a resident id
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        setattr(request.state, trail.PROBLEM_CODE, "validation_error")
        return problem_response(
            422, "validation_error", "Invalid request", "the request does not match the API",
            instance=masked_path(request), errors=jsonable_encoder(errors),
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        code = codes.get(exc.status_code, f"http_{exc.status_code}")
        setattr(request.state, trail.PROBLEM_CODE, code)
        return problem_response(
            exc.status_code, code, str(exc.detail), instance=masked_path(request),
            headers=getattr(exc, "headers", None),
        )  # fmt: skip

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s: %s", masked_path(request), type(exc).__name__, exc_info=exc)
        return problem_response(500, "internal_error", "Internal error", instance=masked_path(request))


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document without a database (for docs and clients)."""
    app = create_app(Settings(db_url="sqlite://"), directory=LicenseDirectory())
    return app.openapi()
