"""identity: persons and enterprises kept in code order (SQLite ``WITHOUT ROWID``)

An identity is found by its code, and its code is its primary key: on SQLite a rowid table
kept the rows in one B-tree and the codes in a second (the primary key's own index), so
every new identity was written twice and every lookup went through both. ``WITHOUT ROWID``
keeps each row in the primary key's B-tree alone: one write per identity, about a tenth
less space, a lookup that ends at the row. PostgreSQL has no such choice; nothing changes
there.

Revision ID: identity_0003
Revises: identity_0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import re

from alembic import op

revision = "identity_0003"
down_revision = "identity_0002"
branch_labels = None
depends_on = None

IDENTITY_TABLES = ("identity_person", "identity_enterprise")


def _rebuild(table: str, without_rowid: bool) -> None:
    """Copy ``table`` into a new table of the same columns, stored with or without a rowid,
    and put its indexes back (SQLite cannot change this in place)."""
    conn = op.get_bind()
    (sql,) = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).one()
    indexes = [
        r[0]
        for r in conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)
        )
    ]
    body = re.sub(r"\s*WITHOUT\s+ROWID\s*$", "", sql.strip(), flags=re.IGNORECASE)
    body = re.sub(rf'^CREATE TABLE\s+"?{table}"?', f"CREATE TABLE _new_{table}", body, flags=re.IGNORECASE)
    op.execute(body + (" WITHOUT ROWID" if without_rowid else ""))
    op.execute(f"INSERT INTO _new_{table} SELECT * FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE _new_{table} RENAME TO {table}")
    for index in indexes:
        op.execute(index)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in IDENTITY_TABLES:
        _rebuild(table, without_rowid=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in IDENTITY_TABLES:
        _rebuild(table, without_rowid=False)
