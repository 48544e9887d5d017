"""core: sync state, quarantine and the event outbox

Revision ID: core_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0001"
down_revision = None
branch_labels = ("core",)
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sync_state",
        sa.Column("source", sa.String(100), primary_key=True),
        sa.Column("dataset", sa.String(100), primary_key=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False, index=True),
        sa.Column("dataset", sa.String(100), nullable=False),
        sa.Column("source_key", sa.String(200)),
        sa.Column("source_version", sa.String(100)),
        sa.Column("reason_code", sa.String(80), nullable=False, index=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source_ref", sa.String(500)),
        sa.Column("run_id", sa.String(200), index=True),
        sa.Column("payload", sa.JSON()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "outbox_event",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_type", sa.String(80), nullable=False, index=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("holder_code", sa.String(40)),
        sa.Column("region_code", sa.String(12)),
        sa.Column("license_type_code", sa.String(40)),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_event_idempotency_key"),
    )
    op.create_index("ix_outbox_event_holder_id", "outbox_event", ["holder_code", "id"])


def downgrade() -> None:
    op.drop_table("outbox_event")
    op.drop_table("quarantine")
    op.drop_table("sync_state")
