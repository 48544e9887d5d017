"""Subscriptions (订阅): a consumer subscribes its webhook or SOAP notice operation to events it may
receive; a webhook's signing secret is returned once. Operators (``deliveries:admin``) see all."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from connectors.egress import redact_credentials
from recognition import subscriptions as subs_mod
from recognition import trail
from recognition.dependencies import CallerDep, Limit, Offset, SessionDep, next_offset, record, require
from recognition.problems import ProblemError, destination_not_allowed, missing_scope, not_found, responses
from recognition.schemas import SubscriptionIn, SubscriptionOut, SubscriptionPage

router = APIRouter()


def subscription_out(sub: Any, *, with_secret: bool = False) -> SubscriptionOut:
    created = sub.created_at if sub.created_at.tzinfo else sub.created_at.replace(tzinfo=dt.UTC)
    return SubscriptionOut(
        id=sub.id, name=sub.name, origin=sub.origin, event_types=list(sub.event_types),
        license_types=sub.license_types, regions=sub.regions, channel=sub.channel,
        url=redact_credentials(sub.target_url),  # rows stored before credentials were refused
        created_at=created, secret=sub.secret if with_secret else None,
    )  # fmt: skip


@router.post(
    "/v1/subscriptions",
    response_model=SubscriptionOut,
    status_code=201,
    responses=responses(401, 403, 503),
    tags=["push"],
    summary="Subscribe to events (订阅); a webhook subscription's signing secret is returned once",
)
async def create_subscription(
    request: Request, c: CallerDep, session: SessionDep, body: SubscriptionIn
) -> SubscriptionOut:
    require(c, "subscriptions:manage")
    event_types = [e.value for e in body.event_types]
    # every event type needs the scope its events are released under (licence type, identities:read)
    missing = c.principal.scopes.missing_for_subscription(event_types, body.license_types)
    if missing is not None:
        await record(request, c, "subscribe", subject=None, outcome="refused", detail={"missing_scope": missing})
        raise missing_scope(missing)
    error: subs_mod.SubscriptionError | None = None
    try:
        sub = subs_mod.create(
            session, name=body.name, event_types=event_types, url=str(body.url), channel=body.channel.value,
            license_types=body.license_types, regions=body.regions, consumer_id=c.principal.consumer_id,
        )  # fmt: skip
        out = subscription_out(sub, with_secret=True)
        session.commit()
    except subs_mod.SubscriptionError as exc:
        error = exc
    if isinstance(error, subs_mod.DestinationNotAllowed):
        await record(request, c, "subscribe", subject=None, outcome="refused",
                     detail={"reason": "destination_not_allowed"})  # fmt: skip
        raise destination_not_allowed(str(error)) from error
    if error is not None:
        raise ProblemError(422, "invalid_subscription", "Invalid subscription", str(error)) from error
    await record(request, c, "subscribe", subject=out.id, detail={"event_types": out.event_types})
    return out


@router.get("/v1/subscriptions", response_model=SubscriptionPage, responses=responses(401, 403, 503), tags=["push"])
async def list_subscriptions(
    request: Request, c: CallerDep, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> SubscriptionPage:
    require(c, "subscriptions:manage")
    owner = None if c.principal.scopes.has("deliveries:admin") else c.principal.consumer_id
    rows = subs_mod.list_for(session, owner, limit=limit, offset=offset)
    items = [subscription_out(s) for s in rows]
    await record(request, c, "read", subject="subscriptions", detail={"count": len(items)})
    return SubscriptionPage(items=items, limit=limit, offset=offset, next_offset=next_offset(offset, limit, len(items)))


@router.delete(
    "/v1/subscriptions/{subscription_id}",
    status_code=204,
    response_class=Response,
    responses=responses(401, 403, 404, 503),
    tags=["push"],
)
async def delete_subscription(
    request: Request,
    c: CallerDep,
    session: SessionDep,
    subscription_id: Annotated[str, Path(min_length=1, max_length=40)],
) -> Response:
    require(c, "subscriptions:manage")
    owner = None if c.principal.scopes.has("deliveries:admin") else c.principal.consumer_id
    done = subs_mod.delete(session, subscription_id, owner)
    session.commit()
    if not done:
        raise not_found(f"subscription {trail.mask_param('subscription_id', subscription_id)}")
    await record(request, c, "unsubscribe", subject=subscription_id)
    return Response(status_code=204)
