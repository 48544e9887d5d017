"""Data stewards' decisions on the identity review queue (人工复核决定), and the licences that follow.

The CLI (``hub identity review``), the API (``/v1/identity/review``) and the console call these
functions; each decision spans identity and licences, so it lives here, above both rooms:

* ``accept`` links the incoming record to one of its candidates (link, golden record recomputed,
  ``identity.merged`` for the record). When the record already belongs to another identity, accepting
  means merging two existing persons: the first steward's accept records a ``merge_requested``
  decision, and only a *different* steward's accept executes it (四眼原则, four eyes) through
  :func:`identity.merge.merge` — the same steward twice is refused (``second_steward_required``);
* ``reject`` closes the item: the record keeps its own identity (and its licences their holder);
* ``split`` undoes the item's link or merge by a later decision (:func:`identity.merge.unlink` or
  :func:`identity.merge.split`, ``identity.split``), nothing deleted.

Every decision is a row of :class:`recognition.tables.ReviewDecision` with who and why (a reason is
required) and the licences it moves: ``accept`` moves the record's own licences (or, for a merge, every
licence of the merged-away identity) to the identity it joins, ``split`` moves them back. The identity
change, the decision, its outbox events and (from the CLI) its audit entry commit in the caller's
transaction; then :func:`move_licences` amends each licence through the e-licence service — a new
signed version and a ``license.amended`` event each. A crash between the two leaves the decision with
``moved_at`` unset; the next ``move_licences`` (every decision runs it) finishes it, and a move whose
licence changed holder meanwhile is skipped and says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from e_license_store.index import get_license, licenses_by_holder, licenses_of_source
from e_license_store.service import InvalidTransition, LicenseNotFound, LicenseService
from hub.masking import Party, mask_code, mask_fields, scrub_text
from hub.models import utcnow
from hub.outbox import emit
from hub.pseudonyms import opaque_ref
from hub.regions import holder_region
from identifiers.normalize import normalize
from identity import matching_review as queue
from identity.matching_tables import LINKED, OPEN, RELINK, SOURCE_DELETED, IdentityReviewQueue
from identity.merge import MergeError, merge, unlink
from identity.merge import split as split_merge
from identity.tables import PERSON, IdentityEnterprise, IdentityPerson
from mappings.canonical.models import personal_kinds
from recognition.tables import ReviewDecision

#: licence statuses a licence can still be moved (amended) from
AMENDABLE = ("valid", "suspended")
MAX_REASON = 2000
LINKED_ACTION, REJECTED_ACTION, SPLIT_ACTION = "linked", "rejected", "split"
MERGE_REQUESTED, MERGED = "merge_requested", "merged"
ACTIONS = (LINKED_ACTION, REJECTED_ACTION, MERGE_REQUESTED, MERGED, SPLIT_ACTION)


class DecisionError(Exception):
    """A decision refused, with the HTTP status and stable code the API answers with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Decision:
    """What a decision did (its row, the item's status after it)."""

    id: int
    review_id: int
    action: str
    status: str
    entity_kind: str
    from_code: str | None
    into_code: str | None
    actor: str
    reason: str
    moves: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.action == MERGE_REQUESTED

    def shown(self, personal: bool = False) -> dict[str, Any]:
        """The decision as the CLI and API answer it (person codes masked unless ``personal``)."""
        code = _code_shower(self.entity_kind, personal)
        return {
            "decision_id": self.id,
            "review_id": self.review_id,
            "decision": self.action,
            "status": self.status,
            "awaiting_second_steward": self.pending,
            "from_code": code(self.from_code),
            "into_code": code(self.into_code),
            "actor": self.actor,
            "reason": self.reason if personal else scrub_text(self.reason),
            "licences": [
                {
                    "license_id": m["license_id"],
                    "holder": code(m["to_holder"]),
                    "version": m.get("version"),
                    "skipped": m.get("skipped"),
                }
                for m in self.moves
            ],
        }

    def audit_detail(self) -> dict[str, Any]:
        """What the audit log keeps of it: ids, the decision, the reason scrubbed; no personal data."""
        return {
            "review": self.review_id, "decision_id": self.id, "decision": self.action, "status": self.status,
            "licences": [m["license_id"] for m in self.moves], "reason": scrub_text(self.reason)[:500],
        }  # fmt: skip


