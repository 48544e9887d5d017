"""matching: the review queue of probabilistic identity matching and its decision history

Revision ID: matching_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "matching_0001"
down_revision = None
branch_labels = ("matching",)
depends_on = "core_0001"

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "identity_review_queue",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("entity_kind", sa.String(12), nullable=False),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("dataset", sa.String(100), nullable=False),
        sa.Column("incoming_key", sa.String(200), nullable=False),
        sa.Column("candidate_code", sa.String(40), nullable=False),
        sa.Column("match_probability", sa.Float(), nullable=False),
        sa.Column("runner_up_code", sa.String(40)),
        sa.Column("runner_up_probability", sa.Float()),
        sa.Column("details", sa.JSON()),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("run_id", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("decided_by", sa.String(100)),
        sa.UniqueConstraint("department", "dataset", "incoming_key", "candidate_code", name="uq_review_candidate"),
        sa.CheckConstraint("status in ('open', 'linked', 'rejected')", name="ck_identity_review_queue_status"),
    )
    op.create_index("ix_identity_review_queue_candidate_code", "identity_review_queue", ["candidate_code"])
    op.create_index("ix_identity_review_queue_status", "identity_review_queue", ["status"])
    op.create_table(
        "identity_review_event",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "review_id",
            BigId,
            sa.ForeignKey("identity_review_queue.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("action", sa.String(12), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_identity_review_event_review_id", "identity_review_event", ["review_id"])


def downgrade() -> None:
    op.drop_table("identity_review_event")
    op.drop_table("identity_review_queue")
