"""supervision: the clocks of open cases, their changes of light, and escalations (督办)

Revision ID: supervision_0001
Revises:
Create Date: 2026-12-03

``case_light_change`` is append-only: triggers refuse UPDATE and DELETE on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "supervision_0001"
down_revision = None
branch_labels = ("supervision",)
depends_on = "cases_0001"

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)
_MESSAGE = "case_light_change is append-only: a light changes by a new row"


def upgrade() -> None:
    op.create_table(
        "case_clock",
        sa.Column("case_id", BigId, sa.ForeignKey("case_record.id", name="fk_case_clock_case"), primary_key=True),
        sa.Column("department", sa.String(40), primary_key=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("started_on", sa.Date()),
        sa.Column("running_since", sa.Date()),
        sa.Column("used_before", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("extension", sa.Integer(), nullable=False),
        sa.Column("promised_limit", sa.Integer(), nullable=False),
        sa.Column("statutory_limit", sa.Integer(), nullable=False),
        sa.Column("promised_due", sa.Date()),
        sa.Column("statutory_due", sa.Date()),
        sa.Column("light", sa.String(8), nullable=False),
        sa.Column("overdue", sa.Integer(), nullable=False),
        sa.Column("statutory_overdue", sa.Integer(), nullable=False),
        sa.Column("unknown_reason", sa.Text()),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_case_clock_state_light", "case_clock", ["state", "light"])
    op.create_table(
        "case_light_change",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", BigId, sa.ForeignKey("case_record.id", name="fk_case_light_change_case"), nullable=False),
        sa.Column("department", sa.String(40), nullable=False),
        sa.Column("from_light", sa.String(8)),
        sa.Column("to_light", sa.String(8), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("promised_limit", sa.Integer(), nullable=False),
        sa.Column("overdue", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
    )
    op.create_index("ix_case_light_change_case", "case_light_change", ["case_id", "changed_at"])
    op.create_table(
        "case_escalation",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", BigId, sa.ForeignKey("case_record.id", name="fk_case_escalation_case"), nullable=False),
        sa.Column("department", sa.String(40), nullable=False),
        sa.Column("overdue", sa.Integer(), nullable=False),
        sa.Column("raised_on", sa.Date(), nullable=False),
        sa.Column("raised_at", TZ, nullable=False),
        sa.Column("acknowledged_at", TZ),
        sa.Column("acknowledged_by", sa.String(100)),
        sa.Column("note", sa.Text()),
    )
    op.create_index("ix_case_escalation_open", "case_escalation", ["department", "acknowledged_at"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER case_light_change_no_{verb.lower()} BEFORE {verb} ON case_light_change "
                f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
            )
    elif bind.dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION case_light_change_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER case_light_change_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON case_light_change "
            "FOR EACH STATEMENT EXECUTE FUNCTION case_light_change_append_only()"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS case_light_change_append_only ON case_light_change")
        op.execute("DROP FUNCTION IF EXISTS case_light_change_append_only()")
    op.drop_table("case_escalation")
    op.drop_table("case_light_change")
    op.drop_table("case_clock")