def _code_shower(entity_kind: str, personal: bool) -> Callable[[str | None], str | None]:
    def show(code: str | None) -> str | None:
        if code is None or personal or entity_kind != PERSON:
            return code
        return mask_code(code, person=True)

    return show


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise DecisionError(422, "reason_required", "every decision needs a reason")
    if len(text) > MAX_REASON:
        raise DecisionError(422, "reason_too_long", f"a reason has at most {MAX_REASON} characters")
    return text


def _item(session: Session, review_id: int) -> IdentityReviewQueue:
    item = session.get(IdentityReviewQueue, review_id)
    if item is None:
        raise DecisionError(404, "review_not_found", f"no review item {review_id}")
    return item


def _open(item: IdentityReviewQueue) -> None:
    if item.status != OPEN:
        raise DecisionError(409, "review_not_open", f"review {item.id} is {item.status}; split it to undo")


def _identity(session: Session, kind: str, code: str) -> IdentityPerson | IdentityEnterprise | None:
    found: IdentityPerson | IdentityEnterprise | None = (
        session.get(IdentityPerson, code) if kind == PERSON else session.get(IdentityEnterprise, code)
    )
    return found


def decisions_of(session: Session, review_id: int) -> list[ReviewDecision]:
    stmt = select(ReviewDecision).where(ReviewDecision.review_id == review_id).order_by(ReviewDecision.id)
    return list(session.scalars(stmt))


def _answered(rows: list[ReviewDecision]) -> set[int]:
    return {r.refers_to for r in rows if r.refers_to is not None}


def pending_merge(session: Session, review_id: int) -> ReviewDecision | None:
    """The item's merge request still waiting for a second steward, if any."""
    rows = decisions_of(session, review_id)
    answered = _answered(rows)
    waiting = [r for r in rows if r.action == MERGE_REQUESTED and r.id not in answered]
    return waiting[-1] if waiting else None


def _record(
    session: Session, item: IdentityReviewQueue, action: str, *, actor: str, reason: str,
    from_code: str | None = None, into_code: str | None = None, refers_to: int | None = None,
    merge_id: int | None = None, moves: list[dict[str, Any]] | None = None,
) -> Decision:  # fmt: skip
    row = ReviewDecision(
        review_id=item.id, action=action, entity_kind=item.entity_kind, from_code=from_code, into_code=into_code,
        actor=actor, reason=reason, refers_to=refers_to, merge_id=merge_id, moves=moves or [],
        decided_at=utcnow(), moved_at=None if moves else utcnow(),
    )  # fmt: skip
    session.add(row)
    session.flush()
    return Decision(row.id, item.id, action, item.status, item.entity_kind, from_code, into_code, actor, reason,
                    list(row.moves))  # fmt: skip


def _moves(rows: list[Any], into: str) -> list[dict[str, Any]]:
    return [
        {"license_id": r.license_id, "from_holder": r.holder_code, "to_holder": into, **_renumber(r, into)}
        for r in rows
        if r.holder_code != into and r.status in AMENDABLE
    ]


def _renumber(row: Any, into: str) -> dict[str, str]:
    """A licence numbered by its holder's damaged code (a business licence by a USCC with a wrong check
    character) takes the number of the identity it moves to: ``from_number``/``to_number`` of the move."""
    if row.license_number != row.holder_code or normalize(row.holder_code)["valid"]:
        return {}
    return {"from_number": row.license_number, "to_number": into}


def candidate_at(session: Session, review_id: int, position: str | None) -> str | None:
    """The code of the item's candidate at ``position`` (1: the best): forms name candidates by
    position, so no code travels in them; ``None`` for none given, ``""`` for one the item lacks."""
    if position is None:
        return None
    item = session.get(IdentityReviewQueue, review_id)
    codes = queue.candidate_codes(item) if item is not None else []
    index = int(position) if position.isascii() and position.isdigit() and len(position) < 3 else 0
    return codes[index - 1] if 1 <= index <= len(codes) else ""


