"""airlock: output requests, their files per version, reviews, released files

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import enclave.db.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "output_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=30), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("controls", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=True),
        sa.Column("policy_json", sa.Text(), nullable=True),
        sa.Column("created_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", enclave.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_output_requests_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_output_requests")),
    )
    with op.batch_alter_table("output_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_output_requests_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_output_requests_state"), ["state"], unique=False)

    op.create_table(
        "output_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("original_sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("original_size", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("derived_from_json", sa.Text(), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("holding_path", sa.String(length=500), nullable=False),
        sa.Column("changes_json", sa.Text(), nullable=False),
        sa.Column("checks_json", sa.Text(), nullable=True),
        sa.Column("created_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["output_requests.id"], name=op.f("fk_output_files_request_id_output_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_output_files")),
        sa.UniqueConstraint("request_id", "version", "name", name=op.f("uq_output_files_request_id")),
    )
    with op.batch_alter_table("output_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_output_files_request_id"), ["request_id"], unique=False)

    op.create_table(
        "output_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("decisions_json", sa.Text(), nullable=False),
        sa.Column("overrides_json", sa.Text(), nullable=False),
        sa.Column("consolidating", sa.Boolean(), nullable=False),
        sa.Column("decided_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["output_requests.id"], name=op.f("fk_output_reviews_request_id_output_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_output_reviews")),
        sa.UniqueConstraint("request_id", "version", "reviewer", name=op.f("uq_output_reviews_request_id")),
    )
    with op.batch_alter_table("output_reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_output_reviews_request_id"), ["request_id"], unique=False)

    op.create_table(
        "released_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("released_at", enclave.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", enclave.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by", sa.String(length=200), nullable=True),
        sa.Column("withdrawal_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["file_id"], ["output_files.id"], name=op.f("fk_released_files_file_id_output_files")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_released_files_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["output_requests.id"], name=op.f("fk_released_files_request_id_output_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_released_files")),
        sa.UniqueConstraint("file_id", name=op.f("uq_released_files_file_id")),
    )
    with op.batch_alter_table("released_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_released_files_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_released_files_request_id"), ["request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("released_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_released_files_request_id"))
        batch_op.drop_index(batch_op.f("ix_released_files_project_id"))

    op.drop_table("released_files")
    with op.batch_alter_table("output_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_output_reviews_request_id"))

    op.drop_table("output_reviews")
    with op.batch_alter_table("output_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_output_files_request_id"))

    op.drop_table("output_files")
    with op.batch_alter_table("output_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_output_requests_state"))
        batch_op.drop_index(batch_op.f("ix_output_requests_project_id"))

    op.drop_table("output_requests")
