"""Consumers (接入方) — the departments and portals calling the API — and their keys.

A key may carry an expiry and a binding to the addresses it may be presented from; a consumer
may carry its own rate limit (see :mod:`recognition.throttle`, the defaults in
:class:`recognition.config.RecognitionSettings`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from cases.catalogue import load_catalogue
from hub.models import utcnow
from recognition import keys
from recognition.clientaddr import IPAddress, Networks, contains, parse_networks
from recognition.scopes import ScopeSet
from recognition.tables import ApiKey, Consumer


class ConsumerError(ValueError):
    pass


class KeyRefused(Exception):
    """A known, unrevoked key that may not be used now or from here."""


class KeyExpired(KeyRefused):
    pass


class SourceNotAllowed(KeyRefused):
    pass


@dataclass(frozen=True)
class Principal:
    """Who is calling: the consumer behind a valid, unrevoked key, with the key's expiry and binding."""

    consumer_id: str
    name: str
    key_id: str
    scopes: ScopeSet
    expires_at: dt.datetime | None = None
    sources: Networks = ()
    #: The consumer's own rate limit (requests per second, 0: unthrottled) and burst; None: the defaults.
    rate_limit: float | None = None
    rate_burst: int | None = None
    #: The department its keys act for (and for no other); ``None``: a consumer of no department.
    department: str | None = None

    def expired(self, now: dt.datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def allowed_from(self, address: IPAddress | None) -> bool:
        return not self.sources or contains(self.sources, address)

    def check(self, now: dt.datetime, address: IPAddress | None) -> None:
        """Raise :class:`KeyExpired` or :class:`SourceNotAllowed` if the key may not be used now, from ``address``."""
        if self.expired(now):
            raise KeyExpired("the API key has expired")
        if not self.allowed_from(address):
            raise SourceNotAllowed("the API key may not be used from this address")


def parse_expiry(text: str, timezone: str) -> dt.datetime:
    """When a key given ``--expires TEXT`` stops working: a date is the end of that day where the hub
    serves (``HUB_SOURCE_TIMEZONE``); a time without an offset is read there too.

    >>> parse_expiry("2027-06-30", "Asia/Shanghai").isoformat()
    '2027-06-30T16:00:00+00:00'
    >>> parse_expiry("2027-06-30T12:00:00+00:00", "Asia/Shanghai").isoformat()
    '2027-06-30T12:00:00+00:00'
    """
    zone = ZoneInfo(timezone)
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            at = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
        else:
            at = dt.datetime.fromisoformat(text)
            at = at if at.tzinfo else at.replace(tzinfo=zone)
    except ValueError as exc:
        raise ConsumerError(f"expiry {text!r}: expected YYYY-MM-DD or an ISO date and time") from exc
    return at.astimezone(dt.UTC)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC


def _sources(values: Iterable[str]) -> list[str]:
    try:
        return [str(n) for n in parse_networks(values)]
    except ValueError as exc:
        raise ConsumerError(f"source: {exc}") from exc


def _future(expires_at: dt.datetime | None) -> dt.datetime | None:
    """An expiry to set: in UTC, and not already past."""
    if expires_at is None:
        return None
    at = (expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    if at <= utcnow():
        raise ConsumerError(f"expiry {at.isoformat()} is already past (to stop a key now, revoke it)")
    return at


def _department(department: str | None) -> None:
    """A department a consumer may be bound to: one the service-item catalogue declares."""
    if department is None:
        return
    known = load_catalogue().departments
    if department not in known:
        raise ConsumerError(f"unknown department {department!r} (one of {', '.join(sorted(known))})")


def _rate(rate_limit: float | None, rate_burst: int | None) -> None:
    if rate_limit is not None and rate_limit < 0:
        raise ConsumerError("rate limit: requests per second, 0 for unthrottled")
    if rate_burst is not None and rate_burst < 1:
        raise ConsumerError("burst: at least 1")


def add_consumer(
    session: Session,
    name: str,
    scopes: Iterable[str],
    *,
    expires_at: dt.datetime | None = None,
    sources: Iterable[str] = (),
    rate_limit: float | None = None,
    rate_burst: int | None = None,
    department: str | None = None,
) -> tuple[Consumer, str]:
    """Create a consumer with one key; returns the consumer and the key token (shown once).

    ``department`` binds it to a department of the service-item catalogue: its keys act for
    that department only (they report that department's steps and read its cases).
    """
    parsed = ScopeSet.parse(scopes)
    _rate(rate_limit, rate_burst)
    _department(department)
    if session.scalar(select(Consumer).where(Consumer.name == name)) is not None:
        raise ConsumerError(f"consumer {name!r} exists")
    consumer = Consumer(
        id="c" + uuid.uuid4().hex[:12], name=name, scopes=list(parsed.scopes), created_at=utcnow(),
        rate_limit=rate_limit, rate_burst=rate_burst, department=department,
    )  # fmt: skip
    session.add(consumer)
    session.flush()
    return consumer, _issue_key(session, consumer, expires_at=_future(expires_at), sources=_sources(sources))


def _issue_key(
    session: Session, consumer: Consumer, *, expires_at: dt.datetime | None = None, sources: list[str] | None = None
) -> str:
    key = keys.new_key()
    session.add(
        ApiKey(
            id=key.key_id, consumer_id=consumer.id, secret_sha256=key.secret_sha256, created_at=utcnow(),
            expires_at=expires_at, sources=sources or None,
        )
    )  # fmt: skip
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


def active_keys(session: Session, consumer_id: str) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey)
            .where(ApiKey.consumer_id == consumer_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at)
        )
    )


