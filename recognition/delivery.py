"""The delivery worker (推送投递): outbox events → per-subscription deliveries → pushed.

At least once, deduplicated downstream by the idempotency key, in order per holder:
deliveries of one subscription and one holder form a queue, and only the head of a queue
is ever in flight. A delivery that fails is retried with exponential backoff; after
``max_attempts`` it is dead-lettered, and the rest of its queue is *held back* until an
operator replays or skips it. ``run_once`` is one round (standalone, ``hub deliver``, or
an Airflow task); ``run_loop`` repeats rounds until stopped. The worker decides what goes
where and when; the wire is the destination's connector (``write`` of the webhook or the SOAP
connector, through :class:`recognition.push.Pushers`).

Every delivery asks again whether its consumer may receive the event (its scopes, see
:func:`recognition.scopes.event_scope`; a revoked consumer receives nothing): one it may no
longer see is *skipped* with the reason recorded and audited, not sent. A push goes only to
the destinations allowed for the consumer (:mod:`recognition.destinations`), checked on the
URL and on the address connected to. Consumers see a delivery's error only as the receiver's
answer or a class of failure (:func:`public_error`); operators see all of it.

Several workers may run at once on one PostgreSQL database (scaled mode): fan-out holds the lock
:data:`FANOUT_LOCK` (:mod:`hub.locks`), so an event is fanned out once; a round locks the
deliveries it chose (``FOR UPDATE SKIP LOCKED``) and keeps them locked, in one transaction, until
their outcomes are recorded — another worker passes them by, and a worker that dies releases
them with its connection, so they are sent again at once (at least once, never twice by two
live workers). SQLite has one worker: its round reads, pushes and records in three transactions.

One job, one module: the delivery queue — fanning events out and sending the heads of queues;
the wire is :mod:`recognition.push`, the operators' replay, skip and listing :mod:`recognition.delivery_ops`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, aliased

from cases.notices import NOTICE_EVENT, contacts
from connectors.egress import DESTINATION_REFUSED, DestinationPolicy, DestinationRefused
from connectors.webhook import PushResult
from hub.db import get_engine, session_scope
from hub.killpoints import kill_point
from hub.locks import hold_for_transaction
from hub.masking import Party, Personal, mask_fields
from hub.models import OutboxEvent, utcnow
from recognition import audit, destinations
from recognition import subscriptions as subs_mod
from recognition.config import RecognitionSettings
from recognition.push import NO_SECRET, NO_TOKEN, NOT_ACCEPTED, SMS, Pushers
from recognition.scopes import DEPARTMENT_CASE_EVENTS, ScopeSet, event_scope
from recognition.tables import Consumer, Cursor, Delivery, FanoutMark, Subscription

log = logging.getLogger(__name__)

PENDING, DELIVERED, DEAD, SKIPPED = "pending", "delivered", "dead", "skipped"
UNFINISHED = (PENDING, DEAD)
FANOUT_CURSOR = "fanout"
#: The lock fan-out holds until its transaction ends (:mod:`hub.locks`).
FANOUT_LOCK = "recognition.fanout"


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retry policy: ``max_attempts`` tries, waits of base·2^(n-1) seconds capped at ``backoff_max``."""

    max_attempts: int = 8
    backoff_base: float = 2.0
    backoff_max: float = 3600.0
    batch_size: int = 500
    concurrency: int = 16
    #: Events newer than this may still be joined by ones from slower transactions with lower ids.
    fanout_grace: dt.timedelta = dt.timedelta(minutes=5)

    @classmethod
    def from_settings(cls, s: RecognitionSettings | None = None) -> DeliveryPolicy:
        s = s or RecognitionSettings()
        return cls(
            max_attempts=s.delivery_max_attempts,
            backoff_base=s.delivery_backoff_base_seconds,
            backoff_max=s.delivery_backoff_max_seconds,
            batch_size=s.delivery_batch_size,
            concurrency=s.delivery_concurrency,
        )

    def backoff(self, attempts: int) -> dt.timedelta:
        """Wait after the ``attempts``-th failed try.

        >>> DeliveryPolicy(backoff_base=2, backoff_max=10).backoff(1).total_seconds()
        2.0
        >>> DeliveryPolicy(backoff_base=2, backoff_max=10).backoff(4).total_seconds()
        10.0
        """
        return dt.timedelta(seconds=min(self.backoff_max, self.backoff_base * 2 ** max(0, attempts - 1)))


