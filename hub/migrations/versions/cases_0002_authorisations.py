"""cases: the holders' authorisations to use their licences for a case (授权); when a stage was dispatched

Revision ID: cases_0002
Revises: cases_0001
Create Date: 2026-12-03

One row per case and holder (the applicant or a party): the licence materials it covers, the
licences found for them, the purpose, until when, and its revocation. ``case_dispatch.dispatched_at``:
when a department's stage was announced to it (``case.dispatched``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cases_0002"
down_revision = "cases_0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "case_authorisation",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ref", sa.String(20), nullable=False),
        sa.Column("case_id", BigId, sa.ForeignKey("case_record.id", name="fk_case_authorisation_case"), nullable=False),
        sa.Column("holder_role", sa.String(40), nullable=False),
        sa.Column("materials", sa.JSON(), nullable=False),
        sa.Column("licences", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.String(200), nullable=False),
        sa.Column("reference", sa.String(200)),
        sa.Column("granted_at", TZ, nullable=False),
        sa.Column("valid_until", TZ, nullable=False),
        sa.Column("granted_by", sa.String(100), nullable=False),
        sa.Column("revoked_at", TZ),
        sa.Column("revoked_by", sa.String(100)),
        sa.Column("revocation_reason", sa.String(500)),
        sa.UniqueConstraint("ref", name="uq_case_authorisation_ref"),
        sa.UniqueConstraint("case_id", "holder_role", name="uq_case_authorisation_case_holder"),
    )
    with op.batch_alter_table("case_dispatch") as batch:
        batch.add_column(sa.Column("dispatched_at", TZ, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_dispatch") as batch:
        batch.drop_column("dispatched_at")
    op.drop_table("case_authorisation")
