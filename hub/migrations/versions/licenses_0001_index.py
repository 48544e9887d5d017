"""licenses: the e-licence index (current licences, versions, rendered files)

Revision ID: licenses_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "licenses_0001"
down_revision = None
branch_labels = ("licenses",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "license_index",
        sa.Column("license_id", sa.String(64), nullable=False),
        sa.Column("license_type_code", sa.String(8), nullable=False),
        sa.Column("license_type_name", sa.String(100), nullable=False),
        sa.Column("license_number", sa.String(100), nullable=False),
        sa.Column("holder_code", sa.String(40), nullable=False),
        sa.Column("holder_kind", sa.String(12), nullable=False),
        sa.Column("holder_name", sa.String(200), nullable=False),
        sa.Column("issuer_code", sa.String(40), nullable=False),
        sa.Column("issuer_name", sa.String(200), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("object_key", sa.String(300), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("content_fingerprint", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("license_id", name="pk_license_index"),
    )
    op.create_index("ix_license_index_holder", "license_index", ["holder_code", "license_type_code", "status"])
    op.create_index("ix_license_index_status_valid_until", "license_index", ["status", "valid_until"])
    op.create_table(
        "license_version",
        sa.Column("license_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("transition", sa.String(16), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("object_key", sa.String(300), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("license_id", "version", name="pk_license_version"),
    )
    op.create_table(
        "license_file",
        sa.Column("license_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("file_key", sa.String(300), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("binding_key", sa.String(300), nullable=False),
        sa.Column("rendered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("license_id", "version", name="pk_license_file"),
    )


def downgrade() -> None:
    op.drop_table("license_file")
    op.drop_table("license_version")
    op.drop_index("ix_license_index_status_valid_until", table_name="license_index")
    op.drop_index("ix_license_index_holder", table_name="license_index")
    op.drop_table("license_index")