@dataclass
class RunReport:
    fanned_out: int = 0
    created: int = 0
    attempted: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0

    def __add__(self, other: RunReport) -> RunReport:
        return RunReport(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, ...]:
        return (self.fanned_out, self.created, self.attempted, self.delivered, self.failed, self.dead, self.skipped)


# Reasons the hub itself records (shown to consumers as they are, see public_error).
MISSING = "subscription or event missing"
CONSUMER_REVOKED = "consumer revoked"
NOT_RELEASED = "not released"  # + ": the consumer lacks <scope>"
CONNECTION_FAILED = "connection failed"
SOAP_FAULT = "SOAP fault"
HUB_REASONS = frozenset({NO_SECRET, NO_TOKEN, MISSING, CONSUMER_REVOKED, subs_mod.SUBSCRIPTION_DELETED, NOT_ACCEPTED})


@dataclass
class Target:
    """Where and how one subscription is pushed (secrets resolved), and what its consumer may receive."""

    subscription_id: str
    channel: str
    url: str
    secret: str | None
    mask_personal: bool
    #: The destinations the push may use: the consumer's allowed ones, or the URL as operators declared it.
    policy: DestinationPolicy = field(default_factory=DestinationPolicy)
    #: The consumer's scopes; ``None`` for a subscription operators declared (subscriptions.yaml).
    scopes: ScopeSet | None = None
    #: Set when nothing may go to this subscription any more (its consumer was revoked).
    refusal: str | None = None
    #: The department the consumer is bound to (it receives that department's case events only).
    department: str | None = None

    def withheld(self, event: OutboxEvent) -> str | None:
        """Why ``event`` must not go to this subscription, or ``None`` when it may."""
        if self.refusal is not None:
            return self.refusal
        if (event.event_type == NOTICE_EVENT) != (self.channel == SMS):
            return f"{NOT_RELEASED}: applicant notices go to the SMS gateway only, and only they"
        addressee = addressed_to(event)
        if event.event_type in DEPARTMENT_CASE_EVENTS:
            if self.scopes is None:
                return f"{NOT_RELEASED}: case events go to department consumers' subscriptions only"
            if self.department is not None and self.department != addressee:
                return f"{NOT_RELEASED}: addressed to another department"
        if self.scopes is None or self.scopes.may_receive(event.event_type, event.license_type_code, addressee):
            return None
        needed = event_scope(event.event_type, event.license_type_code, addressee)
        return f"{NOT_RELEASED}: the consumer lacks {needed}" if needed else f"{NOT_RELEASED}: no scope releases it"


