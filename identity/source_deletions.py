"""Source records their department no longer holds (来源记录删除): links ended, items for review.

A row that vanished from a department's table is not a decision of that department (a
deregistration or revocation arrives as a status), so nothing about the identity is decided
here: the record's active links and the relations it named are ended (``unlinked_at``), the
golden records are recomputed without it, and one review item per ended link (reason
:data:`~identity.matching_tables.SOURCE_DELETED`) asks a person to look at the identity and at
the licences that rested on the record (their ids in the item's ``details``). Nothing is
deleted; a second call for the same keys finds no active link and does nothing.

What announces it (outbox, audit) and which licences rested on the record is the caller's
(:mod:`pipeline.deletions`): this room knows identities, not licences.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.models import utcnow
from identity import golden
from identity.matching_tables import OPEN, SOURCE_DELETED, IdentityReviewEvent, IdentityReviewQueue
from identity.tables import IdentityRelation, IdentitySourceRecord

KEY_CHUNK = 500
#: ``identity_golden_history.cause`` of a value that changed because its source record went
CAUSE = "source_deleted"


@dataclass(frozen=True)
class EndedLink:
    """One link ended because its source record was deleted, and the review item it waits in."""

    link_id: int
    entity_kind: str
    canonical_code: str
    source_key: str
    source_version: str | None
    review_id: int
    license_ids: list[str] = field(default_factory=list)


def active_links(
    session: Session, department: str, dataset: str, source_keys: Sequence[str]
) -> list[IdentitySourceRecord]:
    """The active links of these source records of one department dataset, by id."""
    keys = sorted({str(k) for k in source_keys})
    links: list[IdentitySourceRecord] = []
    for start in range(0, len(keys), KEY_CHUNK):  # bounded IN lists (SQLite limits bound parameters)
        chunk = keys[start : start + KEY_CHUNK]
        links.extend(
            session.scalars(
                select(IdentitySourceRecord).where(
                    IdentitySourceRecord.department == department,
                    IdentitySourceRecord.dataset == dataset,
                    IdentitySourceRecord.source_key.in_(chunk),
                    IdentitySourceRecord.unlinked_at.is_(None),
                )
            )
        )
    return sorted(links, key=lambda link: link.id)


def end_links(
    session: Session,
    links: Sequence[IdentitySourceRecord],
    *,
    deleted_versions: Mapping[str, str],
    license_ids: Mapping[int, list[str]],
    run_id: str | None,
    actor: str = "pipeline",
) -> list[EndedLink]:
    """End ``links`` (their records were deleted at the source), recompute their golden records
    and put each into review; ``license_ids`` names, per link id, the licences that rested on it.

    ``deleted_versions`` gives, per source key, the version the deletion was seen at (the
    tombstone's). Returns what was ended, in link order, in the caller's transaction.
    """
    if not links:
        return []
    now = utcnow()
    ended: list[EndedLink] = []
    for link in links:
        link.unlinked_at = now
        # the relations the record named (a legal representative, an employer) go with it
        session.execute(
            update(IdentityRelation)
            .where(
                IdentityRelation.department == link.department,
                IdentityRelation.dataset == link.dataset,
                IdentityRelation.source_key == link.source_key,
                IdentityRelation.unlinked_at.is_(None),
            )
            .values(unlinked_at=now)
        )
        licences = sorted(license_ids.get(link.id, []))
        item, reopened = _review_item(session, link, licences, deleted_versions.get(link.source_key), run_id, now)
        session.add(IdentityReviewEvent(review_id=item.id, action="reopened" if reopened else "enqueued", actor=actor,
                                        note=f"{SOURCE_DELETED}: link {link.id} ended", at=now))  # fmt: skip
        ended.append(EndedLink(link.id, link.entity_kind, link.canonical_code, link.source_key,
                               link.source_version, item.id, licences))  # fmt: skip
    session.flush()
    for kind in sorted({link.entity_kind for link in links}):
        golden.refresh(session, kind, [link.canonical_code for link in links if link.entity_kind == kind], cause=CAUSE)
    return ended


def _review_item(
    session: Session,
    link: IdentitySourceRecord,
    licences: list[str],
    deleted_version: str | None,
    run_id: str | None,
    now: dt.datetime,
) -> tuple[IdentityReviewQueue, bool]:
    """The link's review item and whether it existed: a new one, or the same record's earlier
    item (a match review, say) opened again — the queue holds one item per source record and
    identity — with what it said before kept in ``details["earlier"]``."""
    details = {
        "reason": SOURCE_DELETED,
        "link_id": link.id,
        "link_method": link.method,
        "source_version": link.source_version,
        "deleted_version": deleted_version,
        "license_ids": licences,
    }
    item = session.scalar(
        select(IdentityReviewQueue).where(
            IdentityReviewQueue.department == link.department,
            IdentityReviewQueue.dataset == link.dataset,
            IdentityReviewQueue.incoming_key == link.source_key,
            IdentityReviewQueue.candidate_code == link.canonical_code,
        )
    )
    if item is None:
        item = IdentityReviewQueue(
            entity_kind=link.entity_kind,
            department=link.department,
            dataset=link.dataset,
            incoming_key=link.source_key,
            candidate_code=link.canonical_code,
            created_at=now,
        )
        session.add(item)
        reopened = False
    else:
        reopened = True
        details["earlier"] = {
            "reason": item.reason,
            "status": item.status,
            "match_probability": item.match_probability,
            "decided_by": item.decided_by,
            "decided_at": item.decided_at.isoformat() if item.decided_at is not None else None,
            "details": item.details,
        }
    # the probability the ended link had (a link by code is certain)
    item.match_probability = float(link.match_probability if link.match_probability is not None else 1.0)
    item.details = details
    item.status = OPEN
    item.reason = SOURCE_DELETED
    item.run_id = run_id
    item.decided_at = None
    item.decided_by = None
    session.flush()
    return item, reopened


def open_source_deletions(session: Session, department: str | None = None) -> list[IdentityReviewQueue]:
    """The open review items of deleted source records (oldest first)."""
    stmt = select(IdentityReviewQueue).where(
        IdentityReviewQueue.status == OPEN, IdentityReviewQueue.reason == SOURCE_DELETED
    )
    if department is not None:
        stmt = stmt.where(IdentityReviewQueue.department == department)
    return list(session.scalars(stmt.order_by(IdentityReviewQueue.id)))


def licences_in_review(session: Session, license_ids: Sequence[str] | None = None) -> dict[str, int]:
    """Licence id → the open source-deletion review item it waits in (only ``license_ids``, when given)."""
    wanted = None if license_ids is None else set(license_ids)
    out: dict[str, int] = {}
    for item in open_source_deletions(session):
        for license_id in (item.details or {}).get("license_ids") or []:
            if wanted is None or license_id in wanted:
                out[str(license_id)] = item.id
    return out
