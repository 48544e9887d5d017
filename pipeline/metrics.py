"""What every feed and the push are doing (运行指标), read from the hub database when asked.

Task processes are short-lived, so nothing is counted in memory: ``/metrics`` (:class:`PipelineMetrics`)
and ``hub status`` (:mod:`pipeline.status_cli`) both read :func:`figures`, a handful of GROUP BYs:

- the run ledger (``pipeline_step``, one row per run, mapping and step) summed per feed as
  :func:`pipeline.summary.summarize` sums it per department (superseded rows left out): records,
  how resolve placed them (by code, by match, sent to review, provisional), licences issued,
  changed and revoked;
- the quarantine counted per feed and reason (one row per refused record, its first reason; by
  the quarantine's ``source`` index);
- the outbox events not yet fanned out (above the fan-out's low-water mark) and the pending
  deliveries, with the age of the oldest;
- deliveries per consumer and status (``delivered``, ``pending`` after a failed attempt, ``dead``);
- licences per status (``license_index``, by its status index), the identity review queue's open
  items (all, and those of source records deleted at their department with the licences named in
  them: the licences *in review*, :mod:`pipeline.deletions`), and the open-cases gauge the
  supervision task keeps (``hub_cases_open`` comes from :mod:`recognition.routers.supervision`).

The figures hold no personal data: feeds, departments, consumers and statuses only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, literal_column, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from cases import supervision_gauges
from e_license_store.tables import LicenseIndexEntry
from hub.models import OutboxEvent, QuarantineRecord
from identity.matching_tables import SOURCE_DELETED, IdentityReviewQueue
from identity.source_deletions import licences_in_review
from pipeline.tables import PipelineStep
from recognition.delivery import FANOUT_CURSOR
from recognition.tables import Consumer, Cursor, Delivery, FanoutMark, Subscription

PUSH = "_push"


@dataclass
class Feed:
    """One feed (a department's dataset, by its mapping) summed over the run ledger."""

    department: str
    mapping: str
    pulled: int = 0
    carried_over: int = 0
    accepted: int = 0
    quarantined: int = 0
    identities_created: int = 0
    identities_linked: int = 0
    licenses_issued: int = 0
    licenses_changed: int = 0
    licenses_revoked: int = 0
    linked_by_code: int = 0
    linked_by_match: int = 0
    sent_to_review: int = 0
    provisional: int = 0
    runs: int = 0
    last_run_at: dt.datetime | None = None
    last_step: str | None = None
    last_success_at: dt.datetime | None = None

    @property
    def state(self) -> str:
        """``ok`` when the latest step recorded is a publish; else the step the latest run stopped after."""
        if self.last_step is None:
            return "never run"
        return "ok" if self.last_step == "publish" else f"stopped after {self.last_step}"

    def lag(self, now: dt.datetime) -> float | None:
        """Seconds since the feed's last successful (published) run."""
        return None if self.last_success_at is None else max(0.0, (now - self.last_success_at).total_seconds())


@dataclass
class Push:
    """The outbox and its deliveries."""

    backlog_events: int = 0
    pending_deliveries: int = 0
    oldest_undelivered_at: dt.datetime | None = None
    #: consumer name -> status -> deliveries (``failed``: pending after at least one failed attempt)
    deliveries: dict[str, dict[str, int]] = field(default_factory=dict)

    def oldest_age(self, now: dt.datetime) -> float:
        return (
            0.0 if self.oldest_undelivered_at is None else max(0.0, (now - self.oldest_undelivered_at).total_seconds())
        )


@dataclass
class Figures:
    at: dt.datetime
    feeds: list[Feed]
    push: Push
    licenses: dict[str, int]
    review_open: int
    cases_open: dict[str, int]  # light -> open clocks of the cases themselves (department ``*``)
    #: open review items of source records deleted at their department (part of ``review_open``)
    review_source_deleted: int = 0
    #: current licences named by those items (in review until a person decides)
    licenses_in_review: int = 0
    #: (department, feed, reason code) -> records held in the quarantine
    quarantine: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "feeds": [
                {**{k: v for k, v in asdict(f).items() if not k.endswith("_at")}, "state": f.state,
                 "last_run_at": _iso(f.last_run_at), "last_success_at": _iso(f.last_success_at),
                 "lag_seconds": f.lag(self.at)}
                for f in self.feeds
            ],
            "push": {
                "backlog_events": self.push.backlog_events,
                "pending_deliveries": self.push.pending_deliveries,
                "oldest_undelivered_at": _iso(self.push.oldest_undelivered_at),
                "oldest_undelivered_seconds": self.push.oldest_age(self.at),
                "deliveries": self.push.deliveries,
            },
            "quarantine": [{"department": d, "feed": f, "reason": r, "records": n}
                           for (d, f, r), n in sorted(self.quarantine.items())],
            "licenses": self.licenses,
            "identity_review_open": self.review_open,
            "identity_review_source_deleted": self.review_source_deleted,
            "licenses_in_review": self.licenses_in_review,
            "cases_open": self.cases_open,
        }  # fmt: skip


