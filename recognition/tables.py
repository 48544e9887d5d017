"""The recognition service's state: consumers and keys, audit log, subscriptions, deliveries.

Declared on :class:`hub.db.Base`; the Alembic branch ``recognition`` creates them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base
from hub.models import BigId, utcnow


class Consumer(Base):
    """A department or portal allowed to call the API (接入方), with its scopes."""

    __tablename__ = "recognition_consumer"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: Scope strings, see :mod:`recognition.scopes`.
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: Requests per second its keys may make together (0: unthrottled), and at once; NULL: the defaults.
    rate_limit: Mapped[float | None] = mapped_column(Float)
    rate_burst: Mapped[int | None] = mapped_column(Integer)
    #: The department (of the service-item catalogue) its keys act for, and for no other; NULL: none.
    department: Mapped[str | None] = mapped_column(String(40))


class ApiKey(Base):
    """An API key of a consumer: only its id and a SHA-256 of its secret are kept; it may expire and be
    bound to the addresses it may be presented from."""

    __tablename__ = "recognition_api_key"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    consumer_id: Mapped[str] = mapped_column(ForeignKey("recognition_consumer.id"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: Refused from this moment on (``key_expired``); NULL: no expiry.
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: CIDRs the key may be presented from (``source_not_allowed`` elsewhere); NULL or empty: anywhere.
    sources: Mapped[list[str] | None] = mapped_column(JSON)


class ConsumerDestination(Base):
    """A destination an operator allowed a consumer's subscriptions to push to (允许的推送目的地).

    See :class:`connectors.egress.AllowedDestination`; ``reach`` is ``public`` or ``private``.
    """

    __tablename__ = "recognition_consumer_destination"
    __table_args__ = (
        UniqueConstraint(
            "consumer_id", "scheme", "host", "port", "path_prefix", name="uq_recognition_consumer_destination"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    consumer_id: Mapped[str] = mapped_column(
        ForeignKey("recognition_consumer.id", name="fk_recognition_consumer_destination_consumer"), index=True
    )
    scheme: Mapped[str] = mapped_column(String(5))
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer)
    path_prefix: Mapped[str] = mapped_column(String(300), default="/")
    reach: Mapped[str] = mapped_column(String(10), default="public")
    #: Who allowed it (the operator's account or ``cli``) and when.
    allowed_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEntry(Base):
    """One entry of the append-only, hash-chained audit log (审计日志); personal data masked."""

    __tablename__ = "recognition_audit"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    consumer: Mapped[str] = mapped_column(String(100))
    key_id: Mapped[str | None] = mapped_column(String(40))
    #: ``read``, ``verify``, ``file``, ``deliver``, ``subscribe``, ...
    action: Mapped[str] = mapped_column(String(40))
    resource: Mapped[str] = mapped_column(String(300))
    #: Masked holder code or licence id the action concerned.
    subject: Mapped[str | None] = mapped_column(String(200))
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    purpose: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's latest sequence number and hash: a cut-off tail is detected against it."""

    __tablename__ = "recognition_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditArchive(Base):
    """A run of audit entries moved to an archive file (审计归档): its range, chain ends and file hash.

    Rows are only added; the database lets an audit entry be deleted only once a row covers it.
    """

    __tablename__ = "recognition_audit_archive"

    first_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), unique=True)
    entries: Mapped[int] = mapped_column(Integer)
    #: The hash the first archived entry chains onto, and the last archived entry's hash (the chain head
    #: the entries left in the table go on from).
    first_prev_hash: Mapped[str] = mapped_column(String(64))
    last_hash: Mapped[str] = mapped_column(String(64))
    first_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    #: The file's name in the archive directory, its SHA-256 and size.
    file_name: Mapped[str] = mapped_column(String(200))
    file_sha256: Mapped[str] = mapped_column(String(64))
    file_bytes: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    archived_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Subscription(Base):
    """A department's subscription (订阅) to events, filtered by type and region."""

    __tablename__ = "recognition_subscription"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    consumer_id: Mapped[str | None] = mapped_column(String(40), index=True)
    #: ``api`` or ``yaml``.
    origin: Mapped[str] = mapped_column(String(10), default="api")
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    license_types: Mapped[list[str] | None] = mapped_column(JSON)
    regions: Mapped[list[str] | None] = mapped_column(JSON)
    #: ``webhook`` or ``soap``.
    channel: Mapped[str] = mapped_column(String(10))
    target_url: Mapped[str] = mapped_column(String(500))
    #: Webhook signing secret (``whsec_...``) for API subscriptions; YAML ones name an env variable.
    secret: Mapped[str | None] = mapped_column(String(200))
    secret_env: Mapped[str | None] = mapped_column(String(100))
    #: Events with an id above this one are delivered (a new subscription does not get history).
    start_event_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Delivery(Base):
    """One event to one subscriber (投递): at least once, in order per holder."""

    __tablename__ = "recognition_delivery"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_recognition_delivery_subscription_event"),
        Index("ix_recognition_delivery_queue", "subscription_id", "holder_key", "event_id"),
        Index("ix_recognition_delivery_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("recognition_subscription.id", name="fk_recognition_delivery_subscription")
    )
    event_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    event_type: Mapped[str] = mapped_column(String(80))
    #: Ordering key: the holder code, or ``event:<id>`` for events without a holder.
    holder_key: Mapped[str] = mapped_column(String(60))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    #: ``pending``, ``delivered``, ``dead``, ``skipped``.
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class FanoutMark(Base):
    """An outbox event already turned into deliveries (fan-out is idempotent and gap-safe)."""

    __tablename__ = "recognition_fanout"

    event_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    fanned_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Cursor(Base):
    """A named low-water mark (the fan-out's: every event at or below it is fanned out)."""

    __tablename__ = "recognition_cursor"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), default=0)


