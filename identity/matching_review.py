"""The review queue (人工复核): grey-zone matches wait for a person; decisions can be undone.

``enqueue_reviews`` stores the ``review`` rows of :func:`identity.matching.match_batch`
(idempotently: a re-run of the same batch adds nothing); ``decide`` records a reviewer's
link (to one of the candidates) or rejection; ``reopen`` and ``separate`` (a split) undo a
decision; ``list_reviews`` lists the oldest first. What a decision means for licences is the
business of a room above both (:mod:`recognition.identity_review`). Every step is appended to the event history.
Personal data in ``details`` is masked: a reviewer sees enough to compare, not to copy.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.masking import Party, mask_fields
from identity import golden
from identity.matching import MATCH, REVIEW
from identity.matching_tables import (
    LINKED,
    MATCH_REVIEW,
    OPEN,
    REJECTED,
    IdentityReviewEvent,
    IdentityReviewQueue,
)
from identity.merge import MergeError, unlink
from identity.tables import IdentitySourceRecord
from mappings.canonical.models import personal_kinds


class ReviewStateError(ValueError):
    """A decision that does not fit the item's current state (e.g. linking a rejected item)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def masked_details(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a reviewer sees of an incoming person record (masked personal data)."""

    def text(v: Any) -> str | None:
        return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)

    birth = text(record.get("birth_date"))
    kinds = personal_kinds("person")
    return {
        **mask_fields({k: text(record.get(k)) for k in ("name", "resident_id", "address")}, kinds),
        "birth_year": birth[:4] if birth else None,
        "sex": text(record.get("sex")),
        "region_code": text(record.get("region_code")),
    }


def masked_enterprise_details(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a reviewer sees of an incoming enterprise record: its name and code as they are (an
    enterprise's are not personal data; a sole proprietor's name is masked), the legal
    representative's name and the address masked."""

    def text(v: Any) -> str | None:
        return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)

    code = text(record.get("code"))
    values = {k: text(record.get(k)) for k in ("name", "code", "legal_rep_name", "address")}
    shown = mask_fields(values, personal_kinds("enterprise") | {"code": "code"}, party=Party("enterprise", code))
    return {**shown, "region_code": text(record.get("region_code"))}


def enqueue_reviews(
    session: Session,
    decisions: pd.DataFrame,
    *,
    department: str,
    dataset: str,
    incoming: pd.DataFrame | None = None,
    incoming_key: str = "incoming_key",
    run_id: str | None = None,
    entity_kind: str = "person",
    actor: str = "matcher",
    reason: str = MATCH_REVIEW,
) -> int:
    """Store the ``review`` decisions; returns how many new queue items were created (``reason``:
    why they wait — a grey-zone match, or a link a retrained model would place elsewhere)."""
    grey = decisions[decisions["decision"] == REVIEW]
    if grey.empty:
        return 0
    records: dict[str, Mapping[str, Any]] = {}
    if incoming is not None:
        keyed = incoming.assign(_k=incoming[incoming_key].astype(str))
        records = {
            str(r["_k"]): r for r in keyed[keyed["_k"].isin(grey["incoming_key"].astype(str))].to_dict("records")
        }
    existing = set(
        session.execute(
            select(IdentityReviewQueue.incoming_key, IdentityReviewQueue.candidate_code).where(
                IdentityReviewQueue.department == department,
                IdentityReviewQueue.dataset == dataset,
                IdentityReviewQueue.incoming_key.in_(grey["incoming_key"].astype(str).tolist()),
            )
        ).all()
    )
    now = _now()
    created = 0
    for row in grey.to_dict("records"):
        key, code = str(row["incoming_key"]), str(row["canonical_code"])
        if (key, code) in existing:
            continue
        runner_code = row.get("runner_up_code")
        runner_p = row.get("runner_up_probability")
        item = IdentityReviewQueue(
            entity_kind=entity_kind,
            department=department,
            dataset=dataset,
            incoming_key=key,
            candidate_code=code,
            match_probability=float(row["match_probability"]),
            runner_up_code=None if runner_code is None or pd.isna(runner_code) else str(runner_code),
            runner_up_probability=None if runner_p is None or pd.isna(runner_p) else float(runner_p),
            details=_details(records[key], entity_kind) if key in records else None,
            status=OPEN,
            run_id=run_id,
            created_at=now,
            reason=reason,
        )
        session.add(item)
        session.flush()
        session.add(IdentityReviewEvent(review_id=item.id, action="enqueued", actor=actor, at=now))
        created += 1
    session.flush()
    return created