def _iso(at: dt.datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _utc(at: dt.datetime | None) -> dt.datetime | None:
    if at is None:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)  # SQLite hands back naive UTC


def _feeds(s: Session) -> list[Feed]:
    p = PipelineStep
    rows = s.execute(
        select(p.department, p.mapping, p.step, func.sum(p.pulled), func.sum(p.carried_over), func.sum(p.accepted),
               func.sum(p.quarantined), func.sum(p.identities_created), func.sum(p.identities_linked),
               func.sum(p.licenses_issued), func.sum(p.licenses_changed), func.sum(p.licenses_revoked),
               func.sum(p.linked_by_code), func.sum(p.linked_by_match), func.sum(p.sent_to_review),
               func.sum(p.provisional), func.count(), func.max(p.finished_at))
        .where(p.department != PUSH, p.superseded_by.is_(None))
        .group_by(p.department, p.mapping, p.step)
    ).all()  # fmt: skip
    feeds: dict[tuple[str, str], Feed] = {}
    for (dept, mapping, step, pulled, carried, accepted, quarantined, created, linked, issued, changed, revoked,
         by_code, by_match, review, provisional, n, last) in rows:  # fmt: skip
        f = feeds.setdefault((dept, mapping), Feed(dept, mapping))
        last = _utc(last)
        if step == "extract":
            f.pulled += int(pulled or 0)
            f.carried_over += int(carried or 0)
            f.quarantined += int(quarantined or 0)
            f.runs = max(f.runs, int(n))
        elif step == "validate":
            f.accepted += int(accepted or 0)
            f.quarantined += int(quarantined or 0)
        elif step == "resolve":
            f.identities_created += int(created or 0)
            f.identities_linked += int(linked or 0)
            f.linked_by_code += int(by_code or 0)
            f.linked_by_match += int(by_match or 0)
            f.sent_to_review += int(review or 0)
            f.provisional += int(provisional or 0)
        elif step == "publish":
            f.licenses_issued += int(issued or 0)
            f.licenses_changed += int(changed or 0)
            f.licenses_revoked += int(revoked or 0)
            f.last_success_at = last
        if last is not None and (f.last_run_at is None or last > f.last_run_at):
            f.last_run_at, f.last_step = last, step
    return [feeds[k] for k in sorted(feeds)]


def _push(s: Session) -> Push:
    low = s.scalar(select(Cursor.value).where(Cursor.name == FANOUT_CURSOR)) or 0
    mark = aliased(FanoutMark)
    waiting = (
        select(func.count(), func.min(OutboxEvent.created_at))
        .outerjoin(mark, mark.event_id == OutboxEvent.id)
        .where(OutboxEvent.id > low, mark.event_id.is_(None))
    )
    backlog, oldest_event = s.execute(waiting).one()
    pending, oldest_delivery = s.execute(
        select(func.count(), func.min(Delivery.created_at)).where(Delivery.status == "pending")
    ).one()
    oldest = [t for t in (_utc(oldest_event), _utc(oldest_delivery)) if t is not None]
    who = func.coalesce(Consumer.name, Subscription.name)
    # a literal, not a bound 0: PostgreSQL groups by the same expression text only (two binds differ)
    retried = Delivery.attempts > literal_column("0")
    by_consumer: dict[str, dict[str, int]] = {}
    rows = s.execute(
        select(who, Delivery.status, retried, func.count())
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .outerjoin(Consumer, Consumer.id == Subscription.consumer_id)
        .group_by(who, Delivery.status, retried)
    ).all()
    for consumer, state, tried, n in rows:
        key = {"delivered": "sent", "dead": "dead"}.get(state, "failed" if state == "pending" and tried else state)
        counts = by_consumer.setdefault(str(consumer), {"sent": 0, "failed": 0, "dead": 0})
        counts[key] = counts.get(key, 0) + int(n)
    return Push(int(backlog or 0), int(pending or 0), min(oldest) if oldest else None, by_consumer)


