"""The identity review queue in the console (身份复核): data stewards decide, supervisors look.

- ``GET /console/review`` — the open items, the longest waiting first, with how long each has waited;
- ``GET /console/review/{id}`` — both sides, masked: the incoming record as the queue keeps it and the
  candidate identities, the record's licences, a merge waiting for a second steward, the decisions so
  far; for a steward the accept form (which candidate, a reason) and the reject form (a reason) of an
  open item, the split form (a reason) of a linked one;
- ``POST /console/review/{id}/accept``, ``…/reject`` and ``…/split`` — the decision through
  :mod:`recognition.identity_review`, the functions ``hub identity review`` and ``/v1/identity/review``
  call: the identity change, the decision and its events commit together, then the licences move to
  their right holder as new signed versions. The steward is ``console:<name>``; merging two persons
  needs a second steward (four eyes). Then back to the item, which says what was decided.

Signing in, roles (``review`` to look, ``review:decide`` to decide), CSRF tokens and the audit of every
answer, refusals included, are the console's (:mod:`recognition.routers.console`). A refused decision
shows the item again with why (a missing reason, the same steward approving a merge), audited as refused.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from recognition import identity_review as decisions
from recognition.console_accounts import SignedIn
from recognition.page_text import TEXT
from recognition.routers.console import _audited, _ctx, _form, _page, _refuse, _signed_in
from recognition.routers.identity_review import licence_service
from recognition.routers.pages import (
    CONSOLE_PREFIX,
    SECURITY_HEADERS,
    AuditUnavailable,
    audit_page,
    page_language,
    problem_page,
)

router = APIRouter(include_in_schema=False)
REVIEW = CONSOLE_PREFIX + "/review"
VERBS = ("accept", "reject", "split")


def _number(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) <= 18 else None


def _age(lang: str) -> Any:
    words = TEXT[lang]["co_rv_age"]

    def shown(seconds: int) -> str:
        days, rest = divmod(int(seconds), 86_400)
        return words.format(d=days, h=rest // 3600, m=rest % 3600 // 60)

    return shown


@router.get(REVIEW, response_class=HTMLResponse)
async def review_list(request: Request) -> Response:
    action = "console_review_list"
    me = await _signed_in(request, action, "review")
    if isinstance(me, Response):
        return me
    with _ctx(request).sessions() as session:
        items = decisions.list_items(session, status="open", limit=200)
    page = _page(request, "console_review_list.html", me, items=items, age=_age(page_language(request)))
    return await _audited(request, page, action, me, subject="review", fields=["masked"],
                          detail={"reviews": [i["id"] for i in items]})  # fmt: skip


def _item_page(request: Request, me: SignedIn, shown: dict[str, Any], *, status: int = 200,
               done: str | None = None, error: str | None = None, reason: str = "") -> HTMLResponse:  # fmt: skip
    return _page(request, "console_review_item.html", me, status=status, item=shown, done=done, error=error,
                 reason=reason, age=_age(page_language(request)))  # fmt: skip


@router.get(REVIEW + "/{review_id}", response_class=HTMLResponse)
async def review_item(request: Request, review_id: str) -> Response:
    action = "console_review_item"
    me = await _signed_in(request, action, "review")
    if isinstance(me, Response):
        return me
    number = _number(review_id)
    try:
        with _ctx(request).sessions() as session:
            shown = decisions.show(session, number or 0, personal=False)
    except decisions.DecisionError:
        return await _refuse(request, 404, "review_not_found", action=action, consumer=me.actor)
    done = request.query_params.get("done")
    page = _item_page(request, me, shown, done=done if done in decisions.ACTIONS else None)
    return await _audited(request, page, action, me, subject=str(number), fields=["masked"],
                          detail={"review": number})  # fmt: skip


def _decide(request: Request, verb: str, number: int, actor: str, reason: str, candidate: str | None) -> Any:
    """The decision and its licence moves (blocking work: run off the event loop)."""
    ctx = _ctx(request)
    with ctx.sessions() as session:
        try:
            if verb == "accept":
                chosen = decisions.candidate_at(session, number, candidate)
                decision = decisions.accept(session, number, actor=actor, reason=reason, candidate=chosen)
            elif verb == "reject":
                decision = decisions.reject(session, number, actor=actor, reason=reason)
            else:
                decision = decisions.split(session, number, actor=actor, reason=reason)
            session.commit()
        except decisions.DecisionError as exc:
            session.rollback()
            return exc
    with ctx.sessions() as session:
        moved = {d.id: d for d in decisions.move_licences(session, licence_service(request))}
    return moved.get(decision.id, decision)


@router.post(REVIEW + "/{review_id}/{verb}", response_class=HTMLResponse)
async def review_decide(request: Request, review_id: str, verb: str) -> Response:
    """Accept, reject or split through the same functions as the CLI and the API."""
    action = f"console_review_{verb}" if verb in VERBS else "console_review_decide"
    me = await _signed_in(request, action, "review:decide")
    if isinstance(me, Response):
        return me
    form = await _form(request, action, me.csrf_token, me.actor)
    if isinstance(form, Response):
        return form
    number = _number(review_id)
    if number is None or verb not in VERBS:
        return await _refuse(request, 404, "review_not_found", action=action, consumer=me.actor)
    reason = str(form.get("reason") or "")[: decisions.MAX_REASON + 1]
    candidate = str(form.get("candidate") or "").strip()[:4] or None
    result = await run_in_threadpool(_decide, request, verb, number, me.actor, reason, candidate)
    lang = page_language(request)
    if isinstance(result, decisions.DecisionError):
        if result.code == "review_not_found":
            return await _refuse(request, 404, result.code, action=action, consumer=me.actor)
        with _ctx(request).sessions() as session:
            shown = decisions.show(session, number, personal=False)
        text = TEXT[lang]
        page = _item_page(request, me, shown, status=result.status, reason=reason,
                          error=text.get("co_rv_e_" + result.code, text["co_rv_refused"]))  # fmt: skip
        try:
            await audit_page(request, action, subject=str(number), outcome="refused", consumer=me.actor,
                             detail={"status": result.status, "code": result.code})  # fmt: skip
        except AuditUnavailable:
            return problem_page(503, lang, section=CONSOLE_PREFIX)
        return page
    answer = RedirectResponse(f"{REVIEW}/{number}?done={result.action}&lang={lang}", status_code=303,
                              headers=SECURITY_HEADERS)  # fmt: skip
    try:
        await audit_page(request, action, subject=str(number), consumer=me.actor, detail=result.audit_detail())
    except AuditUnavailable:
        return problem_page(503, lang, section=CONSOLE_PREFIX)
    return answer
