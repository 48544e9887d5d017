"""identity: a fingerprint of each source-record link's attributes; merged identities indexed alone

A re-run of a department's records finds the unchanged ones by comparing one number per
record instead of reading and rebuilding every record's JSON. Links stored before have none:
they are compared by their JSON once and get theirs. The index on ``merged_into`` becomes
partial (only merged identities): it held a ``NULL`` per identity, sorted again after each
large load.

Revision ID: identity_0002
Revises: identity_0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "identity_0002"
down_revision = "identity_0001"
branch_labels = None
depends_on = None


IDENTITY_TABLES = ("identity_person", "identity_enterprise")


def upgrade() -> None:
    # a nullable column: added in place on SQLite and PostgreSQL, no table rewrite
    op.add_column("identity_source_record", sa.Column("fingerprint", sa.BigInteger()))
    merged = sa.text("merged_into IS NOT NULL")
    for table in IDENTITY_TABLES:
        op.drop_index(f"ix_{table}_merged_into", table_name=table)
        op.create_index(f"ix_{table}_merged_into", table, ["merged_into"], sqlite_where=merged, postgresql_where=merged)


def downgrade() -> None:
    for table in IDENTITY_TABLES:
        op.drop_index(f"ix_{table}_merged_into", table_name=table)
        op.create_index(f"ix_{table}_merged_into", table, ["merged_into"])
    with op.batch_alter_table("identity_source_record") as batch:
        batch.drop_column("fingerprint")