def _quarantine(s: Session) -> dict[tuple[str, str, str], int]:
    """Records held in the quarantine per feed (``<department>_<dataset>``, the mapping's name) and reason.

    Retention purges quarantined rows, so these are what the quarantine holds now; the ledger's
    ``hub_feed_records_quarantined_total`` keeps counting.
    """
    q = QuarantineRecord
    rows = s.execute(select(q.source, q.dataset, q.reason_code, func.count()).group_by(q.source, q.dataset,
                                                                                       q.reason_code))  # fmt: skip
    return {(str(src), f"{src}_{ds}", str(reason)): int(n) for src, ds, reason, n in rows}


def figures(s: Session, now: dt.datetime | None = None) -> Figures:
    """Everything ``/metrics`` and ``hub status`` show, from aggregates only."""
    licenses = {
        str(k): int(n)
        for k, n in s.execute(select(LicenseIndexEntry.status, func.count()).group_by(LicenseIndexEntry.status))
    }
    review = {
        str(reason): int(n)
        for reason, n in s.execute(
            select(IdentityReviewQueue.reason, func.count())
            .where(IdentityReviewQueue.status == "open")
            .group_by(IdentityReviewQueue.reason)
        )
    }
    deleted = review.get(SOURCE_DELETED, 0)
    in_review = len(licences_in_review(s)) if deleted else 0
    cases = {light: n for dept, light, n in supervision_gauges.gauges(s) if dept == "*"}
    return Figures(now or dt.datetime.now(dt.UTC), _feeds(s), _push(s), licenses, sum(review.values()), cases,
                   quarantine=_quarantine(s), review_source_deleted=deleted, licenses_in_review=in_review)  # fmt: skip


#: (metric name, help, Feed attribute) of the per-feed counters
FEED_COUNTERS = [
    ("hub_feed_records_pulled", "Records read from the source system (run ledger, extract)", "pulled"),
    ("hub_feed_records_carried_over", "Staged records a run carried through for an earlier run", "carried_over"),
    ("hub_feed_records_accepted", "Records that passed validation (run ledger, validate)", "accepted"),
    ("hub_feed_records_quarantined", "Records quarantined at extract or validate (run ledger)", "quarantined"),
    (
        "hub_feed_identities_created",
        "Identities the feed's records created (run ledger, resolve)",
        "identities_created",
    ),
    ("hub_feed_identities_linked", "Records linked to an existing identity (run ledger, resolve)", "identities_linked"),
    ("hub_feed_licenses_issued", "Licences issued (run ledger, publish)", "licenses_issued"),
    ("hub_feed_licenses_changed", "Licences changed (run ledger, publish)", "licenses_changed"),
    (
        "hub_feed_licenses_revoked",
        "Licences revoked, among those changed or issued (run ledger, publish)",
        "licenses_revoked",
    ),
    ("hub_feed_runs", "Runs of the feed the ledger holds (extract steps)", "runs"),
]

#: resolve's outcomes (label ``outcome`` of ``hub_feed_records_resolved_total``) and their Feed attribute
RESOLVE_OUTCOMES = [
    ("by_code", "linked_by_code"),
    ("by_match", "linked_by_match"),
    ("review", "sent_to_review"),
    ("provisional", "provisional"),
]

#: every metric name this collector exposes (the alert rules and the dashboard are checked against these)
METRIC_NAMES = [
    *(f"{name}_total" for name, _, _ in FEED_COUNTERS),
    "hub_feed_records_resolved_total",
    "hub_quarantine_records",
    "hub_feed_last_success_timestamp_seconds",
    "hub_feed_freshness_seconds",
    "hub_feed_last_run_ok",
    "hub_outbox_backlog_events",
    "hub_outbox_pending_deliveries",
    "hub_outbox_oldest_undelivered_seconds",
    "hub_deliveries_total",
    "hub_licenses",
    "hub_identity_review_open",
    "hub_identity_review_source_deleted",
    "hub_licenses_in_review",
]