def public_error(error: str | None) -> str | None:
    """A delivery's error as its consumer sees it: the receiver's answer (HTTP status, SOAP fault
    code), the hub's own reason, or only the class of a network failure — never a host, port or errno.

    >>> [public_error(e) for e in ("HTTP 503", "ConnectError: [Errno 111] Connection refused", "timeout: ReadTimeout")]
    ['HTTP 503', 'connection failed', 'timeout']
    >>> public_error("destination refused: hooks.example:443 resolves to 10.0.0.7 (private): not an allowed address")
    'destination not allowed'
    >>> public_error("SOAP fault wsse:FailedAuthentication: The security token could not be authenticated")
    'SOAP fault wsse:FailedAuthentication'
    >>> public_error("not released: the consumer lacks identities:read")
    'not released: the consumer lacks identities:read'
    """
    if error is None:
        return None
    if re.fullmatch(r"HTTP [0-9]{3}", error):
        return error
    if error.startswith("timeout"):
        return "timeout"
    if error.startswith(DESTINATION_REFUSED):
        return "destination not allowed"
    if error.startswith(SOAP_FAULT):
        code = error[len(SOAP_FAULT) :].split(": ", 1)[0].strip()  # the receiver's fault code, not its text
        return f"{SOAP_FAULT} {code}" if re.fullmatch(r"[\w:.-]{1,60}", code) else SOAP_FAULT
    if error in HUB_REASONS or error.startswith(NOT_RELEASED + ":"):
        return error
    return CONNECTION_FAILED


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def event_message(event: OutboxEvent, *, mask_personal: bool) -> dict[str, Any]:
    """The pushed message (Standard Webhooks payload shape: ``type``, ``timestamp``, ``data``)."""
    data = dict(event.payload or {})
    if mask_personal:
        data = mask_payload(data)
    return {
        "type": event.event_type,
        "timestamp": _aware(event.created_at).astimezone(dt.UTC).isoformat(),
        "event_id": event.id,
        "idempotency_key": event.idempotency_key,
        "subject": event.subject,
        "region_code": event.region_code,
        "data": data,
    }


#: the personal-data kind of every event payload field that has one (the events' schema);
#: any other value is scrubbed (ids and phones by shape)
PAYLOAD_KINDS: dict[str, Personal] = {
    "holder_code": Personal.CODE,
    "canonical_code": Personal.CODE,
    "merged_code": Personal.CODE,
    "split_code": Personal.CODE,
    "merged": Personal.CODE,
    "legacy_codes": Personal.CODE,
    "resident_id": Personal.RESIDENT_ID,
    "holder_name": Personal.PARTY_NAME,
}


def mask_payload(data: dict[str, Any]) -> dict[str, Any]:
    """An event payload with personal data masked (for subscribers without ``personal:read``).

    >>> mask_payload({"holder_kind": "person", "holder_code": "330322198001011231", "holder_name": "李小龙"})
    {'holder_kind': 'person', 'holder_code': '330322********1231', 'holder_name': '李**'}
    >>> mask_payload({"entity_kind": "enterprise", "canonical_code": "91330322MA2C8XYZ1K"})["canonical_code"]
    '91330322MA2C8XYZ1K'
    >>> mask_payload({"canonical_code": "330322198001011231"})["canonical_code"]
    '330322********1231'
    >>> mask_payload({"holder_kind": "enterprise", "holder_code": "92330322MA2C8XYD8X", "holder_name": "张三小吃店"})
    {'holder_kind': 'enterprise', 'holder_code': '92330322MA2C8XYD8X', 'holder_name': '张****'}
    """
    kind = data.get("holder_kind") or data.get("entity_kind")
    code = data.get("holder_code") or data.get("canonical_code")
    return mask_fields(data, PAYLOAD_KINDS, party=Party(kind, code if isinstance(code, str) else None))


def holder_key(event: OutboxEvent) -> str:
    """The queue an event waits in (per subscription): its holder's, or its case's for case
    events — a case's dead letter holds back that case only, never its holder's licences."""
    if event.event_type.startswith("case."):
        return f"case:{event.subject}"
    return event.holder_code or f"event:{event.id}"


def addressed_to(event: OutboxEvent) -> str | None:
    """The department a case event is addressed to (``case.dispatched``), else ``None``."""
    if event.event_type not in DEPARTMENT_CASE_EVENTS:
        return None
    department = (event.payload or {}).get("department")
    return department if isinstance(department, str) else None


# -- fan-out ----------------------------------------------------------------------------------------
def _cursor(session: Session) -> int:
    row = session.get(Cursor, FANOUT_CURSOR)
    return int(row.value) if row is not None else 0


