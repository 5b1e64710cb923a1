"""the execution record: the code run in workspaces, a hash chain per project, append-only

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import enclave.db.models

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

APPEND_ONLY_MESSAGE = "execution records are append-only"


def upgrade() -> None:
    op.create_table(
        "execution_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("kernel_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_records")),
        sa.UniqueConstraint("hash", name=op.f("uq_execution_records_hash")),
        sa.UniqueConstraint("project_id", "seq", name=op.f("uq_execution_records_project_id")),
    )
    op.create_index(
        op.f("ix_execution_records_project_id"), "execution_records", ["project_id"], unique=False
    )
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER execution_records_no_{verb.lower()} BEFORE {verb} ON execution_records "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION execution_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER execution_records_append_only BEFORE UPDATE OR DELETE OR TRUNCATE"
            " ON execution_records FOR EACH STATEMENT EXECUTE FUNCTION execution_records_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS execution_records_no_update")
        op.execute("DROP TRIGGER IF EXISTS execution_records_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS execution_records_append_only ON execution_records")
        op.execute("DROP FUNCTION IF EXISTS execution_records_append_only()")
    op.drop_index(op.f("ix_execution_records_project_id"), table_name="execution_records")
    op.drop_table("execution_records")
