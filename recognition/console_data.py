"""What the operator console reads (运维控制台数据): feeds, quarantine, dead letters, the outbox backlog,
cases lit yellow or red.

Read-only queries over the hub database; every value that may be personal leaves here masked
(quarantined records through :func:`validation.quarantine.list_quarantine`, which scrubs them;
delivery errors scrubbed). Actions are not here: the console calls the same service functions as
the CLI and the API (:func:`recognition.delivery_ops.replay`).

The run ledger (``pipeline_step``) belongs to the pipeline, a floor above this one: the console
reads it as a table of the hub database (its columns are the migration ``pipeline_0001``'s, a
test checks them against the pipeline's model) instead of importing the pipeline. An exchange
DAG's id is ``hub_exchange_<mapping>`` (``pipeline.factory.exchange_dag_id``; the same test
checks it), so a feed's last run links to its run in Airflow's UI.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import quote

from sqlalchemy import DateTime, Integer, String, column, func, select, table
from sqlalchemy.orm import Session, aliased

from cases.supervision_tables import CaseClock
from cases.tables import CaseRecord
from hub.masking import scrub_text
from hub.models import OutboxEvent, QuarantineRecord
from recognition import delivery as delivery_mod
from recognition import delivery_ops
from recognition.tables import Cursor, Delivery, FanoutMark, Subscription
from validation.tables import QuarantineReason

LEDGER = table(
    "pipeline_step",
    column("run_id", String), column("mapping", String), column("step", String), column("department", String),
    *(column(name, Integer) for name in ("pulled", "accepted", "quarantined", "licenses_issued", "licenses_changed")),
    column("finished_at", DateTime(timezone=True)), column("superseded_by", String),
)  # fmt: skip
COUNTED = ("pulled", "accepted", "quarantined", "licenses_issued", "licenses_changed")


def exchange_dag_id(mapping: str) -> str:
    return f"hub_exchange_{mapping}"


def airflow_run_url(base: str, mapping: str, run_id: str) -> str:
    """The run in Airflow 3's UI."""
    return f"{base.rstrip('/')}/dags/{quote(exchange_dag_id(mapping), safe='')}/runs/{quote(run_id, safe='')}"


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass
class FeedRun:
    """A feed (one mapping: a department's dataset) and its last run's counts."""

    mapping: str
    department: str
    run_id: str
    finished_at: dt.datetime | None
    counts: dict[str, int] = field(default_factory=dict)
    runs: int = 0


def feeds(session: Session, *, scan: int = 5000) -> list[FeedRun]:
    """Every feed in the ledger with its last run (the run whose steps finished last), newest first.

    ``scan`` bounds the ledger rows read (the newest); superseded counts are left out, as the
    pipeline's summaries do.
    """
    rows = session.execute(
        select(LEDGER).order_by(LEDGER.c.finished_at.desc()).limit(scan)
    ).mappings().all()  # fmt: skip
    out: dict[str, FeedRun] = {}
    seen_runs: dict[str, set[str]] = {}
    for r in rows:
        mapping = str(r["mapping"])
        feed = out.get(mapping)
        if feed is None:
            feed = out[mapping] = FeedRun(mapping, str(r["department"]), str(r["run_id"]), _aware(r["finished_at"]),
                                          dict.fromkeys(COUNTED, 0))  # fmt: skip
        seen_runs.setdefault(mapping, set()).add(str(r["run_id"]))
        if str(r["run_id"]) == feed.run_id and r["superseded_by"] is None:
            for name in COUNTED:
                feed.counts[name] += int(r[name] or 0)
    for mapping, feed in out.items():
        feed.runs = len(seen_runs[mapping])
    return sorted(out.values(), key=lambda f: f.finished_at or dt.datetime.min.replace(tzinfo=dt.UTC), reverse=True)


@dataclass(frozen=True)
class QuarantineCount:
    department: str
    dataset: str
    reason_code: str
    records: int


