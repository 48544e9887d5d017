"""recognition: data stewards' decisions on identity review items

Revision ID: recognition_0007_review
Revises: recognition_0006_console
Create Date: 2026-12-04

``recognition_review_decision`` is the append-only log of stewards' decisions (link, reject, merge
request and its approval by a second steward, split) with the licences each moves to its right holder.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recognition_0007_review"
down_revision = "recognition_0006_console"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recognition_review_decision",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("review_id", BigId, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("entity_kind", sa.String(12), nullable=False),
        sa.Column("from_code", sa.String(40), nullable=True),
        sa.Column("into_code", sa.String(40), nullable=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("refers_to", BigId, nullable=True),
        sa.Column("merge_id", BigId, nullable=True),
        sa.Column("moves", sa.JSON(), nullable=False),
        sa.Column("decided_at", TZ, nullable=False),
        sa.Column("moved_at", TZ, nullable=True),
    )
    op.create_index("ix_recognition_review_decision_review_id", "recognition_review_decision", ["review_id"])


def downgrade() -> None:
    op.drop_index("ix_recognition_review_decision_review_id", table_name="recognition_review_decision")
    op.drop_table("recognition_review_decision")
