"""Errors as RFC 9457 problem details (问题详情) with a stable ``code``."""

from __future__ import annotations

import math
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

PROBLEM_TYPE_BASE = "https://hub.example.gov.cn/problems/"
MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is stable and meant for programs."""

    type: str = Field(description="URI naming the problem type")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str = Field(description="Stable machine-readable code, e.g. missing_scope")
    missing_scope: str | None = Field(default=None, description="The scope a 403 lacked")
    errors: list[dict[str, Any]] | None = Field(default=None, description="Field errors of a 422")


class ProblemError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        missing_scope: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.missing_scope = missing_scope
        self.headers = headers


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    missing_scope: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=PROBLEM_TYPE_BASE + code,
        title=title,
        status=status,
        detail=detail,
        instance=instance,
        code=code,
        missing_scope=missing_scope,
        errors=errors,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "unauthorized", "Authentication required", detail, headers={"WWW-Authenticate": "Bearer"})


def missing_scope(scope: str) -> ProblemError:
    return ProblemError(
        403, "missing_scope", "Scope missing", f"this key lacks the scope {scope!r}", missing_scope=scope
    )


def destination_not_allowed(detail: str) -> ProblemError:
    """A subscription URL no destination allowed for the consumer covers (operators allow them)."""
    return ProblemError(
        403, "destination_not_allowed", "Destination not allowed",
        f"{detail}; an operator allows destinations with `hub consumers allow-destination`",
    )  # fmt: skip


def not_found(what: str) -> ProblemError:
    return ProblemError(404, "not_found", "Not found", f"{what} not found")


def rate_limited(retry_after: float, detail: str) -> ProblemError:
    """429 with ``Retry-After`` in whole seconds (at least 1)."""
    seconds = max(1, math.ceil(retry_after))
    return ProblemError(
        429, "rate_limited", "Too many requests", f"{detail}; retry after {seconds} s",
        headers={"Retry-After": str(seconds)},
    )  # fmt: skip


def rate_limit_unavailable() -> ProblemError:
    return ProblemError(
        503, "rate_limit_unavailable", "Rate limiting unavailable", "the request could not be counted; retry shortly",
        headers={"Retry-After": "1"},
    )  # fmt: skip


def key_expired() -> ProblemError:
    return ProblemError(
        401, "key_expired", "API key expired", "the API key has expired; ask the hub's operators for a new one",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )  # fmt: skip


def source_not_allowed() -> ProblemError:
    return ProblemError(
        403, "source_not_allowed", "Source address not allowed", "the API key may not be used from this address"
    )


#: titles of the refusals of a steward's review decision (:class:`recognition.identity_review.DecisionError`)
REVIEW_TITLES = {
    "review_not_found": "Not found",
    "review_not_open": "Already decided",
    "not_a_candidate": "Not a candidate of this item",
    "source_deleted_item": "Record deleted at its department",
    "candidate_unavailable": "Candidate identity unavailable",
    "reason_required": "A reason is required",
    "reason_too_long": "Reason too long",
    "second_steward_required": "A second steward must approve",
    "approval_differs": "Approval differs from the request",
    "merge_refused": "Merge refused",
    "nothing_to_split": "Nothing to split",
    "split_refused": "Split refused",
}


def review_refused(status: int, code: str, detail: str) -> ProblemError:
    """A steward's decision refused, with its stable code."""
    return ProblemError(status, code, REVIEW_TITLES.get(code, "Decision refused"), detail)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problems an operation can return (422 always: FastAPI's own
    validation-error schema would otherwise be documented instead of the problem details actually sent; 429
    always: every request is counted, see recognition.throttle)."""
    statuses = tuple(sorted({*statuses, 422, 429}))
    titles = {
        400: "Bad request",
        401: "No or invalid API key",
        403: "The key lacks a scope, or may not be used from this address",
        404: "Not found",
        409: "Conflict",
        415: "Unsupported media type",
        422: "Invalid request (problem details with field errors)",
        429: "Too many requests (see Retry-After)",
        503: "Audit log unavailable",
    }
    return {
        s: {
            "model": Problem,
            "description": titles.get(s, "Problem"),
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for s in statuses
    }
