"""Writing events to the transactional outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import OutboxEvent


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
