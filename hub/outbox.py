"""Writing events to the transactional outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.bulk import insert_rows
from hub.models import OutboxEvent, utcnow

#: Idempotency keys checked per query by :func:`emit_many`.
KEY_CHUNK = 1000


def emit(
    session: Session,
    event_type: str,
    subject: str,
    payload: dict[str, Any],
    idempotency_key: str,
    *,
    holder_code: str | None = None,
    region_code: str | None = None,
    license_type_code: str | None = None,
) -> OutboxEvent:
    """Add an event to ``session``; it commits (or not) with the change it announces.

    Emitting twice with one idempotency key returns the first event instead of a copy.
    """
    existing = session.scalar(select(OutboxEvent).where(OutboxEvent.idempotency_key == idempotency_key))
    if existing is not None:
        return existing
    event = OutboxEvent(
        event_type=event_type,
        subject=subject,
        payload=payload,
        idempotency_key=idempotency_key,
        holder_code=holder_code,
        region_code=region_code,
        license_type_code=license_type_code,
    )
    session.add(event)
    session.flush()
    return event


def events_after(session: Session, after_id: int, limit: int = 1000) -> list[OutboxEvent]:
    """Events in commit order after ``after_id`` (the delivery worker's cursor)."""
    stmt = select(OutboxEvent).where(OutboxEvent.id > after_id).order_by(OutboxEvent.id).limit(limit)
    return list(session.scalars(stmt))


def emit_many(session: Session, events: list[dict[str, Any]], *, fresh: bool = False) -> int:
    """Add many events to ``session`` at once, with :func:`emit`'s rules (batch issuing).

    Each dict holds :func:`emit`'s arguments by name (``event_type``, ``subject``,
    ``payload``, ``idempotency_key`` and optionally ``holder_code``, ``region_code``,
    ``license_type_code``). Keys already in the outbox, or repeated in the batch, are
    skipped. A query per thousand keys checks them and one INSERT writes the rest; returns
    how many events were added.

    ``fresh``: every key names something written in this transaction for the first time (a new
    case under a code drawn free just now), so none can be in the outbox yet: the query is left
    out (keys repeated in the batch are still skipped; a key that were there after all would
    fail the INSERT on the outbox's unique key, not be written twice).
    """
    if not events:
        return 0
    keys = [] if fresh else sorted({e["idempotency_key"] for e in events})
    existing: set[str] = set()
    for start in range(0, len(keys), KEY_CHUNK):  # bounded IN lists (SQLite limits bound parameters)
        chunk = keys[start : start + KEY_CHUNK]
        existing.update(
            session.scalars(select(OutboxEvent.idempotency_key).where(OutboxEvent.idempotency_key.in_(chunk)))
        )
    rows: list[dict[str, Any]] = []
    for e in events:
        if e["idempotency_key"] in existing:
            continue
        existing.add(e["idempotency_key"])
        rows.append({"holder_code": None, "region_code": None, "license_type_code": None, **e})
    if rows:
        # Core on the session's connection: multi-row INSERTs without the ORM's per-row bookkeeping
        # (what the session holds pending goes first, as the ORM's own INSERT would have flushed it)
        session.flush()
        now = utcnow()
        insert_rows(session.connection(), OutboxEvent.__table__, [{**r, "created_at": now} for r in rows])  # type: ignore[arg-type]
    return len(rows)