def accept(
    session: Session, review_id: int, *, actor: str, reason: str | None, candidate: str | None = None
) -> Decision:
    """Link the item's record to ``candidate`` (default: the best), or — when the record already belongs
    to another identity — request (first steward) or approve (second steward) merging the two."""
    why = _reason(reason)
    item = _item(session, review_id)
    _open(item)
    if item.reason == SOURCE_DELETED:
        # the department no longer holds the record: linking it again would rest an identity on a row
        # that is gone; the steward closes the item with reject (the link stays ended)
        detail = f"review {review_id} is a record deleted at its department: close it with reject"
        raise DecisionError(409, "source_deleted_item", detail)
    into = item.candidate_code if candidate is None else candidate
    if into not in queue.candidate_codes(item):
        raise DecisionError(422, "not_a_candidate", f"review {review_id} does not propose that identity")
    target = _identity(session, item.entity_kind, into)
    if target is None or target.merged_into is not None:
        raise DecisionError(409, "candidate_unavailable", "the candidate identity is gone or was merged away")
    link = queue.active_link(session, item.department, item.dataset, item.incoming_key)
    current = link.canonical_code if link is not None else None
    if link is not None and current != into and item.reason == RELINK:
        # a retrained model's proposal: this one record's link moves; both identities stay whole
        unlink(session, item.department, item.dataset, item.incoming_key, actor=actor, reason=why)
        link = None
    if link is not None and current != into:
        return _merge(session, item, link.canonical_code, into, actor=actor, reason=why)
    queue.decide(session, item.id, link=True, actor=actor, note=why, into=into, link_record=link is None)
    moves = _moves(licenses_of_source(session, item.department, item.dataset, item.incoming_key), into)
    decision = _record(session, item, LINKED_ACTION, actor=actor, reason=why,
                       from_code=current, into_code=into, moves=moves)  # fmt: skip
    source = {"department": item.department, "dataset": item.dataset, "source_key": item.incoming_key}
    emit(
        session, "identity.merged", opaque_ref(into),
        {"entity_kind": item.entity_kind, "canonical_code": into, "source_record": source, "actor": actor,
         "reason": why, "review": item.id},
        f"identity.merged:review-decision:{decision.id}",
        holder_code=into, region_code=holder_region(item.entity_kind, into),
    )  # fmt: skip
    return decision


def _merge(
    session: Session, item: IdentityReviewQueue, current: str, into: str, *, actor: str, reason: str
) -> Decision:
    pending = pending_merge(session, item.id)
    if pending is None:
        queue.note_event(session, item.id, "merge_asked", actor=actor, note=reason)
        return _record(session, item, MERGE_REQUESTED, actor=actor, reason=reason, from_code=current, into_code=into)
    if pending.actor == actor:
        raise DecisionError(403, "second_steward_required",
                            "merging two persons needs a second steward: another steward must approve")  # fmt: skip
    if pending.into_code != into or pending.from_code != current:
        raise DecisionError(409, "approval_differs", "the approval names other identities than the request")
    moves = _moves(licenses_by_holder(session, current, limit=10_000), into)
    try:
        record = merge(session, item.entity_kind, current, into, actor=actor, reason=reason)
    except MergeError as exc:
        raise DecisionError(409, "merge_refused", str(exc)) from None
    queue.decide(session, item.id, link=True, actor=actor, note=reason, into=into, link_record=False)
    return _record(session, item, MERGED, actor=actor, reason=reason, from_code=current, into_code=into,
                   refers_to=pending.id, merge_id=record.id, moves=moves)  # fmt: skip


def reject(session: Session, review_id: int, *, actor: str, reason: str | None) -> Decision:
    """Different people: the record keeps its own identity (a waiting merge request is answered no). On an
    item of a record deleted at its department it closes the item: the link stays ended, the licences
    named in it stay as they are (revoking is the issuing department's decision)."""
    why = _reason(reason)
    item = _item(session, review_id)
    _open(item)
    pending = pending_merge(session, item.id)
    queue.decide(session, item.id, link=False, actor=actor, note=why)
    return _record(session, item, REJECTED_ACTION, actor=actor, reason=why,
                   refers_to=pending.id if pending else None)  # fmt: skip


