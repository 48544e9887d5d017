"""pipeline: the resolve step's ledger row says how records found their identity — by code, by
the matching model, sent to the review queue, made provisional

Revision ID: pipeline_0003
Revises: pipeline_0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "pipeline_0003"
down_revision = "pipeline_0002"
branch_labels = None
depends_on = None

COLUMNS = ("linked_by_code", "linked_by_match", "sent_to_review", "provisional")


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("pipeline_step", sa.Column(column, sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_step") as batch:
        for column in COLUMNS:
            batch.drop_column(column)
