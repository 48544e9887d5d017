"""cases: the case repository — cases, materials, dispatches and the append-only step log

Revision ID: cases_0001
Revises:
Create Date: 2026-12-03

The step log is append-only: triggers refuse UPDATE and DELETE of ``case_step`` on SQLite and
PostgreSQL (and TRUNCATE on PostgreSQL), as ``recognition_0001`` does for the audit log. A
correction is a new step.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cases_0001"
down_revision = None
branch_labels = ("cases",)
depends_on = "core_0001"

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)
_MESSAGE = "case_step is append-only: record a new step instead"


def upgrade() -> None:
    op.create_table(
        "case_record",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(20), nullable=False),
        sa.Column("item_code", sa.String(12), nullable=False),
        sa.Column("item_name", sa.String(200), nullable=False),
        sa.Column("implementation_code", sa.String(40), nullable=False),
        sa.Column("lead_department", sa.String(40), nullable=False),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("statutory_days", sa.Integer(), nullable=False),
        sa.Column("promised_days", sa.Integer(), nullable=False),
        sa.Column("received_by", sa.String(40), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("intake_outcome", sa.String(30), nullable=False),
        sa.Column("outcome_detail", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("applicant_kind", sa.String(12), nullable=False),
        sa.Column("applicant_code", sa.String(40), nullable=False),
        sa.Column("applicant_identity", sa.String(20), nullable=False),
        sa.Column("applicant_name", sa.String(200), nullable=False),
        sa.Column("applicant_phone", sa.String(40)),
        sa.Column("applicant_address", sa.String(300)),
        sa.Column("agent", sa.JSON()),
        sa.Column("parties", sa.JSON()),
        sa.Column("delivery_method", sa.String(10), nullable=False),
        sa.Column("delivery_address", sa.String(300)),
        sa.Column("subject", sa.Text()),
        sa.Column("intake_key", sa.String(64)),
        sa.Column("intake_fingerprint", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("code", name="uq_case_record_code"),
        sa.UniqueConstraint("intake_key", name="uq_case_record_intake_key"),
    )
    op.create_index("ix_case_record_applicant", "case_record", ["applicant_code", "received_at"])
    op.create_index("ix_case_record_status", "case_record", ["status", "received_at"])
    op.create_table(
        "case_material",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", BigId, sa.ForeignKey("case_record.id", name="fk_case_material_case"), nullable=False),
        sa.Column("material_code", sa.String(8), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("holder_role", sa.String(40), nullable=False),
        sa.Column("license_type_code", sa.String(8)),
        sa.Column("provision", sa.String(12), nullable=False),
        sa.Column("license_id", sa.String(64)),
        sa.Column("license_version", sa.Integer()),
        sa.Column("found_by", sa.String(12)),
        sa.Column("promised_by", sa.Date()),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("case_id", "material_code", name="uq_case_material_case_material"),
    )
    op.create_index("ix_case_material_license", "case_material", ["license_id"])
    op.create_table(
        "case_dispatch",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", BigId, sa.ForeignKey("case_record.id", name="fk_case_dispatch_case"), nullable=False),
        sa.Column("department", sa.String(40), nullable=False),
        sa.Column("stage_name", sa.String(200), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("statutory_days", sa.Integer(), nullable=False),
        sa.Column("promised_days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("case_id", "department", name="uq_case_dispatch_case_department"),
    )
    op.create_table(
        "case_step",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", BigId, sa.ForeignKey("case_record.id", name="fk_case_step_case"), nullable=False),
        sa.Column("department", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(30), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("arrived_out_of_order", sa.Boolean(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.UniqueConstraint("case_id", "department", "seq", name="uq_case_step_case_department_seq"),
    )
    op.create_index("ix_case_step_case_time", "case_step", ["case_id", "occurred_at"])
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER case_step_no_{verb.lower()} BEFORE {verb} ON case_step "
                f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION case_step_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER case_step_append_only BEFORE UPDATE OR DELETE ON case_step "
            "FOR EACH ROW EXECUTE FUNCTION case_step_append_only()"
        )
        op.execute(
            "CREATE TRIGGER case_step_no_truncate BEFORE TRUNCATE ON case_step "
            "FOR EACH STATEMENT EXECUTE FUNCTION case_step_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS case_step_no_update")
        op.execute("DROP TRIGGER IF EXISTS case_step_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS case_step_no_truncate ON case_step")
        op.execute("DROP TRIGGER IF EXISTS case_step_append_only ON case_step")
        op.execute("DROP FUNCTION IF EXISTS case_step_append_only()")
    op.drop_table("case_step")
    op.drop_table("case_dispatch")
    op.drop_table("case_material")
    op.drop_index("ix_case_record_status", table_name="case_record")
    op.drop_index("ix_case_record_applicant", table_name="case_record")
    op.drop_table("case_record")