def _details(record: Mapping[str, Any], entity_kind: str) -> dict[str, Any]:
    return masked_enterprise_details(record) if entity_kind == "enterprise" else masked_details(record)


def open_reviews(session: Session, department: str | None = None) -> list[IdentityReviewQueue]:
    stmt = select(IdentityReviewQueue).where(IdentityReviewQueue.status == OPEN)
    if department is not None:
        stmt = stmt.where(IdentityReviewQueue.department == department)
    return list(session.scalars(stmt.order_by(IdentityReviewQueue.id)))


def link_source_record(
    session: Session,
    *,
    department: str,
    dataset: str,
    source_key: str,
    entity_kind: str,
    canonical_code: str,
    score: float,
    method: str,
) -> bool:
    """Link a source record to its identity in the master index (``identity_source_record``).

    Returns True (the link is written).
    """
    session.add(
        IdentitySourceRecord(
            department=department,
            dataset=dataset,
            source_key=source_key,
            entity_kind=entity_kind,
            canonical_code=canonical_code,
            method=method,
            score=score,
            attributes={},
            linked_at=_now(),
        )
    )
    session.flush()
    golden.refresh(session, entity_kind, [canonical_code], cause=method)
    return True


def link_matches(
    session: Session, decisions: pd.DataFrame, *, department: str, dataset: str, entity_kind: str = "person"
) -> int:
    """Link every ``match`` decision of :func:`identity.matching.match_batch` (method
    ``probabilistic``, the probability as score); returns how many links were made."""
    made = 0
    for row in decisions[decisions["decision"] == MATCH].to_dict("records"):
        made += link_source_record(
            session,
            department=department,
            dataset=dataset,
            source_key=str(row["incoming_key"]),
            entity_kind=entity_kind,
            canonical_code=str(row["canonical_code"]),
            score=float(row["match_probability"]),
            method="probabilistic",
        )
    return made


def candidate_codes(item: IdentityReviewQueue) -> list[str]:
    """The identities an item proposes, best first."""
    return [c for c in (item.candidate_code, item.runner_up_code) if c]


def decide(
    session: Session,
    review_id: int,
    *,
    link: bool,
    actor: str,
    note: str | None = None,
    into: str | None = None,
    link_record: bool = True,
) -> IdentityReviewQueue:
    """A reviewer links (same person) or rejects (different people) an open item.

    Linking also links the source record in the master index (method ``probabilistic_review``) to
    ``into``, one of the item's candidates (default: the best); ``link_record=False`` when the caller
    has moved the record's links itself (a merge of the record's identity into the candidate).
    """
    item = session.get(IdentityReviewQueue, review_id)
    if item is None:
        raise KeyError(review_id)
    if item.status != OPEN:
        raise ReviewStateError(f"review {review_id} is {item.status}; reopen it first")
    target = into or item.candidate_code
    if link and target not in candidate_codes(item):
        raise ReviewStateError(f"review {review_id} does not propose that identity")
    now = _now()
    item.status = LINKED if link else REJECTED
    item.decided_at = now
    item.decided_by = actor
    session.add(IdentityReviewEvent(review_id=item.id, action=item.status, actor=actor, note=note, at=now))
    session.flush()
    if link and link_record:
        link_source_record(
            session,
            department=item.department,
            dataset=item.dataset,
            source_key=item.incoming_key,
            entity_kind=item.entity_kind,
            canonical_code=target,
            score=item.match_probability,
            method="probabilistic_review",
        )
    return item


