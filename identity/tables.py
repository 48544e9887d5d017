"""The master index (主索引) in the hub database: persons, enterprises, the cross-walk of
legacy codes, links from department source records, golden-record history and merges.

Golden attributes live twice on purpose: as a few typed columns (``name``, ``status``…) for
queries, and complete in ``attributes`` with the source of every value in ``sources``.
Nothing is deleted: a link that is undone gets ``undone_at``/``unlinked_at``, a merge that
is split gets ``undone_at``, and every change of a golden value is a history row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base
from hub.models import BigId, utcnow
from identity.golden_sources import GoldenSources

PERSON = "person"
ENTERPRISE = "enterprise"


class IdentityPerson(Base):
    """A person (自然人) by the 18-digit resident id, with golden attributes."""

    __tablename__ = "identity_person"

    resident_id: Mapped[str] = mapped_column(sa.String(18), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    sex: Mapped[str | None] = mapped_column(sa.String(2))
    birth_date: Mapped[str | None] = mapped_column(sa.String(10))
    address: Mapped[str | None] = mapped_column(sa.Text())
    region_code: Mapped[str | None] = mapped_column(sa.String(6))
    status: Mapped[str | None] = mapped_column(sa.String(20))
    #: Every golden attribute (JSON-safe values).
    attributes: Mapped[dict[str, Any]] = mapped_column(sa.JSON(), default=dict)
    #: attribute → {department, dataset, source_key, source_version} (stored grouped by source)
    sources: Mapped[dict[str, Any]] = mapped_column(GoldenSources(), default=dict)
    #: Set when this identity was merged into another (the canonical one).
    merged_into: Mapped[str | None] = mapped_column(sa.String(18), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class IdentityEnterprise(Base):
    """An enterprise or other organisation (法人和其他组织) by its USCC, with golden attributes."""

    __tablename__ = "identity_enterprise"

    uscc: Mapped[str] = mapped_column(sa.String(18), primary_key=True)
    #: Positions 9-17 of the USCC: old organisation codes resolve through it.
    org_code: Mapped[str] = mapped_column(sa.String(9), index=True)
    name: Mapped[str | None] = mapped_column(sa.String(300))
    status: Mapped[str | None] = mapped_column(sa.String(40))
    legal_rep_id: Mapped[str | None] = mapped_column(sa.String(18))
    address: Mapped[str | None] = mapped_column(sa.Text())
    region_code: Mapped[str | None] = mapped_column(sa.String(6))
    attributes: Mapped[dict[str, Any]] = mapped_column(sa.JSON(), default=dict)
    sources: Mapped[dict[str, Any]] = mapped_column(GoldenSources(), default=dict)
    merged_into: Mapped[str | None] = mapped_column(sa.String(18), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class IdentityCrosswalk(Base):
    """A legacy code (15-digit id, registration no., organisation code, old taxpayer id)
    linked to its canonical code (代码对照), with the source, time and method of the link."""

    __tablename__ = "identity_crosswalk"
    __table_args__ = (sa.Index("ix_identity_crosswalk_legacy", "legacy_code", "code_kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    legacy_code: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    code_kind: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    canonical_code: Mapped[str] = mapped_column(sa.String(18), nullable=False, index=True)
    entity_kind: Mapped[str] = mapped_column(sa.String(12), nullable=False)
    #: Department (and dataset) the link was learnt from, or ``manual``.
    source: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    method: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    linked_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False, default=utcnow)
    undone_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))


class IdentitySourceRecord(Base):
    """A department's source record linked to a canonical identity (来源记录关联)."""

    __tablename__ = "identity_source_record"
    __table_args__ = (sa.Index("ix_identity_source_record_key", "department", "dataset", "source_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    department: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    dataset: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    source_key: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    source_version: Mapped[str | None] = mapped_column(sa.String(100))
    entity_kind: Mapped[str] = mapped_column(sa.String(12), nullable=False)
    canonical_code: Mapped[str] = mapped_column(sa.String(18), nullable=False, index=True)
    method: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    score: Mapped[float | None] = mapped_column(sa.Float())
    #: The attribute values this record carried (the input of survivorship).
    attributes: Mapped[dict[str, Any]] = mapped_column(sa.JSON(), default=dict)
    linked_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False, default=utcnow)
    unlinked_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))


class IdentityGoldenHistory(Base):
    """One change of one golden attribute (黄金记录变更历史): old and new value and why."""

    __tablename__ = "identity_golden_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity_kind: Mapped[str] = mapped_column(sa.String(12), nullable=False)
    canonical_code: Mapped[str] = mapped_column(sa.String(18), nullable=False, index=True)
    attribute: Mapped[str] = mapped_column(sa.String(60), nullable=False)
    old_value: Mapped[str | None] = mapped_column(sa.Text())
    new_value: Mapped[str | None] = mapped_column(sa.Text())
    department: Mapped[str | None] = mapped_column(sa.String(100))
    dataset: Mapped[str | None] = mapped_column(sa.String(100))
    source_key: Mapped[str | None] = mapped_column(sa.String(200))
    #: ``link``, ``unlink``, ``merge``, ``split``
    cause: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    changed_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False, default=utcnow)


class IdentityMerge(Base):
    """Two identities found to be one (合并): ``from_code`` now lives on as ``into_code``."""

    __tablename__ = "identity_merge"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity_kind: Mapped[str] = mapped_column(sa.String(12), nullable=False)
    from_code: Mapped[str] = mapped_column(sa.String(18), nullable=False, index=True)
    into_code: Mapped[str] = mapped_column(sa.String(18), nullable=False, index=True)
    actor: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    reason: Mapped[str | None] = mapped_column(sa.Text())
    merged_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False, default=utcnow)
    undone_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))
