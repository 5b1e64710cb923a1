"""the execution record's retention: purges recorded (append-only), and records deleted only by one

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import enclave.db.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

RECORDS_MESSAGE = "execution records are append-only"
PURGES_MESSAGE = "execution purges are append-only"
#: A record may go only once a purge of its project reaches it.
PURGED = "EXISTS (SELECT 1 FROM execution_purges p WHERE p.project_id = OLD.project_id AND p.through_seq >= OLD.seq)"


def upgrade() -> None:
    op.create_table(
        "execution_purges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("through_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_purges")),
        sa.UniqueConstraint("project_id", "through_seq", name=op.f("uq_execution_purges_project_id")),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER execution_records_no_delete")
        op.execute(
            "CREATE TRIGGER execution_records_no_delete BEFORE DELETE ON execution_records"
            f" WHEN NOT {PURGED} BEGIN SELECT RAISE(ABORT, '{RECORDS_MESSAGE}'); END"
        )
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER execution_purges_no_{verb.lower()} BEFORE {verb} ON execution_purges "
                f"BEGIN SELECT RAISE(ABORT, '{PURGES_MESSAGE}'); END"
            )
        return
    op.execute("DROP TRIGGER execution_records_append_only ON execution_records")
    op.execute(
        "CREATE TRIGGER execution_records_append_only BEFORE UPDATE OR TRUNCATE"
        " ON execution_records FOR EACH STATEMENT EXECUTE FUNCTION execution_records_append_only()"
    )
    op.execute(
        "CREATE FUNCTION execution_records_purged_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN IF NOT {PURGED} THEN RAISE EXCEPTION '{RECORDS_MESSAGE}'; END IF; RETURN OLD; END $$"
    )
    op.execute(
        "CREATE TRIGGER execution_records_purged_only BEFORE DELETE ON execution_records"
        " FOR EACH ROW EXECUTE FUNCTION execution_records_purged_only()"
    )
    op.execute(
        "CREATE FUNCTION execution_purges_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{PURGES_MESSAGE}'; END $$"
    )
    op.execute(
        "CREATE TRIGGER execution_purges_append_only BEFORE UPDATE OR DELETE OR TRUNCATE"
        " ON execution_purges FOR EACH STATEMENT EXECUTE FUNCTION execution_purges_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS execution_purges_no_update")
        op.execute("DROP TRIGGER IF EXISTS execution_purges_no_delete")
        op.execute("DROP TRIGGER execution_records_no_delete")
        op.execute(
            "CREATE TRIGGER execution_records_no_delete BEFORE DELETE ON execution_records "
            f"BEGIN SELECT RAISE(ABORT, '{RECORDS_MESSAGE}'); END"
        )
    else:
        op.execute("DROP TRIGGER IF EXISTS execution_purges_append_only ON execution_purges")
        op.execute("DROP FUNCTION IF EXISTS execution_purges_append_only()")
        op.execute("DROP TRIGGER IF EXISTS execution_records_purged_only ON execution_records")
        op.execute("DROP FUNCTION IF EXISTS execution_records_purged_only()")
        op.execute("DROP TRIGGER execution_records_append_only ON execution_records")
        op.execute(
            "CREATE TRIGGER execution_records_append_only BEFORE UPDATE OR DELETE OR TRUNCATE"
            " ON execution_records FOR EACH STATEMENT EXECUTE FUNCTION execution_records_append_only()"
        )
    op.drop_table("execution_purges")
