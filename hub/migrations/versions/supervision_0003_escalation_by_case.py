"""supervision: escalations looked up by case and department (numbering and the open one per stage)

Revision ID: supervision_0003
Revises: supervision_0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "supervision_0003"
down_revision = "supervision_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_case_escalation_case", "case_escalation", ["case_id", "department"])


def downgrade() -> None:
    op.drop_index("ix_case_escalation_case", table_name="case_escalation")
