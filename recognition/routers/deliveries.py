"""Deliveries (推送投递): a consumer's deliveries, including those held back behind a dead letter; the
error in full only for operators (``deliveries:admin``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request

from recognition import delivery as delivery_mod
from recognition import delivery_ops
from recognition import subscriptions as subs_mod
from recognition.dependencies import CallerDep, Limit, Offset, SessionDep, next_offset, record, require
from recognition.problems import responses
from recognition.schemas import DeliveryOut, DeliveryPage, DeliveryStatus

router = APIRouter()


@router.get(
    "/v1/deliveries",
    response_model=DeliveryPage,
    responses=responses(401, 403, 503),
    tags=["push"],
    summary="Deliveries of the caller's subscriptions, including those held back behind a dead letter",
)
async def list_deliveries(
    request: Request,
    c: CallerDep,
    session: SessionDep,
    status: DeliveryStatus | None = None,
    subscription_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> DeliveryPage:
    require(c, "deliveries:read")
    admin = c.principal.scopes.has("deliveries:admin")
    sub_ids: list[str] | None
    if admin:
        sub_ids = None
    else:
        sub_ids = [s.id for s in subs_mod.list_for(session, c.principal.consumer_id, limit=10_000, offset=0)]
    if subscription_id is not None:
        sub_ids = [subscription_id] if sub_ids is None or subscription_id in sub_ids else []
    views = delivery_ops.list_deliveries(
        session, subscription_ids=sub_ids, status=status.value if status else None, limit=limit, offset=offset
    )
    items = [_delivery_out(v, full_error=admin) for v in views]
    await record(request, c, "read", subject="deliveries", detail={"count": len(items)})
    return DeliveryPage(items=items, limit=limit, offset=offset, next_offset=next_offset(offset, limit, len(items)))


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _delivery_out(v: delivery_ops.DeliveryView, *, full_error: bool) -> DeliveryOut:
    """A delivery as shown; its error in full only to operators (``deliveries:admin``), to a consumer
    only the receiver's answer or the class of failure (:func:`recognition.delivery.public_error`)."""
    d = v.delivery
    held = v.held_by is not None and d.status == delivery_mod.PENDING
    return DeliveryOut(
        id=d.id, subscription_id=d.subscription_id, event_id=d.event_id, event_type=d.event_type,
        idempotency_key=d.idempotency_key, status="held" if held else d.status, held_back=held,
        held_by=v.held_by if held else None, attempts=d.attempts,
        next_attempt_at=_utc(d.next_attempt_at) if d.status == delivery_mod.PENDING else None,
        last_error=d.last_error if full_error else delivery_mod.public_error(d.last_error),
        created_at=_utc(d.created_at) or d.created_at, delivered_at=_utc(d.delivered_at),
    )  # fmt: skip
