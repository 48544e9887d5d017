"""Tables of probabilistic matching: the review queue (人工复核队列) and its decision history.

A record whose best candidate falls in the grey zone between the ``review`` and ``match``
thresholds is never linked by guess: it waits here for a person (reason ``match``). A source
record its department no longer holds waits here too (reason ``source_deleted``): its link
was ended and the licences that rested on it are named in ``details``
(:mod:`identity.source_deletions`). Every decision (link,
reject, reopen or split = undo) is appended to ``identity_review_event``, so a link can be undone
without losing what was decided before.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

OPEN = "open"
LINKED = "linked"
REJECTED = "rejected"
REVIEW_STATUSES = (OPEN, LINKED, REJECTED)

#: why an item waits (``reason``, migration ``matching_0002``): a grey-zone candidate link, or a
#: source record deleted at its department
MATCH_REVIEW = "match"
SOURCE_DELETED = "source_deleted"
#: a link a retrained model would place on another identity (identity.matching_maintenance)
RELINK = "relink"
REVIEW_REASONS = (MATCH_REVIEW, SOURCE_DELETED, RELINK)


class IdentityReviewQueue(Base):
    """One grey-zone candidate link waiting for (or having had) a reviewer's decision."""

    __tablename__ = "identity_review_queue"
    __table_args__ = (
        sa.UniqueConstraint("department", "dataset", "incoming_key", "candidate_code", name="uq_review_candidate"),
        sa.CheckConstraint("status in ('open', 'linked', 'rejected')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity_kind: Mapped[str] = mapped_column(sa.String(12), nullable=False, default="person")
    department: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    dataset: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    incoming_key: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    candidate_code: Mapped[str] = mapped_column(sa.String(40), nullable=False, index=True)
    match_probability: Mapped[float] = mapped_column(sa.Float(), nullable=False)
    runner_up_code: Mapped[str | None] = mapped_column(sa.String(40))
    runner_up_probability: Mapped[float | None] = mapped_column(sa.Float())
    details: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON())
    status: Mapped[str] = mapped_column(sa.String(12), nullable=False, default=OPEN, index=True)
    run_id: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    decided_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(sa.String(100))
    #: :data:`MATCH_REVIEW` or :data:`SOURCE_DELETED`
    reason: Mapped[str] = mapped_column(
        sa.String(20), nullable=False, default=MATCH_REVIEW, server_default=MATCH_REVIEW, index=True
    )


class IdentityReviewEvent(Base):
    """Append-only history of a review item: enqueued, linked, rejected, reopened or split (undo), and
    merge_asked (a merge of two persons waiting for a second reviewer)."""

    __tablename__ = "identity_review_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    review_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("identity_review_queue.id", ondelete="CASCADE"), nullable=False, index=True
    )
    action: Mapped[str] = mapped_column(sa.String(12), nullable=False)
    actor: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    note: Mapped[str | None] = mapped_column(sa.Text())
    at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
