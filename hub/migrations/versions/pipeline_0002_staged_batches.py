"""pipeline: staged batches carried through (staged_batch); the ledger's carried-over rows and superseded steps

Revision ID: pipeline_0002
Revises: pipeline_0001
Create Date: 2027-01-18
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "pipeline_0002"
down_revision = "pipeline_0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "staged_batch",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("dataset", sa.String(100), nullable=False),
        sa.Column("mapping", sa.String(100), nullable=False),
        sa.Column("staged_ref", sa.String(1000), nullable=False),
        sa.Column("run_id", sa.String(200)),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("claimed_by", sa.String(200)),
        sa.Column("claimed_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("mapping", "staged_ref", name="uq_staged_batch_mapping_ref"),
    )
    op.create_index("ix_staged_batch_pending", "staged_batch", ["mapping", "status", "id"])
    op.create_index("ix_staged_batch_source_dataset", "staged_batch", ["source", "dataset", "status"])
    with op.batch_alter_table("pipeline_step") as batch:
        # rows of earlier runs' staged batches an extract carried over (not read from the source again)
        batch.add_column(sa.Column("carried_over", sa.Integer(), nullable=False, server_default="0"))
        # the later run that re-did this step's work on batches this run did not carry through
        batch.add_column(sa.Column("superseded_by", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_step") as batch:
        batch.drop_column("superseded_by")
        batch.drop_column("carried_over")
    op.drop_index("ix_staged_batch_source_dataset", table_name="staged_batch")
    op.drop_index("ix_staged_batch_pending", table_name="staged_batch")
    op.drop_table("staged_batch")
