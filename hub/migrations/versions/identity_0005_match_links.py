"""identity: links found by probabilistic matching carry their probability and model version;
provisional identities are marked

A record without a usable code that the matching model links to an identity keeps the match
probability and the version of the model file that scored it on its link (``match_probability``,
``model_version``), so a later model can be compared with what each link was decided by. A record
the model finds nobody for becomes a provisional identity (``provisional``): a code of the hub's
own, not a resident id, waiting for its real code or a steward's merge.

Revision ID: identity_0005
Revises: identity_0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "identity_0005"
down_revision = "identity_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable columns and a constant default: added in place on SQLite and PostgreSQL
    op.add_column("identity_source_record", sa.Column("match_probability", sa.Float()))
    op.add_column("identity_source_record", sa.Column("model_version", sa.String(80)))
    for table in ("identity_person", "identity_enterprise"):
        op.add_column(table, sa.Column("provisional", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    for table in ("identity_person", "identity_enterprise"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("provisional")
    with op.batch_alter_table("identity_source_record") as batch:
        batch.drop_column("model_version")
        batch.drop_column("match_probability")