def split(session: Session, review_id: int, *, actor: str, reason: str | None) -> Decision:
    """Undo the item's link or merge by a later decision; its licences go back to where they were."""
    why = _reason(reason)
    item = _item(session, review_id)
    if item.status != LINKED:
        raise DecisionError(409, "nothing_to_split", f"review {review_id} is {item.status}: there is no link to undo")
    rows = decisions_of(session, item.id)
    answered = _answered(rows)
    done = [r for r in rows if r.action in (LINKED_ACTION, MERGED) and r.id not in answered]
    last = done[-1] if done else None
    try:
        if last is not None and last.action == MERGED and last.merge_id is not None:
            split_merge(session, last.merge_id, actor=actor, reason=why)
            queue.separate(session, item.id, actor=actor, note=why, unlink_record=False)
        else:
            queue.separate(session, item.id, actor=actor, note=why)
    except MergeError as exc:
        raise DecisionError(409, "split_refused", str(exc)) from None
    back = [
        {
            "license_id": m["license_id"],
            "from_holder": m["to_holder"],
            "to_holder": m["from_holder"],
            **({"from_number": m["to_number"], "to_number": m["from_number"]} if "to_number" in m else {}),
        }
        for m in (last.moves if last else [])
        if not m.get("skipped")
    ]
    return _record(session, item, SPLIT_ACTION, actor=actor, reason=why,
                   from_code=last.into_code if last else None, into_code=last.from_code if last else None,
                   refers_to=last.id if last else None, merge_id=last.merge_id if last else None,
                   moves=back)  # fmt: skip


def move_licences(session: Session, service: LicenseService) -> list[Decision]:
    """Amend every licence the decisions not yet finished move (a new signed version each), and mark
    them finished; returns those decisions. Safe to run again: a done move is not done twice."""
    finished: list[Decision] = []
    rows = session.scalars(select(ReviewDecision).where(ReviewDecision.moved_at.is_(None)).order_by(ReviewDecision.id))
    for row in list(rows):
        moves = [dict(m) for m in row.moves]
        for move in moves:
            if move.get("version") is None and not move.get("skipped"):
                move.update(_move_one(session, service, move, row))
        row.moves = moves
        row.moved_at = utcnow()
        session.commit()
        item = session.get(IdentityReviewQueue, row.review_id)
        finished.append(Decision(row.id, row.review_id, row.action, item.status if item else "", row.entity_kind,
                                 row.from_code, row.into_code, row.actor, row.reason, moves))  # fmt: skip
    return finished


def _move_one(session: Session, service: LicenseService, move: dict[str, Any], row: ReviewDecision) -> dict[str, Any]:
    current = get_license(session, move["license_id"])
    session.rollback()  # the service writes in its own transaction; no snapshot held across it
    if current is None:
        return {"skipped": "licence not found"}
    if current.holder_code == move["to_holder"]:
        return {"version": current.version}  # moved before a crash cut the record short
    if current.holder_code != move["from_holder"]:
        return {"skipped": "the licence changed holder meanwhile"}
    try:
        changes = {"holder_code": move["to_holder"]}
        if "to_number" in move and current.license_number == move["from_number"]:
            changes["license_number"] = move["to_number"]
        issued = service.amend(move["license_id"], changes,
                               reason=f"identity review {row.review_id}: decision {row.id} ({row.action})")  # fmt: skip
    except (InvalidTransition, LicenseNotFound) as exc:
        return {"skipped": str(exc)[:200]}
    return {"version": issued.version}


