"""The master index (主索引) in the hub database: persons, enterprises, the cross-walk of
legacy codes, links from department source records, golden-record history and merges.

A golden record is read as ``attributes`` (every golden value) and ``sources`` (the source of
every value). It is stored once: a few golden values in typed columns (``name``, ``status``…)
for queries, the others in the ``attributes`` column, and ``sources`` grouped by source record
or, for a record drawn from the identity's one link, implied by that link — whose own values
are in turn implied by the golden record while it is drawn from that link alone
(:mod:`identity.golden_sources`). Nothing is deleted: a link that is undone gets
``undone_at``/``unlinked_at``, a merge that is split gets ``undone_at``, and every change of a
golden value is a history row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, object_session

from hub.db import Base
from hub.models import BigId, utcnow
from identity.golden_sources import (
    AS_GOLDEN,
    ONE_LINK,
    GoldenSources,
    compact_attributes,
    full_attributes,
    one_link_sources,
)

PERSON = "person"
ENTERPRISE = "enterprise"
#: The first character of a provisional identity's code: no resident id or USCC starts with it.
PROVISIONAL_PREFIX = "P"

#: Golden attributes that also live in typed columns of the identity tables.
TYPED_COLUMNS = {
    PERSON: ("name", "sex", "birth_date", "address", "region_code", "status"),
    ENTERPRISE: ("name", "status", "legal_rep_id", "address", "region_code"),
}


#: SQLite stores identities in their primary key's B-tree alone (``WITHOUT ROWID``,
#: migration identity_0003): one write per new identity instead of a row and an index entry.
CLUSTERED = {"sqlite_with_rowid": False}


def _merged_index(table: str) -> sa.Index:
    """Identities merged away, by the identity they live on as: a partial index — only merged
    identities, few, are in it (an index of every identity's ``NULL`` cost a sort of the whole
    table after each large load)."""
    merged = sa.text("merged_into IS NOT NULL")
    return sa.Index(f"ix_{table}_merged_into", "merged_into", sqlite_where=merged, postgresql_where=merged)


class _GoldenRecord:
    """``attributes`` and ``sources`` of an identity's golden record, whole, over the stored
    form (``stored_attributes``/``stored_sources`` map the ``attributes``/``sources`` columns)."""

    entity_kind: ClassVar[str]
    key_name: ClassVar[str]
    stored_attributes: Any
    stored_sources: Any

    def _typed_values(self) -> dict[str, str | None]:
        return {c: getattr(self, c) for c in TYPED_COLUMNS[self.entity_kind]}

    @property
    def attributes(self) -> dict[str, Any]:
        """Every golden value (JSON-safe)."""
        return full_attributes(self.stored_attributes, self._typed_values())

    @attributes.setter
    def attributes(self, values: Mapping[str, Any]) -> None:
        # the typed columns are where text values live: set them with the rest
        for column in TYPED_COLUMNS[self.entity_kind]:
            value = values.get(column)
            setattr(self, column, None if value is None else str(value))
        self.stored_attributes = compact_attributes(values, TYPED_COLUMNS[self.entity_kind])

    @property
    def sources(self) -> dict[str, dict[str, Any]]:
        """attribute → ``{department, dataset, source_key, source_version}`` of its value."""
        stored = self.stored_sources
        if stored != ONE_LINK:
            return dict(stored or {})
        session = object_session(self)
        if session is None:
            raise RuntimeError("the sources of this golden record are its link's: read them within a session")
        link = IdentitySourceRecord
        rows = session.execute(
            sa.select(link.department, link.dataset, link.source_key, link.source_version).where(
                link.entity_kind == self.entity_kind,
                link.canonical_code == getattr(self, self.key_name),
                link.unlinked_at.is_(None),
            )
        ).all()
        return one_link_sources(self.attributes, [tuple(r) for r in rows]) or {}

    @sources.setter
    def sources(self, sources: Mapping[str, Mapping[str, Any]]) -> None:
        self.stored_sources = {k: dict(v) for k, v in sources.items()}


class IdentityPerson(_GoldenRecord, Base):
    """A person (自然人) by the 18-digit resident id, with golden attributes."""

    __tablename__ = "identity_person"
    __table_args__ = (_merged_index("identity_person"), CLUSTERED)
    entity_kind = PERSON
    key_name = "resident_id"

    resident_id: Mapped[str] = mapped_column(sa.String(18), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(200))
    sex: Mapped[str | None] = mapped_column(sa.String(2))
    birth_date: Mapped[str | None] = mapped_column(sa.String(10))
    address: Mapped[str | None] = mapped_column(sa.Text())
    region_code: Mapped[str | None] = mapped_column(sa.String(6))
    status: Mapped[str | None] = mapped_column(sa.String(20))
    #: The golden values the typed columns do not hold (read them whole as ``attributes``).
    stored_attributes: Mapped[dict[str, Any]] = mapped_column("attributes", sa.JSON(), default=dict)
    #: Sources grouped by source record, or ``ONE_LINK`` (read them per attribute as ``sources``).
    stored_sources: Mapped[Any] = mapped_column("sources", GoldenSources(), default=dict)
    #: Set when this identity was merged into another (the canonical one).
    merged_into: Mapped[str | None] = mapped_column(sa.String(18))
    #: Made for a record without a usable code that matched nobody: its code is the hub's own
    #: (:data:`PROVISIONAL_PREFIX`), not a resident id.
    provisional: Mapped[bool] = mapped_column(sa.Boolean(), nullable=False, default=False, server_default=sa.false())
    created_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class IdentityEnterprise(_GoldenRecord, Base):
    """An enterprise or other organisation (法人和其他组织) by its USCC, with golden attributes."""

    __tablename__ = "identity_enterprise"
    __table_args__ = (_merged_index("identity_enterprise"), CLUSTERED)
    entity_kind = ENTERPRISE
    key_name = "uscc"

    uscc: Mapped[str] = mapped_column(sa.String(18), primary_key=True)
    #: Positions 9-17 of the USCC: old organisation codes resolve through it.
    org_code: Mapped[str] = mapped_column(sa.String(9), index=True)
    name: Mapped[str | None] = mapped_column(sa.String(300))
    status: Mapped[str | None] = mapped_column(sa.String(40))
    legal_rep_id: Mapped[str | None] = mapped_column(sa.String(18))
    address: Mapped[str | None] = mapped_column(sa.Text())
    region_code: Mapped[str | None] = mapped_column(sa.String(6))
    stored_attributes: Mapped[dict[str, Any]] = mapped_column("attributes", sa.JSON(), default=dict)
    stored_sources: Mapped[Any] = mapped_column("sources", GoldenSources(), default=dict)
    merged_into: Mapped[str | None] = mapped_column(sa.String(18))
    provisional: Mapped[bool] = mapped_column(sa.Boolean(), nullable=False, default=False, server_default=sa.false())
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
    #: A link made by probabilistic matching: the model's match probability and the version of
    #: the model file that scored it (``None`` for links by code).
    match_probability: Mapped[float | None] = mapped_column(sa.Float())
    model_version: Mapped[str | None] = mapped_column(sa.String(80))
    #: The attribute values this record carried (the input of survivorship), or
    #: :data:`~identity.golden_sources.AS_GOLDEN`: its identity's golden values (read them
    #: whole as ``attributes``).
    stored_attributes: Mapped[Any] = mapped_column("attributes", sa.JSON(), default=dict)
    #: A 64-bit hash of ``attributes`` (``identity.resolve``): a re-run finds unchanged records
    #: by it. ``None`` for links written without it; they are compared by their JSON.
    fingerprint: Mapped[int | None] = mapped_column(sa.BigInteger())
    linked_at: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False, default=utcnow)
    unlinked_at: Mapped[dt.datetime | None] = mapped_column(sa.DateTime(timezone=True))

    @property
    def attributes(self) -> dict[str, Any]:
        """The attribute values this record carried."""
        stored = self.stored_attributes
        if stored != AS_GOLDEN:
            return stored if isinstance(stored, dict) else dict(stored or {})
        session = object_session(self)
        if session is None:
            raise RuntimeError("this link's values are its identity's golden values: read them within a session")
        identity: IdentityPerson | IdentityEnterprise | None = (
            session.get(IdentityPerson, self.canonical_code)
            if self.entity_kind == PERSON
            else session.get(IdentityEnterprise, self.canonical_code)
        )
        return identity.attributes if identity is not None else {}

    @attributes.setter
    def attributes(self, values: Mapping[str, Any]) -> None:
        self.stored_attributes = dict(values)


class IdentityRelation(Base):
    """Another identity a department's record names by role (关联关系): a person's employer by
    USCC. ``related_code`` is the other identity's canonical code once the index resolves the
    code as given (``presented_code``), through the cross-walk for old codes; ``None`` until
    then. A record that names another code (or none) ends its relation: ``unlinked_at``."""

    __tablename__ = "identity_relation"
    __table_args__ = (sa.Index("ix_identity_relation_source", "department", "dataset", "source_key", "role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entity_kind: Mapped[str] = mapped_column(sa.String(12), nullable=False)
    canonical_code: Mapped[str] = mapped_column(sa.String(18), nullable=False, index=True)
    role: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    related_kind: Mapped[str] = mapped_column(sa.String(12), nullable=False)
    related_code: Mapped[str | None] = mapped_column(sa.String(18), index=True)
    presented_code: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    method: Mapped[str | None] = mapped_column(sa.String(40))
    department: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    dataset: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    source_key: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    source_version: Mapped[str | None] = mapped_column(sa.String(100))
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