def fan_out(session: Session, *, limit: int = 2000, grace: dt.timedelta = dt.timedelta(minutes=5)) -> tuple[int, int]:
    """Turn new outbox events into deliveries (in the caller's transaction); returns (events, deliveries).

    Gap-safe: an event is marked once fanned out, and the low-water mark only moves past
    events older than ``grace``, so an event committed late with a lower id is still seen.
    Holds :data:`FANOUT_LOCK` (PostgreSQL): a second worker reads the marks this one wrote.
    """
    hold_for_transaction(session, FANOUT_LOCK)
    low = _cursor(session)
    mark = aliased(FanoutMark)
    events = list(
        session.scalars(
            select(OutboxEvent)
            .outerjoin(mark, mark.event_id == OutboxEvent.id)
            .where(OutboxEvent.id > low, mark.event_id.is_(None))
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
    )
    if not events:
        _advance_cursor(session, low, grace)
        return 0, 0
    subs = subs_mod.active(session)
    consumer_ids = {s.consumer_id for s in subs if s.consumer_id}
    bound: dict[str, str] = {
        cid: str(dep)
        for cid, dep in session.execute(
            select(Consumer.id, Consumer.department).where(
                Consumer.id.in_(consumer_ids), Consumer.department.is_not(None)
            )
        )
    }
    rows = []
    now = utcnow()
    for event in events:
        addressee = addressed_to(event)
        for sub in subs:
            if addressee is not None and bound.get(sub.consumer_id or "", addressee) != addressee:
                continue  # another department's case: not even queued for this one
            if subs_mod.matches(sub, event):
                rows.append(
                    {
                        "subscription_id": sub.id,
                        "event_id": event.id,
                        "event_type": event.event_type,
                        "holder_key": holder_key(event)[:60],
                        "idempotency_key": event.idempotency_key,
                        "status": PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                )
    if rows:
        session.execute(insert(Delivery), rows)
    session.execute(insert(FanoutMark), [{"event_id": e.id, "fanned_at": now} for e in events])
    _advance_cursor(session, low, grace)
    return len(events), len(rows)


def _advance_cursor(session: Session, low: int, grace: dt.timedelta) -> None:
    settled = session.scalar(
        select(func.max(OutboxEvent.id)).where(OutboxEvent.id > low, OutboxEvent.created_at < utcnow() - grace)
    )
    if settled is None:
        return
    mark = aliased(FanoutMark)
    first_open = session.scalar(
        select(func.min(OutboxEvent.id))
        .outerjoin(mark, mark.event_id == OutboxEvent.id)
        .where(OutboxEvent.id > low, OutboxEvent.id <= settled, mark.event_id.is_(None))
    )
    new_low = int(settled) if first_open is None else int(first_open) - 1
    if new_low <= low:
        return
    row = session.get(Cursor, FANOUT_CURSOR)
    if row is None:
        session.add(Cursor(name=FANOUT_CURSOR, value=new_low))
    else:
        row.value = new_low
    session.execute(delete(FanoutMark).where(FanoutMark.event_id <= new_low))


# -- choosing what to send --------------------------------------------------------------------------
def _ready_chains(session: Session, now: dt.datetime, batch_size: int, *, claim: bool = False) -> list[list[Delivery]]:
    """Per queue, the due pending deliveries that may go now, in order (head first); with
    ``claim``, locked for the session's transaction, passing by those another worker holds."""
    chosen = (
        select(Delivery)
        .where(Delivery.status == PENDING, Delivery.next_attempt_at <= now)
        .order_by(Delivery.event_id, Delivery.id)
        .limit(batch_size)
    )
    candidates = list(session.scalars(chosen.with_for_update(skip_locked=True) if claim else chosen))
    if not candidates:
        return []
    queues: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
    for d in candidates:
        queues[(d.subscription_id, d.holder_key)].append(d)
    sub_ids = sorted({k[0] for k in queues})
    heads = session.execute(
        select(
            Delivery.subscription_id,
            Delivery.holder_key,
            func.min(Delivery.event_id),
            func.min(case((Delivery.status == DEAD, Delivery.event_id), else_=None)),
        )
        .where(Delivery.status.in_(UNFINISHED), Delivery.subscription_id.in_(sub_ids))
        .group_by(Delivery.subscription_id, Delivery.holder_key)
    ).all()
    first_open = {(s, h): (int(m), int(dead) if dead is not None else None) for s, h, m, dead in heads}
    chains = []
    for key, items in queues.items():
        head_event, first_dead = first_open.get(key, (None, None))
        if head_event != items[0].event_id:
            continue  # something earlier in this queue is still open (in backoff or dead-lettered)
        chain = [d for d in items if first_dead is None or d.event_id < first_dead]
        if chain:
            chains.append(chain)
    return chains


def _declared_policy(url: str) -> DestinationPolicy:
    try:
        return DestinationPolicy.declared(url)
    except DestinationRefused:
        return DestinationPolicy(())  # a malformed declared URL goes nowhere (the push reports why)


def _targets(session: Session, sub_ids: Iterable[str]) -> dict[str, Target]:
    subs = list(session.scalars(select(Subscription).where(Subscription.id.in_(list(sub_ids)))))
    consumer_ids = {s.consumer_id for s in subs if s.consumer_id is not None}
    consumers = {c.id: c for c in session.scalars(select(Consumer).where(Consumer.id.in_(consumer_ids)))}
    policies = destinations.policies(session, consumer_ids)
    out: dict[str, Target] = {}
    for sub in subs:
        secret = sub.secret
        if sub.secret_env:
            secret = os.environ.get(sub.secret_env) or secret
        if sub.consumer_id is None:
            # declared by operators (subscriptions.yaml) for a department entitled to the data
            out[sub.id] = Target(sub.id, sub.channel, sub.target_url, secret, False, _declared_policy(sub.target_url))
            continue
        consumer = consumers.get(sub.consumer_id)
        scopes = ScopeSet.parse(consumer.scopes) if consumer is not None else ScopeSet(())
        refusal = CONSUMER_REVOKED if consumer is None or consumer.revoked_at is not None else None
        out[sub.id] = Target(
            sub.id, sub.channel, sub.target_url, secret, not scopes.personal, policies[sub.consumer_id], scopes,
            refusal, consumer.department if consumer is not None else None,
        )  # fmt: skip
    return out


@dataclass
class _Outcome:
    delivery_id: int
    result: PushResult
    at: dt.datetime
    #: Why the delivery was skipped instead of sent (the consumer may not receive the event).
    withheld: str | None = None


def _send_chain(
    pushers: Pushers,
    chain: Sequence[tuple[Delivery, Target | None, OutboxEvent | None]],
    recipients: dict[str, tuple[str, str]] | None = None,
) -> list[_Outcome]:
    """Send one queue's deliveries in order; stop at the first failure (later ones must wait).

    ``recipients``: the number and name of each case an applicant's notice goes to (by code), read
    from the case as it is sent (the event itself holds neither)."""
    out = []
    for delivery, target, event in chain:
        withheld = target.withheld(event) if target is not None and event is not None else None
        if withheld is not None:
            out.append(_Outcome(delivery.id, PushResult(False, None, withheld, False), utcnow(), withheld))
            continue  # not sent, and nothing to wait for: the holder's next event may go
        if target is None or event is None:
            result = PushResult(False, None, MISSING, False)
        else:
            message = event_message(event, mask_personal=target.mask_personal)
            if event.event_type == NOTICE_EVENT:
                phone, name = (recipients or {}).get(event.subject, ("", ""))
                message["data"] = {**message["data"], "phone": phone, "recipient_name": name}
            try:
                result = pushers.push(target, delivery.idempotency_key, message)
            except Exception as exc:  # a bug in one push must not stop the others
                log.exception("push of delivery %s failed unexpectedly", delivery.id)
                result = PushResult(False, None, f"{type(exc).__name__}: {exc}"[:300], True)
        out.append(_Outcome(delivery.id, result, utcnow()))
        if not result.ok:
            break
    return out


def run_once(
    engine: Engine,
    *,
    policy: DeliveryPolicy | None = None,
    pushers: Pushers | None = None,
    now: dt.datetime | None = None,
    executor: ThreadPoolExecutor | None = None,
    on_recorded: Callable[[Session, RunReport], None] | None = None,
) -> RunReport:
    """One round: fan out new events, push every ready queue, record outcomes and audit entries.

    ``on_recorded(session, report)`` runs in the transaction that records the outcomes (a caller
    counting what was delivered commits its count with them: a crash loses neither alone)."""
    policy = policy or DeliveryPolicy.from_settings()
    own_pushers = pushers is None
    pushers = pushers or Pushers.from_settings()
    report = RunReport()
    try:
        with session_scope(engine) as session:
            report.fanned_out, report.created = fan_out(session, grace=policy.fanout_grace)
        moment = now or utcnow()
        if engine.dialect.name != "postgresql":
            return _round(engine, None, moment, policy, pushers, executor, report, on_recorded)
        # one transaction from choosing to recording holds the chosen deliveries
        with session_scope(engine) as held:
            return _round(engine, held, moment, policy, pushers, executor, report, on_recorded)
    finally:
        if own_pushers:
            pushers.close()


def _round(
    engine: Engine,
    held: Session | None,
    moment: dt.datetime,
    policy: DeliveryPolicy,
    pushers: Pushers,
    executor: ThreadPoolExecutor | None,
    report: RunReport,
    on_recorded: Callable[[Session, RunReport], None] | None,
) -> RunReport:
    """Choose, push and record one round; in ``held``'s transaction when given (see the module)."""
    with _session(engine, held) as session:
        chains = _ready_chains(session, moment, policy.batch_size, claim=held is not None)
        if not chains:
            return report
        all_items = [d for chain in chains for d in chain]
        targets = _targets(session, {d.subscription_id for d in all_items})
        events = {
            e.id: e
            for e in session.scalars(select(OutboxEvent).where(OutboxEvent.id.in_([d.event_id for d in all_items])))
        }
        told = contacts(session, [e.subject for e in events.values() if e.event_type == NOTICE_EVENT])
        session.expunge_all()
    jobs = [[(d, targets.get(d.subscription_id), events.get(d.event_id)) for d in chain] for chain in chains]
    if len(jobs) == 1 or policy.concurrency <= 1:
        outcomes = [o for job in jobs for o in _send_chain(pushers, job, told)]
    else:
        pool = executor or ThreadPoolExecutor(max_workers=policy.concurrency, thread_name_prefix="deliver")
        try:
            outcomes = [o for res in pool.map(lambda j: _send_chain(pushers, j, told), jobs) for o in res]
        finally:
            if executor is None:
                pool.shutdown()
    by_id = {d.id: d for d in all_items}
    kill_point("delivery.sent_not_recorded")
    _record(engine, outcomes, by_id, policy, report, on_recorded, held)
    kill_point("delivery.recorded")
    return report


def _session(engine: Engine, held: Session | None) -> contextlib.AbstractContextManager[Session]:
    """``held`` (its transaction goes on), or a unit of work of its own."""
    return contextlib.nullcontext(held) if held is not None else session_scope(engine)


def _record(
    engine: Engine,
    outcomes: list[_Outcome],
    by_id: dict[int, Delivery],
    policy: DeliveryPolicy,
    report: RunReport,
    on_recorded: Callable[[Session, RunReport], None] | None = None,
    held: Session | None = None,
) -> None:
    records = []
    with _session(engine, held) as session:
        delivered_ids = []
        for o in outcomes:
            d = by_id[o.delivery_id]
            if o.withheld is not None:
                report.skipped += 1
                session.execute(
                    update(Delivery).where(Delivery.id == d.id).values(status=SKIPPED, last_error=o.withheld)
                )
                records.append(_audit_record(d, SKIPPED, o, d.attempts))
                continue
            report.attempted += 1
            attempts = d.attempts + 1
            if o.result.ok:
                delivered_ids.append(d.id)
                report.delivered += 1
                outcome = DELIVERED
            else:
                report.failed += 1
                dead = attempts >= policy.max_attempts
                report.dead += dead
                outcome = DEAD if dead else "retry"
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == d.id)
                    .values(
                        attempts=attempts,
                        status=DEAD if dead else PENDING,
                        next_attempt_at=o.at + policy.backoff(attempts),
                        last_error=o.result.error,
                    )
                )
            records.append(_audit_record(d, outcome, o, attempts))
        if delivered_ids:
            now = utcnow()
            # one statement per round; attempts counts this successful try too
            session.execute(
                update(Delivery)
                .where(Delivery.id.in_(delivered_ids))
                .values(status=DELIVERED, attempts=Delivery.attempts + 1, delivered_at=now, last_error=None)
            )
        audit.append(session, records)
        if on_recorded is not None:
            on_recorded(session, report)


