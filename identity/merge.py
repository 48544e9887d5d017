"""Merge and split of identities (合并与拆分), keeping history.

A merge says two identities are one person or enterprise (a duplicate record, a reviewer's
decision): the source records of ``from_code`` move to ``into_code``, ``from_code`` becomes a
legacy code of ``into_code`` in the cross-walk, both golden records are recomputed and an
``identity.merged`` event goes to the outbox. A split undoes exactly one merge; an unlink
undoes one source-record link. Nothing is deleted: links and cross-walk entries get their
``unlinked_at``/``undone_at`` and new rows record what holds now.

The events' subjects are opaque references (:func:`hub.pseudonyms.opaque_ref`) and their
idempotency keys name the merge or link record: no event identifier carries a resident id.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from hub.masking import mask_resident_id
from hub.models import utcnow
from hub.outbox import emit
from hub.pseudonyms import opaque_ref
from hub.regions import holder_region
from identity import golden
from identity.tables import (
    PERSON,
    IdentityCrosswalk,
    IdentityEnterprise,
    IdentityMerge,
    IdentityPerson,
    IdentitySourceRecord,
)


class MergeError(ValueError):
    """A merge or split that cannot be done (unknown identity, already merged, …)."""


def _identity(session: Session, entity_kind: str, code: str) -> IdentityPerson | IdentityEnterprise:
    row: IdentityPerson | IdentityEnterprise | None = (
        session.get(IdentityPerson, code) if entity_kind == PERSON else session.get(IdentityEnterprise, code)
    )
    if row is None:
        raise MergeError(f"no {entity_kind} identity {code!r}")
    return row


def _shown(entity_kind: str, code: str) -> str:
    return (mask_resident_id(code) or "") if entity_kind == PERSON else code


def _move_links(
    session: Session,
    entity_kind: str,
    from_code: str,
    into_code: str,
    method: str,
    only: list[IdentitySourceRecord] | None = None,
) -> int:
    now = utcnow()
    links = (
        only
        if only is not None
        else list(
            session.scalars(
                select(IdentitySourceRecord).where(
                    IdentitySourceRecord.entity_kind == entity_kind,
                    IdentitySourceRecord.canonical_code == from_code,
                    IdentitySourceRecord.unlinked_at.is_(None),
                )
            )
        )
    )
    rows: list[dict[str, Any]] = []
    for link in links:
        link.unlinked_at = now
        rows.append(
            {
                "department": link.department,
                "dataset": link.dataset,
                "source_key": link.source_key,
                "source_version": link.source_version,
                "entity_kind": entity_kind,
                "canonical_code": into_code,
                "method": method,
                "score": link.score,
                "stored_attributes": link.attributes,
                "linked_at": now,
            }
        )
    if rows:
        session.execute(insert(IdentitySourceRecord), rows)
    session.flush()
    return len(rows)


def merge(
    session: Session, entity_kind: str, from_code: str, into_code: str, *, actor: str, reason: str | None = None
) -> IdentityMerge:
    """Merge identity ``from_code`` into ``into_code``; returns the merge record."""
    if from_code == into_code:
        raise MergeError("an identity cannot be merged into itself")
    source, target = _identity(session, entity_kind, from_code), _identity(session, entity_kind, into_code)
    if source.merged_into is not None:
        raise MergeError(f"{_shown(entity_kind, from_code)} is already merged")
    if target.merged_into is not None:
        raise MergeError(f"{_shown(entity_kind, into_code)} was merged away; merge into the surviving identity")
    record = IdentityMerge(
        entity_kind=entity_kind,
        from_code=from_code,
        into_code=into_code,
        actor=actor,
        reason=reason,
        merged_at=utcnow(),
    )
    session.add(record)
    session.flush()
    method = f"merge:{record.id}"
    moved = _move_links(session, entity_kind, from_code, into_code, method)
    source.merged_into = into_code
    session.add(
        IdentityCrosswalk(
            legacy_code=from_code,
            code_kind="resident_id" if entity_kind == PERSON else "uscc",
            canonical_code=into_code,
            entity_kind=entity_kind,
            source=f"manual:{actor}",
            method=method,
            linked_at=utcnow(),
        )
    )
    session.flush()
    golden.refresh(session, entity_kind, [from_code, into_code], cause="merge")
    emit(
        session,
        "identity.merged",
        opaque_ref(into_code),
        {
            "entity_kind": entity_kind,
            "canonical_code": into_code,
            "merged_code": _shown(entity_kind, from_code),
            "source_records_moved": moved,
            "actor": actor,
            "reason": reason,
        },
        f"identity.merged:merge:{record.id}",
        holder_code=into_code,
        region_code=holder_region(entity_kind, into_code),
    )
    return record


def split(session: Session, merge_id: int, *, actor: str, reason: str | None = None) -> IdentityMerge:
    """Undo merge ``merge_id``: the moved source records return to the merged-away identity."""
    record = session.get(IdentityMerge, merge_id)
    if record is None:
        raise MergeError(f"no merge {merge_id}")
    if record.undone_at is not None:
        raise MergeError(f"merge {merge_id} was already split")
    kind, from_code, into_code = record.entity_kind, record.from_code, record.into_code
    method = f"merge:{record.id}"
    moved = list(
        session.scalars(
            select(IdentitySourceRecord).where(
                IdentitySourceRecord.entity_kind == kind,
                IdentitySourceRecord.canonical_code == into_code,
                IdentitySourceRecord.method == method,
                IdentitySourceRecord.unlinked_at.is_(None),
            )
        )
    )
    count = _move_links(session, kind, into_code, from_code, f"split:{record.id}", only=moved)
    now = utcnow()
    record.undone_at = now
    _identity(session, kind, from_code).merged_into = None
    for walk in session.scalars(
        select(IdentityCrosswalk).where(IdentityCrosswalk.method == method, IdentityCrosswalk.undone_at.is_(None))
    ):
        walk.undone_at = now
    session.flush()
    golden.refresh(session, kind, [from_code, into_code], cause="split")
    emit(
        session,
        "identity.split",
        opaque_ref(into_code),
        {
            "entity_kind": kind,
            "canonical_code": into_code,
            "split_code": _shown(kind, from_code),
            "source_records_moved": count,
            "actor": actor,
            "reason": reason,
        },
        f"identity.split:merge:{record.id}",
        holder_code=into_code,
        region_code=holder_region(kind, into_code),
    )
    return record


def unlink(
    session: Session, department: str, dataset: str, source_key: str, *, actor: str, reason: str | None = None
) -> IdentitySourceRecord:
    """Undo one source record's link (the record no longer counts for its identity)."""
    link = session.scalar(
        select(IdentitySourceRecord).where(
            IdentitySourceRecord.department == department,
            IdentitySourceRecord.dataset == dataset,
            IdentitySourceRecord.source_key == source_key,
            IdentitySourceRecord.unlinked_at.is_(None),
        )
    )
    if link is None:
        raise MergeError(f"no active link for {department}/{dataset}/{source_key}")
    link.unlinked_at = utcnow()
    session.flush()
    golden.refresh(session, link.entity_kind, [link.canonical_code], cause="unlink")
    emit(
        session,
        "identity.split",
        opaque_ref(link.canonical_code),
        {
            "entity_kind": link.entity_kind,
            "canonical_code": link.canonical_code,
            "source_record": {"department": department, "dataset": dataset, "source_key": source_key},
            "actor": actor,
            "reason": reason,
        },
        f"identity.split:link:{link.id}",
        holder_code=link.canonical_code,
        region_code=holder_region(link.entity_kind, link.canonical_code),
    )
    return link