# -- what stewards see ------------------------------------------------------------------------------------------
def _candidate(
    session: Session, item: IdentityReviewQueue, code: str, p: float | None, personal: bool
) -> dict[str, Any]:
    kind = item.entity_kind
    found = _identity(session, kind, code)
    values: dict[str, Any] = {}
    if isinstance(found, IdentityPerson):
        values = {"name": found.name, "birth_date": found.birth_date, "address": found.address}
        extra = {"sex": found.sex, "region_code": found.region_code}
    elif isinstance(found, IdentityEnterprise):
        rep = found.attributes.get("legal_rep_name")
        values = {"name": found.name, "legal_rep_name": rep, "address": found.address}
        extra = {"region_code": found.region_code}
    else:
        extra = {}
    # an enterprise's name is no personal data (a sole proprietor's is): the party decides
    party = Party(kind, code)
    shown = values if personal else mask_fields(values, personal_kinds(kind), party=party)
    licences = licenses_by_holder(session, code, limit=200)
    return {
        "code": _code_shower(kind, personal)(code), "match_probability": p, "found": found is not None,
        "provisional": bool(getattr(found, "provisional", False)),
        "merged_into": _code_shower(kind, personal)(found.merged_into) if found else None,
        **shown, **extra, "licences": len(licences),
    }  # fmt: skip


def summary(item: IdentityReviewQueue, *, personal: bool = False, now: dt.datetime | None = None) -> dict[str, Any]:
    """One line of the list: the item, its best candidate, how long it has waited."""
    created = _aware(item.created_at)
    age = (now or dt.datetime.now(dt.UTC)) - created
    return {
        "id": item.id, "status": item.status, "entity_kind": item.entity_kind, "department": item.department,
        "dataset": item.dataset, "candidate": _code_shower(item.entity_kind, personal)(item.candidate_code),
        "match_probability": item.match_probability, "created_at": created.isoformat(),
        "age_seconds": max(0, int(age.total_seconds())),
    }  # fmt: skip


def list_items(
    session: Session, *, status: str | None = OPEN, limit: int = 50, offset: int = 0, personal: bool = False
) -> list[dict[str, Any]]:
    """Items oldest first, with their age."""
    now = dt.datetime.now(dt.UTC)
    return [summary(i, personal=personal, now=now) for i in queue.list_reviews(session, status=status, limit=limit,
                                                                              offset=offset)]  # fmt: skip


def show(session: Session, review_id: int, *, personal: bool = False) -> dict[str, Any]:
    """Both sides: the incoming record (as the queue keeps it: masked) and each candidate identity
    (masked unless ``personal``), the record's licences, a waiting merge request and the decisions."""
    item = _item(session, review_id)
    code = _code_shower(item.entity_kind, personal)
    link = queue.active_link(session, item.department, item.dataset, item.incoming_key)
    probabilities: dict[str, float | None] = {item.candidate_code: item.match_probability}
    if item.runner_up_code:
        probabilities[item.runner_up_code] = item.runner_up_probability
    pending = pending_merge(session, item.id)
    key = item.incoming_key if personal else scrub_text(item.incoming_key)
    return {
        **summary(item, personal=personal),
        "decided_at": _aware(item.decided_at).isoformat() if item.decided_at else None,
        "decided_by": item.decided_by,
        "incoming": {
            "source_key": key, "run_id": item.run_id, "linked_to": code(link.canonical_code) if link else None,
            "details": dict(item.details or {}),
            "licences": [{"license_id": r.license_id, "type_code": r.license_type_code, "status": r.status,
                          "version": r.version, "holder": _code_shower(r.holder_kind, personal)(r.holder_code)}
                         for r in licenses_of_source(session, item.department, item.dataset, item.incoming_key)],
        },
        "candidates": [_candidate(session, item, c, probabilities.get(c), personal)
                       for c in queue.candidate_codes(item)],
        "pending_merge": None if pending is None else {
            "decision_id": pending.id, "requested_by": pending.actor, "from_code": code(pending.from_code),
            "into_code": code(pending.into_code), "requested_at": _aware(pending.decided_at).isoformat(),
        },
        "decisions": [
            {"decision_id": r.id, "decision": r.action, "actor": r.actor,
             "reason": r.reason if personal else scrub_text(r.reason),
             "decided_at": _aware(r.decided_at).isoformat(), "licences": [m["license_id"] for m in r.moves]}
            for r in decisions_of(session, item.id)
        ],
    }  # fmt: skip
