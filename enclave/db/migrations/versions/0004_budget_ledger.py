"""budget ledger

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import enclave.db.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_accounts",
        sa.Column("project_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("granted_epsilon", sa.String(length=40), nullable=False),
        sa.Column("granted_delta", sa.String(length=40), nullable=False),
        sa.Column("spent_epsilon", sa.String(length=40), nullable=False),
        sa.Column("spent_delta", sa.String(length=40), nullable=False),
        sa.Column("reserved_epsilon", sa.String(length=40), nullable=False),
        sa.Column("reserved_delta", sa.String(length=40), nullable=False),
        sa.Column("updated_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_budget_accounts_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_budget_accounts")),
    )
    op.create_table(
        "budget_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("epsilon", sa.String(length=40), nullable=False),
        sa.Column("delta", sa.String(length=40), nullable=False),
        sa.Column("reservation_id", sa.Integer(), nullable=True),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("created_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_budget_entries_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_entries")),
    )
    with op.batch_alter_table("budget_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_budget_entries_project_id"), ["project_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_budget_entries_reservation_id"), ["reservation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("budget_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_budget_entries_reservation_id"))
        batch_op.drop_index(batch_op.f("ix_budget_entries_project_id"))

    op.drop_table("budget_entries")
    op.drop_table("budget_accounts")