def separate(
    session: Session, review_id: int, *, actor: str, note: str | None = None, unlink_record: bool = True
) -> IdentityReviewQueue:
    """Undo a link by a later decision (拆分): the linked item becomes rejected, its source record's
    link is undone (kept on record; ``unlink_record=False`` when the caller split a merge, which
    returned the record to its own identity) and the history says ``split``."""
    item = session.get(IdentityReviewQueue, review_id)
    if item is None:
        raise KeyError(review_id)
    if item.status != LINKED:
        raise ReviewStateError(f"review {review_id} is {item.status}; only a linked item can be split")
    if unlink_record:
        _unlink(session, item, actor=actor, note=note)
    now = _now()
    item.status = REJECTED
    item.decided_at = now
    item.decided_by = actor
    session.add(IdentityReviewEvent(review_id=item.id, action="split", actor=actor, note=note, at=now))
    session.flush()
    return item


def note_event(session: Session, review_id: int, action: str, *, actor: str, note: str | None = None) -> None:
    """Append an event that changes no status (e.g. ``merge_asked``: a merge waits for a second reviewer)."""
    session.add(IdentityReviewEvent(review_id=review_id, action=action[:12], actor=actor, note=note, at=_now()))
    session.flush()


def active_link(session: Session, department: str, dataset: str, source_key: str) -> IdentitySourceRecord | None:
    """The source record's link in force, if any."""
    return session.scalar(
        select(IdentitySourceRecord).where(
            IdentitySourceRecord.department == department,
            IdentitySourceRecord.dataset == dataset,
            IdentitySourceRecord.source_key == source_key,
            IdentitySourceRecord.unlinked_at.is_(None),
        )
    )


def list_reviews(
    session: Session, *, status: str | None = OPEN, limit: int = 50, offset: int = 0
) -> list[IdentityReviewQueue]:
    """Items oldest first (the longest waiting at the top); ``status=None``: every item."""
    stmt = select(IdentityReviewQueue)
    if status is not None:
        stmt = stmt.where(IdentityReviewQueue.status == status)
    stmt = stmt.order_by(IdentityReviewQueue.created_at, IdentityReviewQueue.id).limit(limit).offset(offset)
    return list(session.scalars(stmt))


def reopen(session: Session, review_id: int, *, actor: str, note: str | None = None) -> IdentityReviewQueue:
    """Undo a decision: the item is open again; the history keeps what was decided.

    Undoing a link also unlinks the source record in the master index (``identity.merge.unlink``).
    """
    item = session.get(IdentityReviewQueue, review_id)
    if item is None:
        raise KeyError(review_id)
    if item.status == OPEN:
        raise ReviewStateError(f"review {review_id} is already open")
    if item.status == LINKED:
        _unlink(session, item, actor=actor, note=note)
    now = _now()
    item.status = OPEN
    item.decided_at = None
    item.decided_by = None
    session.add(IdentityReviewEvent(review_id=item.id, action="reopened", actor=actor, note=note, at=now))
    session.flush()
    return item


def _unlink(session: Session, item: IdentityReviewQueue, *, actor: str, note: str | None) -> None:
    # MergeError: the link was already undone elsewhere (a split): nothing left to undo here.
    with contextlib.suppress(MergeError):
        unlink(session, item.department, item.dataset, item.incoming_key, actor=actor, reason=note or "review reopened")


def events(session: Session, review_id: int) -> list[IdentityReviewEvent]:
    """Every event of an item, oldest first."""
    stmt = select(IdentityReviewEvent).where(IdentityReviewEvent.review_id == review_id)
    return list(session.scalars(stmt.order_by(IdentityReviewEvent.id)))


def history(session: Session, review_id: int) -> list[tuple[str, str]]:
    """(action, actor) of every event of an item, oldest first."""
    rows = session.execute(
        select(IdentityReviewEvent.action, IdentityReviewEvent.actor)
        .where(IdentityReviewEvent.review_id == review_id)
        .order_by(IdentityReviewEvent.id)
    ).all()
    return [(a, b) for a, b in rows]
