"""recognition: a consumer may be bound to a department (its keys act for that department only)

Revision ID: recognition_0005_department
Revises: recognition_0004_key_limits
Create Date: 2026-12-03

``recognition_consumer.department`` names a department of the service-item catalogue
(``cases/catalogue.yaml``); NULL for portals and other consumers acting for no department.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recognition_0005_department"
down_revision = "recognition_0004_key_limits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("recognition_consumer", sa.Column("department", sa.String(40)))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite drops a column in place (3.35+); a batch rebuild would drop a table keys refer to
        op.execute("ALTER TABLE recognition_consumer DROP COLUMN department")
    else:
        op.drop_column("recognition_consumer", "department")
