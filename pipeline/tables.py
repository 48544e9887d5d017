"""The main job's run ledger (作业台账): counts per mapping and run, for the summary and reconciliation."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base
from hub.models import utcnow


class PipelineStep(Base):
    """What one step of one exchange-DAG run did (pulled, accepted, quarantined, licences, ...).

    One row per (run, mapping, step); re-running a step replaces its row, so a retried task
    never double-counts. ``carried_over`` (extract): rows of earlier runs' staged batches this run
    carried through (``pulled`` counts only rows read from the source now). ``superseded_by``: a
    later run carried this run's batches through again and re-counted them (set on ``map`` and
    ``validate``, whose counts that run replaces); summaries and reconciliation skip such rows.
    """

    __tablename__ = "pipeline_step"

    run_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    mapping: Mapped[str] = mapped_column(String(100), primary_key=True)
    step: Mapped[str] = mapped_column(String(40), primary_key=True)
    department: Mapped[str] = mapped_column(String(60), index=True)
    pulled: Mapped[int] = mapped_column(Integer, default=0)
    carried_over: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    identities_created: Mapped[int] = mapped_column(Integer, default=0)
    identities_linked: Mapped[int] = mapped_column(Integer, default=0)
    #: resolve: records placed by their code, linked by the matching model, sent to the review
    #: queue, made provisional identities (records without a usable code that matched nobody)
    linked_by_code: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    linked_by_match: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sent_to_review: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    provisional: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    licenses_issued: Mapped[int] = mapped_column(Integer, default=0)
    licenses_changed: Mapped[int] = mapped_column(Integer, default=0)
    #: publish: of the versions issued or changed, those that revoked a licence (a source status said so)
    licenses_revoked: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    notices_pushed: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    superseded_by: Mapped[str | None] = mapped_column(String(200))
