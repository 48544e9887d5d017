"""recognition: destinations operators allow a consumer's subscriptions to push to

Revision ID: recognition_0002_destinations
Revises: recognition_0001
Create Date: 2026-12-01

Subscriptions made before this revision keep their rows; an API subscription whose URL no
allowed destination covers is not pushed to (its deliveries fail with ``destination refused``
and are dead-lettered for an operator) until ``hub consumers allow-destination`` covers it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recognition_0002_destinations"
down_revision = "recognition_0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recognition_consumer_destination",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "consumer_id",
            sa.String(40),
            sa.ForeignKey("recognition_consumer.id", name="fk_recognition_consumer_destination_consumer"),
            nullable=False,
        ),
        sa.Column("scheme", sa.String(5), nullable=False),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("path_prefix", sa.String(300), nullable=False),
        sa.Column("reach", sa.String(10), nullable=False),
        sa.Column("allowed_by", sa.String(100)),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint(
            "consumer_id", "scheme", "host", "port", "path_prefix", name="uq_recognition_consumer_destination"
        ),
    )
    op.create_index(
        "ix_recognition_consumer_destination_consumer_id", "recognition_consumer_destination", ["consumer_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_recognition_consumer_destination_consumer_id", table_name="recognition_consumer_destination")
    op.drop_table("recognition_consumer_destination")
