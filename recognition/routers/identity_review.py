"""``/v1/identity/review``: the data stewards' review queue (人工复核) for programs, scope ``identity:review``.

- ``GET /v1/identity/review?status=open&limit=&offset=`` — items oldest first, each with its age;
- ``GET /v1/identity/review/{id}`` — both sides: the incoming record (as the queue keeps it, masked) and
  the candidate identities (person data masked unless the key also has ``personal:read``), the record's
  licences, a merge waiting for a second steward, and the decisions so far;
- ``POST /v1/identity/review/{id}/accept`` — ``{"reason", "candidate"?}``: link to a candidate, or request /
  approve a merge of two persons (a different consumer must approve: four eyes);
- ``POST /v1/identity/review/{id}/reject`` and ``…/split`` — ``{"reason"}``.

A decision runs :mod:`recognition.identity_review` (the functions ``hub identity review`` and the console
call): the identity change, the decision and its outbox events commit together, then the licences move
to their right holder as new signed versions. The steward is the consumer (``consumer:<name>``). Every
answer is audited (action ``identity_review``) with the decision and its reason scrubbed; refusals are
problem details with a stable code (:data:`recognition.problems.REVIEW_TITLES`), audited by the trail.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from e_license_store.service import LicenseService, default_service
from recognition import identity_review as decisions
from recognition.dependencies import CallerDep, Limit, Offset, SessionDep, context, next_offset, record, require
from recognition.problems import responses, review_refused
from recognition.scopes import IDENTITY_REVIEW

router = APIRouter(prefix="/v1/identity/review", tags=["identity review"])
ReviewId = Annotated[int, Path(ge=1, le=2**62, description="The review item")]
ACTION = "identity_review"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReviewSummaryOut(_Out):
    id: int
    status: str = Field(description="open, linked or rejected")
    entity_kind: str
    department: str
    dataset: str
    candidate: str | None = Field(description="The best candidate's code (a person's masked without personal:read)")
    match_probability: float | None
    created_at: str
    age_seconds: int = Field(description="How long the item has waited")


class ReviewListOut(_Out):
    items: list[ReviewSummaryOut]
    limit: int
    offset: int
    next_offset: int | None


class LicenceBriefOut(_Out):
    license_id: str
    type_code: str
    status: str
    version: int
    holder: str | None


class IncomingOut(_Out):
    source_key: str
    run_id: str | None
    linked_to: str | None = Field(description="The identity the record belongs to now, if any")
    details: dict[str, Any] = Field(description="The record as the queue keeps it: personal data masked")
    licences: list[LicenceBriefOut]


class CandidateOut(_Out):
    code: str | None
    match_probability: float | None
    found: bool
    provisional: bool
    merged_into: str | None
    name: str | None = None
    legal_rep_name: str | None = Field(
        default=None, description="An enterprise's legal representative (masked without personal:read)"
    )
    birth_date: str | None = None
    address: str | None = None
    sex: str | None = None
    region_code: str | None = None
    licences: int


class PendingMergeOut(_Out):
    decision_id: int
    requested_by: str
    from_code: str | None
    into_code: str | None
    requested_at: str


class DecisionLogOut(_Out):
    decision_id: int
    decision: str
    actor: str
    reason: str
    decided_at: str
    licences: list[str]


class ReviewItemOut(ReviewSummaryOut):
    decided_at: str | None
    decided_by: str | None
    incoming: IncomingOut
    candidates: list[CandidateOut]
    pending_merge: PendingMergeOut | None
    decisions: list[DecisionLogOut]


class MovedLicenceOut(_Out):
    license_id: str
    holder: str | None = Field(description="The holder it moves to")
    version: int | None = Field(description="The new signed version")
    skipped: str | None = Field(description="Why it was not moved (revoked, moved elsewhere meanwhile)")


class DecisionOut(_Out):
    decision_id: int
    review_id: int
    decision: str = Field(description="linked, rejected, merge_requested, merged or split")
    status: str
    awaiting_second_steward: bool
    from_code: str | None
    into_code: str | None
    actor: str
    reason: str
    licences: list[MovedLicenceOut]


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=decisions.MAX_REASON, description="Why (required)")


class AcceptIn(ReasonIn):
    candidate: str | None = Field(
        default=None, max_length=40, description="The candidate identity's code (default: the best)"
    )


def _personal(c: Any) -> bool:
    return bool(c.principal.scopes.personal)


def licence_service(request: Request) -> LicenseService:
    """The e-licence service on the hub's store and keys, opened once per app (the console's decisions too)."""
    found: LicenseService | None = getattr(request.app.state, "review_licence_service", None)
    if found is None:
        found = default_service()
        request.app.state.review_licence_service = found
    return found


@router.get("", response_model=ReviewListOut, responses=responses(401, 403, 503),
            summary="Review items oldest first, with their age (scope identity:review)")  # fmt: skip
async def list_reviews(
    request: Request,
    c: CallerDep,
    s: SessionDep,
    status: Annotated[Literal["open", "linked", "rejected", "all"], Query()] = "open",
    limit: Limit = 50,
    offset: Offset = 0,
) -> ReviewListOut:
    require(c, IDENTITY_REVIEW)
    rows = decisions.list_items(s, status=None if status == "all" else status, limit=limit, offset=offset,
                                personal=_personal(c))  # fmt: skip
    out = ReviewListOut(items=[ReviewSummaryOut(**r) for r in rows], limit=limit, offset=offset,
                        next_offset=next_offset(offset, limit, len(rows)))  # fmt: skip
    await record(request, c, ACTION, subject=status, fields=["review_list"],
                 detail={"reviews": [r["id"] for r in rows]})  # fmt: skip
    return out


@router.get("/{review_id}", response_model=ReviewItemOut, responses=responses(401, 403, 404, 503),
            summary="Both sides of a review item (person data masked without personal:read)")  # fmt: skip
async def show_review(request: Request, c: CallerDep, s: SessionDep, review_id: ReviewId) -> ReviewItemOut:
    require(c, IDENTITY_REVIEW)
    personal = _personal(c)
    try:
        shown = decisions.show(s, review_id, personal=personal)
    except decisions.DecisionError as exc:
        raise review_refused(exc.status, exc.code, exc.message) from None
    out = ReviewItemOut(**shown)
    await record(request, c, ACTION, subject=str(review_id), fields=["personal" if personal else "masked"],
                 detail={"review": review_id})  # fmt: skip
    return out


def _decide(request: Request, s: Session, command: str, review_id: int, actor: str, **kwargs: Any) -> dict[str, Any]:
    act = {"accept": decisions.accept, "reject": decisions.reject, "split": decisions.split}[command]
    try:
        decision = act(s, review_id, actor=actor, **kwargs)
        s.commit()
    except decisions.DecisionError as exc:
        s.rollback()
        raise review_refused(exc.status, exc.code, exc.message) from None
    with context(request).sessions() as fresh:
        moved = {d.id: d for d in decisions.move_licences(fresh, licence_service(request))}
    done = moved.get(decision.id, decision)
    return {"decision": done, "audit": done.audit_detail()}


async def _decision(request: Request, c: Any, s: Session, command: str, review_id: int, **kwargs: Any) -> DecisionOut:
    require(c, IDENTITY_REVIEW)
    actor = f"consumer:{c.principal.name}"
    result = await run_in_threadpool(_decide, request, s, command, review_id, actor, **kwargs)
    decision: decisions.Decision = result["decision"]
    await record(request, c, ACTION, subject=str(review_id), fields=["decision"], detail=result["audit"])
    return DecisionOut(**decision.shown(personal=_personal(c)))


_DECISION_RESPONSES = responses(401, 403, 404, 409, 503)


@router.post("/{review_id}/accept", response_model=DecisionOut, responses=_DECISION_RESPONSES,
             summary="Link to a candidate, or request / approve a merge of two persons (four eyes)")  # fmt: skip
async def accept(request: Request, c: CallerDep, s: SessionDep, review_id: ReviewId, body: AcceptIn) -> DecisionOut:
    return await _decision(request, c, s, "accept", review_id, reason=body.reason, candidate=body.candidate)


@router.post("/{review_id}/reject", response_model=DecisionOut, responses=_DECISION_RESPONSES,
             summary="Different persons: the record keeps its own identity")  # fmt: skip
async def reject(request: Request, c: CallerDep, s: SessionDep, review_id: ReviewId, body: ReasonIn) -> DecisionOut:
    return await _decision(request, c, s, "reject", review_id, reason=body.reason)


@router.post("/{review_id}/split", response_model=DecisionOut, responses=_DECISION_RESPONSES,
             summary="Undo the item's link or merge by a later decision; its licences move back")  # fmt: skip
async def split(request: Request, c: CallerDep, s: SessionDep, review_id: ReviewId, body: ReasonIn) -> DecisionOut:
    return await _decision(request, c, s, "split", review_id, reason=body.reason)
