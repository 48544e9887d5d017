"""identity: relations between identities by role (a person's employer by USCC)

A department's record may name another identity by role (``relations:`` in its mapping): the
social-insurance bureau's insured person names the employer by its USCC. The link is kept
beside the record's own identity, with the code as given and — once the index knows it — the
other identity's canonical code.

Revision ID: identity_0004
Revises: identity_0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "identity_0004"
down_revision = "identity_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_relation",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("entity_kind", sa.String(12), nullable=False),
        sa.Column("canonical_code", sa.String(18), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("related_kind", sa.String(12), nullable=False),
        sa.Column("related_code", sa.String(18)),
        sa.Column("presented_code", sa.String(40), nullable=False),
        sa.Column("method", sa.String(40)),
        sa.Column("department", sa.String(100), nullable=False),
        sa.Column("dataset", sa.String(100), nullable=False),
        sa.Column("source_key", sa.String(200), nullable=False),
        sa.Column("source_version", sa.String(100)),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unlinked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_identity_relation_canonical_code", "identity_relation", ["canonical_code"])
    op.create_index("ix_identity_relation_related_code", "identity_relation", ["related_code"])
    op.create_index("ix_identity_relation_source", "identity_relation", ["department", "dataset", "source_key", "role"])


def downgrade() -> None:
    op.drop_table("identity_relation")
