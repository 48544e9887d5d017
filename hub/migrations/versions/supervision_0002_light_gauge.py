"""supervision: open clocks by department and light, counted by the supervision task for /metrics

Revision ID: supervision_0002
Revises: supervision_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "supervision_0002"
down_revision = "supervision_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_light_gauge",
        sa.Column("department", sa.String(40), primary_key=True),
        sa.Column("light", sa.String(8), primary_key=True),
        sa.Column("open_clocks", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("counted_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("case_light_gauge")