def rotate_key(
    session: Session,
    name: str,
    *,
    keep_old: bool = False,
    expires_at: dt.datetime | None = None,
    sources: Iterable[str] | None = None,
) -> str:
    """Issue a new key; the old keys are revoked unless ``keep_old`` (a grace period for the switch).

    The new key is bound to ``sources``, or, when not given, to the newest active key's sources
    (where a consumer calls from does not change with its key); an expiry is never inherited.
    """
    consumer = get_consumer(session, name)
    if consumer.revoked_at is not None:
        raise ConsumerError(f"consumer {name!r} is revoked")
    active = active_keys(session, consumer.id)
    bound = _sources(sources) if sources is not None else list((active[-1].sources or []) if active else [])
    expires_at = _future(expires_at)
    if not keep_old:
        _revoke_keys(session, consumer.id)
    return _issue_key(session, consumer, expires_at=expires_at, sources=bound)


_UNSET: object = object()


def set_key_limits(
    session: Session,
    name: str,
    *,
    key_id: str | None = None,
    expires_at: dt.datetime | object | None = _UNSET,
    sources: Iterable[str] | object = _UNSET,
) -> list[ApiKey]:
    """Change the expiry (``None``: none) and the source binding (empty: anywhere) of one key, or of every
    active key of the consumer; what is not given is left as it is. Returns the keys changed."""
    consumer = get_consumer(session, name)
    if key_id is not None:
        key = session.get(ApiKey, key_id)
        if key is None or key.consumer_id != consumer.id:
            raise ConsumerError(f"consumer {name!r} has no key {key_id!r}")
        targets = [key]
    else:
        targets = active_keys(session, consumer.id)
    if expires_at is not _UNSET:
        expiry = _future(expires_at)  # type: ignore[arg-type]
        for key in targets:
            key.expires_at = expiry
    if sources is not _UNSET:
        bound = _sources(sources) or None  # type: ignore[arg-type]
        for key in targets:
            key.sources = bound
    return targets


def set_rate_limit(session: Session, name: str, rate_limit: float | None, rate_burst: int | None = None) -> Consumer:
    """A consumer's own rate limit (requests per second, 0: unthrottled) and burst; ``None``: the defaults."""
    _rate(rate_limit, rate_burst)
    consumer = get_consumer(session, name)
    consumer.rate_limit, consumer.rate_burst = rate_limit, rate_burst
    return consumer


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


def identify(session: Session, token: str) -> Principal | None:
    """The principal behind ``token``, or ``None`` if the key is unknown, wrong or revoked.

    Its expiry and binding are not checked here: the API caches principals briefly and checks
    them on every request (:meth:`Principal.check`), so a cached key stops at its expiry.
    """
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
    return Principal(
        consumer.id, consumer.name, key.id, ScopeSet.parse(consumer.scopes), expires_at=_utc(key.expires_at),
        sources=parse_networks(key.sources or ()), rate_limit=consumer.rate_limit, rate_burst=consumer.rate_burst,
        department=consumer.department,
    )  # fmt: skip


def authenticate(
    session: Session, token: str, *, now: dt.datetime | None = None, address: IPAddress | object | None = _UNSET
) -> Principal | None:
    """The principal behind ``token`` if the key may be used at ``now`` from ``address``, else ``None``.

    Unknown, wrong, revoked and expired keys are refused; so is a bound key presented from
    elsewhere. Without ``address`` (no network in sight, e.g. a command) the binding is not checked.
    """
    principal = identify(session, token)
    if principal is None or principal.expired(now or utcnow()):
        return None
    if address is not _UNSET and not principal.allowed_from(address):  # type: ignore[arg-type]
        return None
    return principal
