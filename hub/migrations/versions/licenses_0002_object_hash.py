"""licenses: the SHA-256 of each current licence object as the hub wrote it

Revision ID: licenses_0002
Revises: licenses_0001
Create Date: 2026-12-03

The read path serves a licence only once its stored bytes are the ones the hub sealed and
wrote (hash recorded here in the same transaction as the index row) or, where no hash is
recorded (rows indexed before this revision, or rebuilt by ``hub licenses reindex``), once the
seal verifies.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "licenses_0002"
down_revision = "licenses_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("license_index") as batch:
        batch.add_column(sa.Column("object_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("license_index") as batch:
        batch.drop_column("object_sha256")
