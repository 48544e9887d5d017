"""recognition: named console accounts and their sessions

Revision ID: recognition_0006_console
Revises: recognition_0005_department
Create Date: 2026-12-03

``recognition_console_user`` holds the operator accounts of ``/console`` (a scrypt hash of each
password); ``recognition_console_session`` the signed-in sessions (a SHA-256 of each session
cookie), in the hub database so every API process sees the same sessions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "recognition_0006_console"
down_revision = "recognition_0005_department"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recognition_console_user",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("disabled_at", TZ),
        sa.UniqueConstraint("name", name="uq_recognition_console_user_name"),
    )
    op.create_table(
        "recognition_console_session",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column(
            "user_id",
            BigId,
            sa.ForeignKey("recognition_console_user.id", name="fk_recognition_console_session_user"),
            nullable=False,
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("ended_at", TZ),
    )
    op.create_index("ix_recognition_console_session_user_id", "recognition_console_session", ["user_id"])
    op.create_index("ix_recognition_console_session_expires_at", "recognition_console_session", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_recognition_console_session_expires_at", "recognition_console_session")
    op.drop_index("ix_recognition_console_session_user_id", "recognition_console_session")
    op.drop_table("recognition_console_session")
    op.drop_table("recognition_console_user")
