"""licenses: the supervision code of the case a licence was issued for

Revision ID: licenses_0003
Revises: licenses_0002
Create Date: 2026-12-03

A licence document of format ``hub.e-license.v2`` carries ``license.case_code``; the index keeps it
so a case lists the licences issued for it. Licences indexed before (format v1) have none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "licenses_0003"
down_revision = "licenses_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("license_index") as batch:
        batch.add_column(sa.Column("case_code", sa.String(20), nullable=True))
        batch.create_index("ix_license_index_case_code", ["case_code"])


def downgrade() -> None:
    with op.batch_alter_table("license_index") as batch:
        batch.drop_index("ix_license_index_case_code")
        batch.drop_column("case_code")
