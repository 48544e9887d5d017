"""Hub state owned by validation: the reasons of each quarantined record (隔离原因).

A record failing several expectations is *one* row in ``quarantine`` (so counts reconcile)
with one ``quarantine_reason`` row per failed expectation.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base
from hub.models import BigId


class QuarantineReason(Base):
    """One failed expectation of a quarantined record."""

    __tablename__ = "quarantine_reason"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    quarantine_id: Mapped[int] = mapped_column(BigId, ForeignKey("quarantine.id", ondelete="CASCADE"), index=True)
    #: Stable reason code, e.g. ``invalid_resident_id``, ``missing_required_field``, ``unresolved_holder``.
    reason_code: Mapped[str] = mapped_column(String(80), index=True)
    #: The GX expectation type that failed.
    expectation: Mapped[str] = mapped_column(String(120))
    column: Mapped[str] = mapped_column(String(120))
