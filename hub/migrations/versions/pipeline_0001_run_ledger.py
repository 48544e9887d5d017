"""pipeline: the main job's run ledger (counts per run, mapping and step)

Revision ID: pipeline_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "pipeline_0001"
down_revision = None
branch_labels = ("pipeline",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "pipeline_step",
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("mapping", sa.String(100), nullable=False),
        sa.Column("step", sa.String(40), nullable=False),
        sa.Column("department", sa.String(60), nullable=False),
        sa.Column("pulled", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("identities_created", sa.Integer(), nullable=False),
        sa.Column("identities_linked", sa.Integer(), nullable=False),
        sa.Column("licenses_issued", sa.Integer(), nullable=False),
        sa.Column("licenses_changed", sa.Integer(), nullable=False),
        sa.Column("notices_pushed", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "mapping", "step", name="pk_pipeline_step"),
    )
    op.create_index("ix_pipeline_step_department", "pipeline_step", ["department"])
    op.create_index("ix_pipeline_step_finished_at", "pipeline_step", ["finished_at"])


def downgrade() -> None:
    op.drop_table("pipeline_step")
