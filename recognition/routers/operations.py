"""Operations (运维): `/healthz` (public: the database answers) and `/metrics` (Prometheus, `metrics:read`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from recognition.dependencies import CallerDep, context, record, require
from recognition.problems import ProblemError, responses
from recognition.schemas import Health

router = APIRouter()


@router.get("/healthz", response_model=Health, tags=["operations"])
def healthz(request: Request) -> Health:
    try:
        with context(request).engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise ProblemError(503, "database_unavailable", "Database unavailable") from exc
    return Health(status="ok", database="ok")


METRICS_DOC = {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}, "description": "Metrics"}


@router.get(
    "/metrics",
    tags=["operations"],
    response_class=Response,
    responses={200: METRICS_DOC, **responses(401, 403)},
    summary="Prometheus metrics (scope metrics:read)",
)
async def metrics(request: Request, c: CallerDep) -> Response:
    require(c, "metrics:read")
    body = generate_latest(context(request).metrics.registry)
    await record(request, c, "read", subject="metrics")
    return Response(body, media_type=CONTENT_TYPE_LATEST)
