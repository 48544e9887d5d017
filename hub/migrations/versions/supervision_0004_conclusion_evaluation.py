"""supervision: a case's conclusion (办结: outcome, promised licences, missing ones flagged) and the
applicant's evaluation of it (好差评)

Revision ID: supervision_0004
Revises: supervision_0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "supervision_0004"
down_revision = "supervision_0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "case_conclusion",
        sa.Column("case_id", BigId, sa.ForeignKey("case_record.id", name="fk_case_conclusion_case"), primary_key=True),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("concluded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expected", sa.JSON(), nullable=False),
        sa.Column("missing", sa.JSON(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_case_conclusion_complete", "case_conclusion", ["complete"])
    op.create_table(
        "case_evaluation",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", BigId, sa.ForeignKey("case_record.id", name="fk_case_evaluation_case"), nullable=False),
        sa.Column("grade", sa.String(20), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
    )
    op.create_index("ix_case_evaluation_case_id", "case_evaluation", ["case_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_case_evaluation_case_id", table_name="case_evaluation")
    op.drop_table("case_evaluation")
    op.drop_index("ix_case_conclusion_complete", table_name="case_conclusion")
    op.drop_table("case_conclusion")
