"""access requests and projects

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import enclave.db.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("applicant_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=30), nullable=False),
        sa.Column("form_json", sa.Text(), nullable=False),
        sa.Column("parts_json", sa.Text(), nullable=False),
        sa.Column("created_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("amends_project_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["applicant_id"], ["users.id"], name=op.f("fk_access_requests_applicant_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_requests")),
    )
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_requests_amends_project_id"), ["amends_project_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_access_requests_applicant_id"), ["applicant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_requests_state"), ["state"], unique=False)

    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("lay_summary", sa.Text(), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("epsilon", sa.String(length=40), nullable=False),
        sa.Column("delta", sa.String(length=40), nullable=True),
        sa.Column("scope_json", sa.Text(), nullable=False),
        sa.Column("conditions_json", sa.Text(), nullable=False),
        sa.Column("members_json", sa.Text(), nullable=False),
        sa.Column("created_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["access_requests.id"], name=op.f("fk_projects_request_id_access_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("request_id", name=op.f("uq_projects_request_id")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_projects_state"), ["state"], unique=False)

    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_epsilon", sa.String(length=40), server_default="10", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("max_epsilon")

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_projects_state"))

    op.drop_table("projects")
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_requests_state"))
        batch_op.drop_index(batch_op.f("ix_access_requests_applicant_id"))
        batch_op.drop_index(batch_op.f("ix_access_requests_amends_project_id"))

    op.drop_table("access_requests")
