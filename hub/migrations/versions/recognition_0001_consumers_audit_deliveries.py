"""recognition: consumers and API keys, audit log, subscriptions and deliveries

Revision ID: recognition_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "recognition_0001"
down_revision = None
branch_labels = ("recognition",)
depends_on = "core_0001"

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recognition_consumer",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ),
        sa.UniqueConstraint("name", name="uq_recognition_consumer_name"),
    )
    op.create_table(
        "recognition_api_key",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "consumer_id",
            sa.String(40),
            sa.ForeignKey("recognition_consumer.id", name="fk_recognition_api_key_consumer_id_recognition_consumer"),
            nullable=False,
        ),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ),
    )
    op.create_index("ix_recognition_api_key_consumer_id", "recognition_api_key", ["consumer_id"])
    op.create_table(
        "recognition_audit",
        sa.Column("seq", BigId, primary_key=True, autoincrement=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("key_id", sa.String(40)),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("resource", sa.String(300), nullable=False),
        sa.Column("subject", sa.String(200)),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.String(100)),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_recognition_audit_at", "recognition_audit", ["at"])
    _append_only_audit()
    op.create_table(
        "recognition_audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", BigId, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    head = sa.table(
        "recognition_audit_head",
        sa.column("id", sa.Integer()),
        sa.column("seq", BigId),
        sa.column("hash", sa.String(64)),
        sa.column("updated_at", TZ),
    )
    # The chain starts from a genesis hash; seeding the head avoids a race on the first append.
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64, "updated_at": dt.datetime.now(dt.UTC)}])
    op.create_table(
        "recognition_subscription",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("consumer_id", sa.String(40)),
        sa.Column("origin", sa.String(10), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("license_types", sa.JSON()),
        sa.Column("regions", sa.JSON()),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("target_url", sa.String(500), nullable=False),
        sa.Column("secret", sa.String(200)),
        sa.Column("secret_env", sa.String(100)),
        sa.Column("start_event_id", BigId, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("deleted_at", TZ),
    )
    op.create_index("ix_recognition_subscription_consumer_id", "recognition_subscription", ["consumer_id"])
    op.create_table(
        "recognition_delivery",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "subscription_id",
            sa.String(40),
            sa.ForeignKey("recognition_subscription.id", name="fk_recognition_delivery_subscription"),
            nullable=False,
        ),
        sa.Column("event_id", BigId, nullable=False),
        sa.Column("event_type", sa.String(80), nullable=False),
        sa.Column("holder_key", sa.String(60), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("delivered_at", TZ),
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_recognition_delivery_subscription_event"),
    )
    op.create_index(
        "ix_recognition_delivery_queue", "recognition_delivery", ["subscription_id", "holder_key", "event_id"]
    )
    op.create_index("ix_recognition_delivery_due", "recognition_delivery", ["status", "next_attempt_at"])
    op.create_index("ix_recognition_delivery_created_at", "recognition_delivery", ["created_at"])
    op.create_table(
        "recognition_fanout",
        sa.Column("event_id", BigId, primary_key=True, autoincrement=False),
        sa.Column("fanned_at", TZ, nullable=False),
    )
    op.create_table(
        "recognition_cursor",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", BigId, nullable=False),
    )


def _append_only_audit() -> None:
    """The database itself refuses UPDATE and DELETE on audit entries (the hash chain catches whoever
    goes around it, e.g. by dropping the trigger)."""
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER recognition_audit_no_{verb.lower()} BEFORE {verb} ON recognition_audit "
                "BEGIN SELECT RAISE(ABORT, 'recognition_audit is append-only'); END"
            )
    elif op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION recognition_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'recognition_audit is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER recognition_audit_append_only BEFORE UPDATE OR DELETE ON recognition_audit "
            "FOR EACH ROW EXECUTE FUNCTION recognition_audit_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS recognition_audit_append_only ON recognition_audit")
        op.execute("DROP FUNCTION IF EXISTS recognition_audit_append_only()")
    for table in (
        "recognition_cursor",
        "recognition_fanout",
        "recognition_delivery",
        "recognition_subscription",
        "recognition_audit_head",
        "recognition_audit",
        "recognition_api_key",
        "recognition_consumer",
    ):
        op.drop_table(table)
