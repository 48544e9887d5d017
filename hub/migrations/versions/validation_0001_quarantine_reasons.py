"""validation: one row per failed expectation of a quarantined record

Revision ID: validation_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "validation_0001"
down_revision = None
branch_labels = ("validation",)
depends_on = "core_0001"

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "quarantine_reason",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "quarantine_id",
            BigId,
            sa.ForeignKey("quarantine.id", ondelete="CASCADE", name="fk_quarantine_reason_quarantine_id_quarantine"),
            nullable=False,
        ),
        sa.Column("reason_code", sa.String(80), nullable=False),
        sa.Column("expectation", sa.String(120), nullable=False),
        sa.Column("column", sa.String(120), nullable=False),
    )
    op.create_index("ix_quarantine_reason_quarantine_id", "quarantine_reason", ["quarantine_id"])
    op.create_index("ix_quarantine_reason_reason_code", "quarantine_reason", ["reason_code"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_reason_reason_code", table_name="quarantine_reason")
    op.drop_index("ix_quarantine_reason_quarantine_id", table_name="quarantine_reason")
    op.drop_table("quarantine_reason")
