"""What operators do with the delivery queue (推送队列运维): replay, skip, and list what is held.

The worker (:mod:`recognition.delivery`) sends the heads of the queues; here an operator sends a
dead-lettered (or delivered) delivery again with the same idempotency key, gives one up so the
holder's later events flow again, or lists deliveries with the dead letter holding each back.
``hub deliver --replay/--skip``, the console and ``GET /v1/deliveries`` call these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session, aliased

from hub.models import utcnow
from recognition.delivery import DEAD, DELIVERED, PENDING, SKIPPED
from recognition.tables import Delivery


class DeliveryNotFound(LookupError):
    pass


def replay(session: Session, delivery_id: int) -> Delivery:
    """Send one delivery again (dead-lettered, or already delivered) with the same idempotency key."""
    d = session.get(Delivery, delivery_id)
    if d is None:
        raise DeliveryNotFound(delivery_id)
    d.status, d.attempts, d.next_attempt_at, d.last_error = PENDING, 0, utcnow(), None
    return d


def replay_range(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    *,
    subscription_id: str | None = None,
    include_delivered: bool = False,
) -> int:
    """Replay the deliveries created in [since, until): the dead-lettered ones, or every one."""
    statuses = [DEAD, DELIVERED] if include_delivered else [DEAD]
    cond = and_(Delivery.created_at >= since, Delivery.created_at < until, Delivery.status.in_(statuses))
    if subscription_id:
        cond = and_(cond, Delivery.subscription_id == subscription_id)
    res = session.execute(
        update(Delivery).where(cond).values(status=PENDING, attempts=0, next_attempt_at=utcnow(), last_error=None)
    )
    return int(getattr(res, "rowcount", 0) or 0)


def skip(session: Session, delivery_id: int) -> Delivery:
    """Give up on one delivery deliberately; the holder's later events flow again."""
    d = session.get(Delivery, delivery_id)
    if d is None:
        raise DeliveryNotFound(delivery_id)
    d.status = SKIPPED
    return d


@dataclass(frozen=True)
class DeliveryView:
    delivery: Delivery
    held_by: int | None


def list_deliveries(
    session: Session,
    *,
    subscription_ids: Sequence[str] | None,
    status: str | None,
    limit: int,
    offset: int,
) -> list[DeliveryView]:
    """Deliveries newest first, each with the dead-lettered delivery holding it back, if any.

    ``status="held"`` lists only pending deliveries held back behind a dead letter.
    """
    blocker = aliased(Delivery)
    held_by = (
        select(func.min(blocker.id))
        .where(
            blocker.subscription_id == Delivery.subscription_id,
            blocker.holder_key == Delivery.holder_key,
            blocker.event_id < Delivery.event_id,
            blocker.status == DEAD,
        )
        .correlate(Delivery)
        .scalar_subquery()
    )
    stmt = select(Delivery, held_by.label("held_by"))
    if subscription_ids is not None:
        stmt = stmt.where(Delivery.subscription_id.in_(list(subscription_ids)))
    if status == "held":
        stmt = stmt.where(Delivery.status == PENDING, held_by.is_not(None))
    elif status:
        stmt = stmt.where(Delivery.status == status)
    stmt = stmt.order_by(Delivery.id.desc()).limit(limit).offset(offset)
    return [DeliveryView(d, int(h) if h is not None else None) for d, h in session.execute(stmt).all()]
