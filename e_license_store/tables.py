"""Hub-database tables of the e-licence repository: the query index over the store (证照索引).

The object store is the source of truth; these rows are derived from the stored licence
versions and ``hub licenses reindex`` rebuilds them exactly.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base


class LicenseIndexEntry(Base):
    """The current version of each licence, for queries by holder, type, status and validity."""

    __tablename__ = "license_index"
    __table_args__ = (
        Index("ix_license_index_holder", "holder_code", "license_type_code", "status"),
        Index("ix_license_index_status_valid_until", "status", "valid_until"),
    )

    license_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    license_type_code: Mapped[str] = mapped_column(String(8))
    license_type_name: Mapped[str] = mapped_column(String(100))
    license_number: Mapped[str] = mapped_column(String(100))
    holder_code: Mapped[str] = mapped_column(String(40))
    holder_kind: Mapped[str] = mapped_column(String(12))
    holder_name: Mapped[str] = mapped_column(String(200))
    issuer_code: Mapped[str] = mapped_column(String(40))
    issuer_name: Mapped[str] = mapped_column(String(200))
    issue_date: Mapped[dt.date] = mapped_column(Date)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12))
    version: Mapped[int] = mapped_column(Integer)
    object_key: Mapped[str] = mapped_column(String(300))
    content_sha256: Mapped[str] = mapped_column(String(64))
    #: SHA-256 of the current version's stored object as the hub sealed and wrote it (``None``
    #: when indexed otherwise, e.g. rebuilt from the store: then reads verify the seal itself)
    object_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: SHA-256 of what the issuer said (not version, status or run): re-issuing the same is a no-op.
    content_fingerprint: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    #: the supervision code of the case it was issued for (document format v2; migration ``licenses_0003``)
    case_code: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class LicenseVersionEntry(Base):
    """Every stored version of every licence (nothing is overwritten)."""

    __tablename__ = "license_version"

    license_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    transition: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(Text)
    object_key: Mapped[str] = mapped_column(String(300))
    content_sha256: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class LicenseFileEntry(Base):
    """The rendered file (PDF with QR code) of a licence version and its signed binding."""

    __tablename__ = "license_file"

    license_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_key: Mapped[str] = mapped_column(String(300))
    file_sha256: Mapped[str] = mapped_column(String(64))
    binding_key: Mapped[str] = mapped_column(String(300))
    rendered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
