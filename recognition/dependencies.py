"""What the API's routers share (接口依赖): the app's context, authentication, scopes, audit, sessions.

Every router takes these as FastAPI dependencies or helpers: the caller (``CallerDep``:
``Authorization: Bearer <key>``, its expiry, binding and rate checked by :mod:`recognition.gate`),
a database session per request (``SessionDep``), :func:`require` for a scope, :func:`record` for
the audit entry every released answer waits for, and :func:`verified` for a licence read that
checks its seal. :func:`recognition.app.create_app` builds the :class:`AppContext` and includes
the routers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Path, Query, Request
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from e_license_store import identifier as license_ids
from e_license_store.index import LicenseIndexRow
from e_license_store.verify import IntegrityFailure
from hub.killpoints import kill_point
from hub.masking import mask_code, scrub_text
from hub.settings import Settings
from recognition import audit, trail, views
from recognition.config import RecognitionSettings
from recognition.consumers import Principal, identify
from recognition.directory import LicenseDirectory, license_by_id_dbapi
from recognition.gate import AccessGate
from recognition.holders import ResolvedHolder, is_resident_id
from recognition.keys import parse_key
from recognition.problems import ProblemError, missing_scope, not_found, unauthorized
from recognition.schemas import HolderRef

log = logging.getLogger(__name__)
#: operator alerts (a failed seal check on read): route this logger to the operators' channel
alerts = logging.getLogger("hub.alerts")


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


def context(request: Request) -> AppContext:
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
    principal = context(request).principal(token.strip())
    if principal is None:
        raise unauthorized("the API key is unknown or revoked")
    await context(request).gate.admit(request.scope, principal)  # expiry, source binding, rate (recognition.gate)
    setattr(request.state, trail.CALLER, principal)
    purpose = request.headers.get("x-purpose")
    if purpose:
        if f"purpose:{purpose}" not in principal.scopes.scopes:
            raise missing_scope(f"purpose:{purpose}")
    else:
        purpose = principal.scopes.default_purpose
    return Caller(principal, purpose)


CallerDep = Annotated[Caller, Depends(caller)]


async def session(request: Request) -> AsyncIterator[Session]:
    """A session of the hub database for one request (closed, rolled back if uncommitted, after it)."""
    with context(request).sessions() as s:
        yield s


SessionDep = Annotated[Session, Depends(session)]


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


def masked_path(request: Request) -> str:
    """The request path with its parameters masked (a holder code may be a resident id)."""
    return trail.masked_path(request.scope)


def audit_subject(code: str) -> str:
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
    ctx = context(request)
    entry = audit.AuditRecord(
        consumer=c.principal.name if c else "anonymous",
        key_id=c.principal.key_id if c else None,
        action=action,
        resource=f"{request.method} {masked_path(request)}"[:300],
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
    # a client whose answer dies here asks again (an intake with its idempotency key): both are audited
    kill_point("api.audited")


HolderCode = Annotated[str, Path(min_length=1, max_length=64, description="Resident id or USCC, or a legacy code")]
LicenseId = Annotated[str, Path(min_length=1, max_length=64, description="Licence identifier")]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


def next_offset(offset: int, limit: int, got: int) -> int | None:
    return offset + limit if got == limit else None


def id_type(license_id: str) -> str | None:
    """The licence type a well-formed licence id names (its first part), else ``None``."""
    try:
        return license_ids.parse(license_id)[0]
    except license_ids.InvalidLicenseId:
        return None


def readable_row(request: Request, c: Caller, license_id: str) -> LicenseIndexRow:
    """The licence if it exists and the caller may read its type, else 404.

    A licence of a type outside the caller's scopes gets the same answer as no licence, so
    the answer never reveals whether it exists; a 403 comes only from what the id itself
    says (its type code), before any lookup.
    """
    scopes = c.principal.scopes
    if not scopes.can_read_any:
        raise missing_scope("licenses:read:*")
    named = id_type(license_id)
    if named is not None and not scopes.can_read_type(named):
        raise missing_scope(f"licenses:read:{named}")
    ctx = context(request)
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
        ctx = context(request)
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