def _audit_record(d: Delivery, outcome: str, o: _Outcome, attempt: int) -> audit.AuditRecord:
    return audit.AuditRecord(
        consumer=f"subscription:{d.subscription_id}",
        action="deliver",
        resource=f"delivery/{d.id}",
        subject=f"event/{d.event_id}",
        outcome=outcome,
        detail={
            "event_type": d.event_type,
            "idempotency_key": d.idempotency_key,
            "attempt": attempt,
            "status_code": o.result.status_code,
            "error": o.result.error,
        },
        at=o.at,
    )


def run_loop(
    engine: Engine,
    *,
    policy: DeliveryPolicy | None = None,
    stop: threading.Event | None = None,
    idle_wait: float = 1.0,
    max_rounds: int | None = None,
    on_round: Callable[[RunReport], None] | None = None,
) -> RunReport:
    """Repeat :func:`run_once` until ``stop`` is set (or ``max_rounds``); waits ``idle_wait`` when idle."""
    policy = policy or DeliveryPolicy.from_settings()
    stop = stop or threading.Event()
    total = RunReport()
    pushers = Pushers.from_settings()
    pool = ThreadPoolExecutor(max_workers=max(1, policy.concurrency), thread_name_prefix="deliver")
    rounds = 0
    try:
        while not stop.is_set():
            rep = run_once(engine, policy=policy, pushers=pushers, executor=pool)
            total = total + rep
            rounds += 1
            if on_round is not None:
                on_round(rep)
            if max_rounds is not None and rounds >= max_rounds:
                break
            if rep.attempted == 0 and rep.fanned_out == 0:
                stop.wait(idle_wait)
    finally:
        pool.shutdown()
        pushers.close()
    return total


def deliver_task(max_rounds: int = 50) -> dict[str, int]:
    """One delivery pass for an Airflow task (``@task`` or ``PythonOperator(python_callable=deliver_task)``).

    Applies ``subscriptions.yaml``, then runs rounds until nothing is due (or ``max_rounds``);
    returns the counts (small, XCom-safe). Retries not yet due stay for the next run.
    """
    config = RecognitionSettings()
    engine = get_engine()
    with session_scope(engine) as session:
        subs_mod.sync_yaml(session, config.subscriptions_file)
    policy = DeliveryPolicy.from_settings(config)
    total = RunReport()
    pushers = Pushers.from_settings(config)
    try:
        for _ in range(max_rounds):
            rep = run_once(engine, policy=policy, pushers=pushers)
            total = total + rep
            if rep.attempted == 0 and rep.fanned_out == 0:
                break
    finally:
        pushers.close()
    return dict(total.__dict__)
