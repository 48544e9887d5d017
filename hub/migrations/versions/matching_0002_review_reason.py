"""matching: why a review item waits — a grey-zone match (``match``, every item before) or a
source record its department no longer holds (``source_deleted``)

Revision ID: matching_0002
Revises: matching_0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "matching_0002"
down_revision = "matching_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("identity_review_queue", sa.Column("reason", sa.String(20), nullable=False, server_default="match"))
    op.create_index("ix_identity_review_queue_reason", "identity_review_queue", ["reason"])


def downgrade() -> None:
    op.drop_index("ix_identity_review_queue_reason", table_name="identity_review_queue")
    with op.batch_alter_table("identity_review_queue") as batch:
        batch.drop_column("reason")