def quarantine_counts(session: Session) -> list[QuarantineCount]:
    """Quarantined records not yet resolved, by feed and reason (a record with two reasons counts in both)."""
    records = func.count(func.distinct(QuarantineRecord.id))
    stmt = (
        select(QuarantineRecord.source, QuarantineRecord.dataset, QuarantineReason.reason_code, records)
        .join(QuarantineReason, QuarantineReason.quarantine_id == QuarantineRecord.id)
        .where(QuarantineRecord.resolved_at.is_(None))
        .group_by(QuarantineRecord.source, QuarantineRecord.dataset, QuarantineReason.reason_code)
        .order_by(QuarantineRecord.source, QuarantineRecord.dataset, records.desc())
    )  # fmt: skip
    return [QuarantineCount(str(d), str(ds), str(code), int(n)) for d, ds, code, n in session.execute(stmt)]


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    subscription: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime | None
    delivered_at: dt.datetime | None
    held_by: int | None = None


def _row(d: Delivery, subscription: str, held_by: int | None = None) -> DeliveryRow:
    return DeliveryRow(
        id=d.id, subscription=subscription, event_type=d.event_type, status=d.status, attempts=d.attempts,
        last_error=scrub_text(d.last_error) if d.last_error else None, created_at=_aware(d.created_at),
        delivered_at=_aware(d.delivered_at), held_by=held_by,
    )  # fmt: skip


def _names(session: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Subscription.id, Subscription.name).where(Subscription.id.in_(ids))).all())  # type: ignore[arg-type]


def dead_letters(session: Session, *, limit: int = 50) -> list[DeliveryRow]:
    """Dead-lettered deliveries, newest first (through the API's listing)."""
    views = delivery_ops.list_deliveries(session, subscription_ids=None, status=delivery_mod.DEAD, limit=limit,
                                         offset=0)  # fmt: skip
    names = _names(session, {v.delivery.subscription_id for v in views})
    return [_row(v.delivery, names.get(v.delivery.subscription_id, v.delivery.subscription_id)) for v in views]


def one_delivery(session: Session, delivery_id: int) -> DeliveryRow | None:
    d = session.get(Delivery, delivery_id)
    if d is None:
        return None
    return _row(d, _names(session, {d.subscription_id}).get(d.subscription_id, d.subscription_id))


@dataclass(frozen=True)
class Backlog:
    """What the push side has still to do."""

    events_waiting: int
    oldest_waiting_at: dt.datetime | None
    deliveries_pending: int
    deliveries_held: int
    deliveries_dead: int


def backlog(session: Session) -> Backlog:
    low = session.scalar(select(Cursor.value).where(Cursor.name == delivery_mod.FANOUT_CURSOR)) or 0
    mark = aliased(FanoutMark)
    waiting = (
        select(func.count(), func.min(OutboxEvent.created_at))
        .select_from(OutboxEvent)
        .outerjoin(mark, mark.event_id == OutboxEvent.id)
        .where(OutboxEvent.id > low, mark.event_id.is_(None))
    )
    events, oldest = session.execute(waiting).one()
    by_status = dict(session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())  # type: ignore[arg-type]
    held = delivery_ops.list_deliveries(session, subscription_ids=None, status="held", limit=10_000, offset=0)
    return Backlog(
        events_waiting=int(events or 0), oldest_waiting_at=_aware(oldest),
        deliveries_pending=int(by_status.get(delivery_mod.PENDING, 0)), deliveries_held=len(held),
        deliveries_dead=int(by_status.get(delivery_mod.DEAD, 0)),
    )  # fmt: skip


@dataclass(frozen=True)
class LitClock:
    """An open clock of a case lit yellow or red (黄灯/红灯): the case's own (``*``) or a department's stage."""

    code: str
    item_name: str
    department: str
    light: str
    used: int
    promised_limit: int
    overdue: int
    promised_due: dt.date | None


def lit_clocks(session: Session, *, limit: int = 200) -> list[LitClock]:
    """Red, then yellow, open clocks as e-supervision last computed them, most overdue first."""
    stmt = (
        select(CaseRecord.code, CaseRecord.item_name, CaseClock.department, CaseClock.light, CaseClock.used,
               CaseClock.promised_limit, CaseClock.overdue, CaseClock.promised_due)
        .join(CaseRecord, CaseRecord.id == CaseClock.case_id)
        .where(CaseClock.light.in_(("red", "yellow")), CaseClock.state != "ended")
        .order_by(CaseClock.light, CaseClock.overdue.desc(), CaseRecord.code, CaseClock.department)
        .limit(limit)
    )  # fmt: skip
    return [LitClock(*row) for row in session.execute(stmt).all()]
