"""applications in progress: the access-request form saved a section at a time

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import enclave.db.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("answers_json", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("amends_project_id", sa.Integer(), nullable=True),
        sa.Column("created_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_access_drafts_owner_id_users")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["access_requests.id"], name=op.f("fk_access_drafts_request_id_access_requests")
        ),
        sa.ForeignKeyConstraint(
            ["amends_project_id"], ["projects.id"], name=op.f("fk_access_drafts_amends_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_drafts")),
    )
    op.create_index(op.f("ix_access_drafts_owner_id"), "access_drafts", ["owner_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_access_drafts_owner_id"), table_name="access_drafts")
    op.drop_table("access_drafts")
