"""identity: master index — persons, enterprises, cross-walk, source-record links, golden history, merges

Revision ID: identity_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "identity_0001"
down_revision = None
branch_labels = ("identity",)
depends_on = "core_0001"

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _golden_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("merged_into", sa.String(18)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "identity_person",
        sa.Column("resident_id", sa.String(18), primary_key=True),
        sa.Column("name", sa.String(200)),
        sa.Column("sex", sa.String(2)),
        sa.Column("birth_date", sa.String(10)),
        sa.Column("address", sa.Text()),
        sa.Column("region_code", sa.String(6)),
        sa.Column("status", sa.String(20)),
        *_golden_columns(),
    )
    op.create_index("ix_identity_person_merged_into", "identity_person", ["merged_into"])
    op.create_table(
        "identity_enterprise",
        sa.Column("uscc", sa.String(18), primary_key=True),
        sa.Column("org_code", sa.String(9), nullable=False),
        sa.Column("name", sa.String(300)),
        sa.Column("status", sa.String(40)),
        sa.Column("legal_rep_id", sa.String(18)),
        sa.Column("address", sa.Text()),
        sa.Column("region_code", sa.String(6)),
        *_golden_columns(),
    )
    op.create_index("ix_identity_enterprise_org_code", "identity_enterprise", ["org_code"])
    op.create_index("ix_identity_enterprise_merged_into", "identity_enterprise", ["merged_into"])
    op.create_table(
        "identity_crosswalk",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("legacy_code", sa.String(40), nullable=False),
        sa.Column("code_kind", sa.String(20), nullable=False),
        sa.Column("canonical_code", sa.String(18), nullable=False),
        sa.Column("entity_kind", sa.String(12), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("method", sa.String(40), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_identity_crosswalk_legacy", "identity_crosswalk", ["legacy_code", "code_kind"])
    op.create_index("ix_identity_crosswalk_canonical_code", "identity_crosswalk", ["canonical_code"])
    op.create_table(
        "identity_source_record",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("dataset", sa.String(100), nullable=False),
        sa.Column("source_key", sa.String(200), nullable=False),
        sa.Column("source_version", sa.String(100)),
        sa.Column("entity_kind", sa.String(12), nullable=False),
        sa.Column("canonical_code", sa.String(18), nullable=False),
        sa.Column("method", sa.String(40), nullable=False),
        sa.Column("score", sa.Float()),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unlinked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_identity_source_record_key", "identity_source_record", ["department", "dataset", "source_key"])
    op.create_index("ix_identity_source_record_canonical_code", "identity_source_record", ["canonical_code"])
    op.create_table(
        "identity_golden_history",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("entity_kind", sa.String(12), nullable=False),
        sa.Column("canonical_code", sa.String(18), nullable=False),
        sa.Column("attribute", sa.String(60), nullable=False),
        sa.Column("old_value", sa.Text()),
        sa.Column("new_value", sa.Text()),
        sa.Column("department", sa.String(100)),
        sa.Column("dataset", sa.String(100)),
        sa.Column("source_key", sa.String(200)),
        sa.Column("cause", sa.String(20), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_identity_golden_history_canonical_code", "identity_golden_history", ["canonical_code"])
    op.create_table(
        "identity_merge",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("entity_kind", sa.String(12), nullable=False),
        sa.Column("from_code", sa.String(18), nullable=False),
        sa.Column("into_code", sa.String(18), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_identity_merge_from_code", "identity_merge", ["from_code"])
    op.create_index("ix_identity_merge_into_code", "identity_merge", ["into_code"])


def downgrade() -> None:
    for table in (
        "identity_merge",
        "identity_golden_history",
        "identity_source_record",
        "identity_crosswalk",
        "identity_enterprise",
        "identity_person",
    ):
        op.drop_table(table)
