"""core: record lineage (lineage_mapping, lineage_batch, lineage_record)

A batch's run, mapping content (by SHA-256, with the fields and normalisers it applied) and
expectation suite version, and each accepted record's key and version in it: what a licence
field or golden value is traced back through once retention has purged the staged copies.
``lineage_record`` is keyed by the source key and, on SQLite, kept ``WITHOUT ROWID``.

Revision ID: core_0002
Revises: core_0001
Create Date: 2027-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0002"
down_revision = "core_0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "lineage_mapping",
        sa.Column("mapping_sha256", sa.String(64), primary_key=True),
        sa.Column("mapping", sa.String(100), nullable=False),
        sa.Column("mapping_file", sa.String(300), nullable=False),
        sa.Column("mapping_version", sa.Integer(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("licenses", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "lineage_batch",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("mapping", sa.String(100), nullable=False),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("dataset", sa.String(100), nullable=False),
        sa.Column("staged_ref", sa.String(1000), nullable=False),
        sa.Column("mapping_sha256", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(60), nullable=False),
        sa.Column("suite_sha256", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(100)),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("mapping", "run_id", "staged_ref", name="uq_lineage_batch_run_ref"),
    )
    op.create_index("ix_lineage_batch_run_id", "lineage_batch", ["run_id"])
    op.create_table(
        "lineage_record",
        sa.Column("source_key", sa.String(200), primary_key=True),
        sa.Column("source_version", sa.String(100), primary_key=True),
        sa.Column("batch_id", BigId, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("lineage_record")
    op.drop_index("ix_lineage_batch_run_id", table_name="lineage_batch")
    op.drop_table("lineage_batch")
    op.drop_table("lineage_mapping")
