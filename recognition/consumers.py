"""Consumers (接入方) — the departments and portals calling the API — and their keys."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import utcnow
from recognition import keys
from recognition.scopes import ScopeSet
from recognition.tables import ApiKey, Consumer


class ConsumerError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    """Who is calling: the consumer behind a valid, unrevoked key."""

    consumer_id: str
    name: str
    key_id: str
    scopes: ScopeSet


def add_consumer(session: Session, name: str, scopes: Iterable[str]) -> tuple[Consumer, str]:
    """Create a consumer with one key; returns the consumer and the key token (shown once)."""
    parsed = ScopeSet.parse(scopes)
    if session.scalar(select(Consumer).where(Consumer.name == name)) is not None:
        raise ConsumerError(f"consumer {name!r} exists")
    consumer = Consumer(id="c" + uuid.uuid4().hex[:12], name=name, scopes=list(parsed.scopes), created_at=utcnow())
    session.add(consumer)
    session.flush()
    return consumer, _issue_key(session, consumer)


def _issue_key(session: Session, consumer: Consumer) -> str:
    key = keys.new_key()
    session.add(ApiKey(id=key.key_id, consumer_id=consumer.id, secret_sha256=key.secret_sha256, created_at=utcnow()))
    session.flush()
    return key.token


def get_consumer(session: Session, name: str) -> Consumer:
    consumer = session.scalar(select(Consumer).where(Consumer.name == name))
    if consumer is None:
        raise ConsumerError(f"no consumer {name!r}")
    return consumer


def list_consumers(session: Session) -> list[tuple[Consumer, list[ApiKey]]]:
    out = []
    for consumer in session.scalars(select(Consumer).order_by(Consumer.name)):
        key_rows = list(
            session.scalars(select(ApiKey).where(ApiKey.consumer_id == consumer.id).order_by(ApiKey.created_at))
        )
        out.append((consumer, key_rows))
    return out


def rotate_key(session: Session, name: str, *, keep_old: bool = False) -> str:
    """Issue a new key; the old keys are revoked unless ``keep_old`` (a grace period for the switch)."""
    consumer = get_consumer(session, name)
    if consumer.revoked_at is not None:
        raise ConsumerError(f"consumer {name!r} is revoked")
    if not keep_old:
        _revoke_keys(session, consumer.id)
    return _issue_key(session, consumer)


def revoke(session: Session, name: str, *, key_id: str | None = None) -> int:
    """Revoke one key, or the consumer and all its keys; returns how many keys were revoked."""
    consumer = get_consumer(session, name)
    if key_id is not None:
        key = session.get(ApiKey, key_id)
        if key is None or key.consumer_id != consumer.id:
            raise ConsumerError(f"consumer {name!r} has no key {key_id!r}")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            return 1
        return 0
    consumer.revoked_at = consumer.revoked_at or utcnow()
    return _revoke_keys(session, consumer.id)


def _revoke_keys(session: Session, consumer_id: str) -> int:
    now = utcnow()
    count = 0
    for key in session.scalars(select(ApiKey).where(ApiKey.consumer_id == consumer_id, ApiKey.revoked_at.is_(None))):
        key.revoked_at = now
        count += 1
    return count


def set_scopes(session: Session, name: str, scopes: Iterable[str]) -> Consumer:
    consumer = get_consumer(session, name)
    consumer.scopes = list(ScopeSet.parse(scopes).scopes)
    return consumer


def authenticate(session: Session, token: str, *, now: dt.datetime | None = None) -> Principal | None:
    """The principal behind ``token``, or ``None`` if the key is unknown, wrong or revoked."""
    parsed = keys.parse_key(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    row = session.execute(
        select(ApiKey, Consumer).join(Consumer, Consumer.id == ApiKey.consumer_id).where(ApiKey.id == key_id)
    ).first()
    if row is None:
        return None
    key, consumer = row
    if key.revoked_at is not None or consumer.revoked_at is not None:
        return None
    if not keys.matches(secret, key.secret_sha256):
        return None
    return Principal(consumer.id, consumer.name, key.id, ScopeSet.parse(consumer.scopes))
