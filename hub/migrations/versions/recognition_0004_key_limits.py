"""recognition: key expiry and source binding, consumer rate limits, audit archive

Revision ID: recognition_0004_key_limits
Revises: recognition_0003_event_refs
Create Date: 2026-11-30

Audit entries stay append-only, except that an entry covered by a row of
``recognition_audit_archive`` (written to an archive file first) may be deleted; archive rows
themselves are append-only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recognition_0004_key_limits"
down_revision = "recognition_0003_event_refs"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)

_SQLITE_AUDIT_DELETE = (
    "CREATE TRIGGER recognition_audit_no_delete BEFORE DELETE ON recognition_audit "
    "WHEN OLD.seq > (SELECT COALESCE(MAX(last_seq), 0) FROM recognition_audit_archive) "
    "BEGIN SELECT RAISE(ABORT, 'recognition_audit is append-only (only archived entries may be removed)'); END"
)
_SQLITE_AUDIT_DELETE_0001 = (
    "CREATE TRIGGER recognition_audit_no_delete BEFORE DELETE ON recognition_audit "
    "BEGIN SELECT RAISE(ABORT, 'recognition_audit is append-only'); END"
)
_PG_AUDIT_GUARD = """
CREATE OR REPLACE FUNCTION recognition_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND OLD.seq <= (SELECT COALESCE(MAX(last_seq), 0) FROM recognition_audit_archive) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'recognition_audit is append-only (only archived entries may be removed)';
END $$
"""
_PG_AUDIT_GUARD_0001 = (
    "CREATE OR REPLACE FUNCTION recognition_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'recognition_audit is append-only'; END $$"
)


_ADDED_COLUMNS = (
    ("recognition_consumer", "rate_limit"),
    ("recognition_consumer", "rate_burst"),
    ("recognition_api_key", "expires_at"),
    ("recognition_api_key", "sources"),
)


def upgrade() -> None:
    op.add_column("recognition_consumer", sa.Column("rate_limit", sa.Float()))
    op.add_column("recognition_consumer", sa.Column("rate_burst", sa.Integer()))
    op.add_column("recognition_api_key", sa.Column("expires_at", TZ))
    op.add_column("recognition_api_key", sa.Column("sources", sa.JSON()))
    op.create_table(
        "recognition_audit_archive",
        sa.Column("first_seq", BigId, primary_key=True, autoincrement=False),
        sa.Column("last_seq", BigId, nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("first_prev_hash", sa.String(64), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("first_at", TZ, nullable=False),
        sa.Column("last_at", TZ, nullable=False),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("file_bytes", BigId, nullable=False),
        sa.Column("archived_at", TZ, nullable=False),
        sa.UniqueConstraint("last_seq", name="uq_recognition_audit_archive_last_seq"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER recognition_audit_no_delete")
        op.execute(_SQLITE_AUDIT_DELETE)
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER recognition_audit_archive_no_{verb.lower()} BEFORE {verb} "
                "ON recognition_audit_archive "
                "BEGIN SELECT RAISE(ABORT, 'recognition_audit_archive is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(_PG_AUDIT_GUARD)
        op.execute(
            "CREATE FUNCTION recognition_audit_archive_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'recognition_audit_archive is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER recognition_audit_archive_append_only BEFORE UPDATE OR DELETE "
            "ON recognition_audit_archive FOR EACH ROW EXECUTE FUNCTION recognition_audit_archive_append_only()"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT COUNT(*) FROM recognition_audit_archive")).scalar():
        raise RuntimeError(
            "audit entries were archived: without recognition_audit_archive the log no longer verifies; not downgrading"
        )
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER recognition_audit_archive_no_update")
        op.execute("DROP TRIGGER recognition_audit_archive_no_delete")
        op.execute("DROP TRIGGER recognition_audit_no_delete")
        op.execute(_SQLITE_AUDIT_DELETE_0001)
    elif bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER recognition_audit_archive_append_only ON recognition_audit_archive")
        op.execute("DROP FUNCTION recognition_audit_archive_append_only()")
        op.execute(_PG_AUDIT_GUARD_0001)
    op.drop_table("recognition_audit_archive")
    for table, column in _ADDED_COLUMNS:
        if bind.dialect.name == "sqlite":
            # SQLite drops a column in place (3.35+); a batch rebuild would drop a table keys refer to
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        else:
            op.drop_column(table, column)
