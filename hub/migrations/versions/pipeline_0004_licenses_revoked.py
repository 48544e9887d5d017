"""pipeline: the publish step's ledger row counts the licences it revoked (a source status said so)

Revision ID: pipeline_0004
Revises: pipeline_0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "pipeline_0004"
down_revision = "pipeline_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pipeline_step", sa.Column("licenses_revoked", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_step") as batch:
        batch.drop_column("licenses_revoked")