class PipelineMetrics(Collector):
    """The pipeline's figures on ``/metrics``, computed at scrape time from :func:`figures`."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        try:
            with self.sessions() as s:
                f = figures(s)
        except SQLAlchemyError:
            return  # the scrape still answers with the API's own figures
        labels = ["department", "feed"]
        for name, doc, attr in FEED_COUNTERS:
            counter = CounterMetricFamily(name, doc, labels=labels)
            for feed in f.feeds:
                counter.add_metric([feed.department, feed.mapping], getattr(feed, attr))
            yield counter
        resolved = CounterMetricFamily(
            "hub_feed_records_resolved",
            "How resolve placed the records: by code, by match, sent to review, provisional (run ledger)",
            labels=[*labels, "outcome"],
        )
        for feed in f.feeds:
            for outcome, attr in RESOLVE_OUTCOMES:
                resolved.add_metric([feed.department, feed.mapping, outcome], getattr(feed, attr))
        yield resolved
        held = GaugeMetricFamily("hub_quarantine_records", "Records held in the quarantine, by feed and reason",
                                 labels=[*labels, "reason"])  # fmt: skip
        for (dept, feed_name, reason), n in sorted(f.quarantine.items()):
            held.add_metric([dept, feed_name, reason], n)
        yield held
        success = GaugeMetricFamily("hub_feed_last_success_timestamp_seconds",
                                    "When the feed's last run published (Unix time)", labels=labels)  # fmt: skip
        fresh = GaugeMetricFamily("hub_feed_freshness_seconds", "Seconds since the feed's last run published",
                                  labels=labels)  # fmt: skip
        ok = GaugeMetricFamily("hub_feed_last_run_ok", "1 when the feed's latest ledger step is a publish",
                               labels=labels)  # fmt: skip
        for feed in f.feeds:
            key = [feed.department, feed.mapping]
            ok.add_metric(key, 1 if feed.state == "ok" else 0)
            lag = feed.lag(f.at)
            if feed.last_success_at is not None and lag is not None:
                success.add_metric(key, feed.last_success_at.timestamp())
                fresh.add_metric(key, lag)
        yield from (success, fresh, ok)
        yield GaugeMetricFamily("hub_outbox_backlog_events", "Outbox events not yet fanned out to subscriptions",
                                value=f.push.backlog_events)  # fmt: skip
        yield GaugeMetricFamily("hub_outbox_pending_deliveries", "Deliveries waiting to be sent (or retried)",
                                value=f.push.pending_deliveries)  # fmt: skip
        yield GaugeMetricFamily("hub_outbox_oldest_undelivered_seconds",
                                "Age of the oldest event not yet fanned out or delivered (0: none)",
                                value=f.push.oldest_age(f.at))  # fmt: skip
        deliveries = CounterMetricFamily("hub_deliveries", "Deliveries per consumer: sent, failed (retrying), dead",
                                         labels=["consumer", "outcome"])  # fmt: skip
        for consumer, counts in sorted(f.push.deliveries.items()):
            for outcome in ("sent", "failed", "dead"):
                deliveries.add_metric([consumer, outcome], counts.get(outcome, 0))
        yield deliveries
        licenses = GaugeMetricFamily("hub_licenses", "Licences by status (current versions)", labels=["status"])
        for status, n in sorted(f.licenses.items()):
            licenses.add_metric([status], n)
        yield licenses
        yield GaugeMetricFamily("hub_identity_review_open", "Candidate links waiting for a reviewer",
                                value=f.review_open)  # fmt: skip
        yield GaugeMetricFamily("hub_identity_review_source_deleted",
                                "Open review items of source records deleted at their department (part of the above)",
                                value=f.review_source_deleted)  # fmt: skip
        yield GaugeMetricFamily("hub_licenses_in_review", "Current licences whose source record was deleted, in review",
                                value=f.licenses_in_review)  # fmt: skip


def install(app: Any) -> None:
    """Register the pipeline's figures on the API's ``/metrics`` (``app.state.ctx.metrics.registry``)."""
    ctx = app.state.ctx
    ctx.metrics.registry.register(PipelineMetrics(ctx.sessions))
