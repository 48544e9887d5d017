"""Subscriptions (订阅): which events a department receives, by API or declared in YAML.

A YAML subscription (``recognition/subscriptions.yaml``) names its webhook secret or SOAP
password by environment variable, never in the file; :func:`sync_yaml` makes the table
match the file (added, changed, removed) and is idempotent. No subscription URL carries
credentials (``user:password@``). An API subscription's URL must be covered by a destination
an operator allowed its consumer (:mod:`recognition.destinations`); YAML ones are operators' own.

Filters (:func:`matches`): event types (``license.*`` for a kind), licence types (a licence or
approval event must carry one of them) and regions — 2-, 4- or 6-digit prefixes of the event's
region (:mod:`hub.regions`: the holder's, else the issuer's division; ``330300`` covers the
whole city). Which events a consumer may receive at all is its scopes' business
(:func:`recognition.scopes.event_scope`), checked when subscribing and on every delivery.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from connectors.egress import DestinationRefused, has_credentials
from connectors.webhook import generate_secret
from hub import safe_yaml
from hub.models import OutboxEvent, utcnow
from hub.regions import region_prefix
from recognition import destinations
from recognition.schemas import REGION_PATTERN, Channel, EventType
from recognition.scopes import LICENCE_EVENT_KINDS
from recognition.tables import Delivery, Subscription

EVENT_TYPES = frozenset(e.value for e in EventType)
#: Events only operators' declared subscriptions carry: the applicant's notices (短信告知) go to the
#: SMS gateway (channel ``sms``), never to a consumer's subscription.
DECLARED_EVENT_TYPES = frozenset({"case.notice"})
SUBSCRIPTION_DELETED = "subscription deleted"
CREDENTIALS_IN_URL = "credentials in a subscription URL are not accepted; name secrets by reference"
_REGION = re.compile(REGION_PATTERN)


class SubscriptionError(ValueError):
    pass


class DestinationNotAllowed(SubscriptionError):
    """The URL is not covered by a destination an operator allowed the consumer."""


def check_url(url: str) -> str:
    if has_credentials(url):
        raise SubscriptionError(CREDENTIALS_IN_URL)
    return url


def check_regions(regions: Sequence[str] | None) -> list[str] | None:
    bad = [r for r in regions or [] if not _REGION.match(r)]
    if bad:
        raise SubscriptionError(f"regions are 2-, 4- or 6-digit division code prefixes: {bad}")
    return list(regions) if regions else None


class YamlSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{1,38}$")
    name: str
    event_types: list[str] = Field(min_length=1)
    license_types: list[str] | None = None
    regions: list[str] | None = None
    #: ``sms``: the SMS gateway (declared here only), its token in ``secret_env``
    channel: Literal["webhook", "soap", "sms"] = Channel.webhook.value
    url: str
    secret_env: str | None = None

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: str) -> str:
        return check_url(url)

    @field_validator("regions")
    @classmethod
    def _regions(cls, regions: list[str] | None) -> list[str] | None:
        return check_regions(regions)


def matches(sub: Subscription, event: OutboxEvent) -> bool:
    """Does ``event`` go to ``sub``? Type, licence type and region filters; no history before it."""
    if event.id <= sub.start_event_id:
        return False
    if event.event_type not in sub.event_types and not any(
        t.endswith(".*") and event.event_type.startswith(t[:-1]) for t in sub.event_types
    ):
        return False
    if (
        sub.license_types
        and event.event_type.partition(".")[0] in LICENCE_EVENT_KINDS
        and event.license_type_code not in sub.license_types
    ):
        return False  # a licence event without a type is no event of the filtered types
    if sub.regions:
        region = event.region_code or ""
        if not region or not any(region.startswith(region_prefix(r)) for r in sub.regions):
            return False
    return True


def _latest_event_id(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(OutboxEvent.id), 0))) or 0)


def create(
    session: Session,
    *,
    name: str,
    event_types: Sequence[str],
    url: str,
    channel: str = "webhook",
    license_types: Sequence[str] | None = None,
    regions: Sequence[str] | None = None,
    consumer_id: str | None = None,
    from_event_id: int | None = None,
) -> Subscription:
    """A new API subscription; a webhook one gets a fresh signing secret (returned once by the API).

    A consumer's subscription must go to a destination allowed for it (:class:`DestinationNotAllowed`);
    one without a consumer is operators' own (code or YAML) and trusted as declared, like YAML ones.
    """
    unknown = sorted(set(event_types) - EVENT_TYPES)
    if unknown:
        raise SubscriptionError(f"unknown event types: {unknown}")
    check_url(url)
    regions = check_regions(regions)
    if consumer_id is not None:
        try:
            destinations.policy_for(session, consumer_id).check_url(url)
        except DestinationRefused as exc:
            raise DestinationNotAllowed(str(exc)) from exc
    sub = Subscription(
        id="s" + uuid.uuid4().hex[:12],
        name=name,
        consumer_id=consumer_id,
        origin="api",
        event_types=list(event_types),
        license_types=list(license_types) if license_types else None,
        regions=list(regions) if regions else None,
        channel=Channel(channel).value,
        target_url=url,
        secret=generate_secret() if channel == Channel.webhook else None,
        start_event_id=_latest_event_id(session) if from_event_id is None else from_event_id,
        created_at=utcnow(),
    )
    session.add(sub)
    session.flush()
    return sub


def active(session: Session) -> list[Subscription]:
    return list(
        session.scalars(select(Subscription).where(Subscription.deleted_at.is_(None)).order_by(Subscription.id))
    )


def list_for(session: Session, consumer_id: str | None, *, limit: int, offset: int) -> list[Subscription]:
    stmt = select(Subscription).where(Subscription.deleted_at.is_(None))
    if consumer_id is not None:
        stmt = stmt.where(Subscription.consumer_id == consumer_id)
    return list(session.scalars(stmt.order_by(Subscription.created_at, Subscription.id).limit(limit).offset(offset)))


def delete(session: Session, subscription_id: str, consumer_id: str | None) -> bool:
    """Stop a subscription (kept, marked deleted, so its deliveries stay explainable)."""
    sub = session.get(Subscription, subscription_id)
    if sub is None or sub.deleted_at is not None:
        return False
    if consumer_id is not None and sub.consumer_id != consumer_id:
        return False
    sub.deleted_at = utcnow()
    _cancel_open_deliveries(session, sub.id)
    return True


def _cancel_open_deliveries(session: Session, subscription_id: str) -> None:
    """A stopped subscription gets nothing more: its pending and dead-lettered deliveries are skipped."""
    session.execute(
        update(Delivery)
        .where(Delivery.subscription_id == subscription_id, Delivery.status.in_(["pending", "dead"]))
        .values(status="skipped", last_error=SUBSCRIPTION_DELETED)
    )


def load_yaml(path: Path) -> list[YamlSubscription]:
    if not path.exists():
        return []
    raw: Any = safe_yaml.load_file(path) or {}
    items = raw.get("subscriptions") or []
    subs = [YamlSubscription.model_validate(item) for item in items]
    for sub in subs:
        known = EVENT_TYPES | DECLARED_EVENT_TYPES
        unknown = sorted(set(sub.event_types) - known - {t for t in sub.event_types if t.endswith(".*")})
        if unknown:
            raise SubscriptionError(f"{path}: subscription {sub.id}: unknown event types {unknown}")
    return subs


def sync_yaml(session: Session, path: Path) -> dict[str, int]:
    """Make the YAML-declared subscriptions in the table match ``path``."""
    declared = {s.id: s for s in load_yaml(path)}
    existing = {s.id: s for s in session.scalars(select(Subscription).where(Subscription.origin == "yaml"))}
    counts = {"added": 0, "updated": 0, "removed": 0}
    latest = _latest_event_id(session)
    for sid, spec in declared.items():
        values = {
            "name": spec.name,
            "event_types": list(spec.event_types),
            "license_types": spec.license_types,
            "regions": spec.regions,
            "channel": spec.channel,
            "target_url": spec.url,
            "secret_env": spec.secret_env,
        }
        row = existing.get(sid)
        if row is None:
            session.add(Subscription(id=sid, origin="yaml", start_event_id=latest, created_at=utcnow(), **values))
            counts["added"] += 1
        else:
            changed = any(getattr(row, k) != v for k, v in values.items()) or row.deleted_at is not None
            if changed:
                for k, v in values.items():
                    setattr(row, k, v)
                row.deleted_at = None
                counts["updated"] += 1
    for sid, row in existing.items():
        if sid not in declared and row.deleted_at is None:
            row.deleted_at = utcnow()
            _cancel_open_deliveries(session, sid)
            counts["removed"] += 1
    session.flush()
    return counts