class ConsoleUser(Base):
    """A named operator account of the console (运维控制台账号): a person, with one role.

    Only a scrypt hash of the password is kept (:mod:`recognition.console_accounts`).
    """

    __tablename__ = "recognition_console_user"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    #: ``operator``, ``steward`` or ``supervisor``
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ConsoleSession(Base):
    """A signed-in console session, shared by every API process: only a SHA-256 of its cookie is kept."""

    __tablename__ = "recognition_console_session"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("recognition_console_user.id", name="fk_recognition_console_session_user"), index=True
    )
    #: the session's CSRF token, which every form of the session carries
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    #: signed out (or the account disabled) at
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ReviewDecision(Base):
    """A data steward's decision on an identity review item (人工复核决定), append-only.

    ``action``: ``linked`` (the record joined a candidate identity), ``rejected`` (it keeps its own),
    ``merge_requested`` (the record's identity and the candidate are two persons to be merged: waits for a
    second steward), ``merged`` (that approval, by another steward; ``refers_to`` names the request),
    ``split`` (a later decision undoing ``refers_to``). ``moves`` lists the licences the decision moves to
    their right holder (``license_id``, ``from_holder``, ``to_holder``, then the new ``version``);
    ``moved_at`` is set once every move is signed and stored (:mod:`recognition.identity_review`).
    """

    __tablename__ = "recognition_review_decision"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(BigId, index=True)
    action: Mapped[str] = mapped_column(String(20))
    entity_kind: Mapped[str] = mapped_column(String(12))
    #: the identity the record (or the merged-away identity) leaves, and the one it joins
    from_code: Mapped[str | None] = mapped_column(String(40))
    into_code: Mapped[str | None] = mapped_column(String(40))
    #: who decided (``cli:<user>``, ``consumer:<name>``, ``console:<name>``) and why
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    refers_to: Mapped[int | None] = mapped_column(BigId)
    merge_id: Mapped[int | None] = mapped_column(BigId)
    moves: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    moved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
