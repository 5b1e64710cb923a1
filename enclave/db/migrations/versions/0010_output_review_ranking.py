"""the reviewers' queue ranked in the database: each output request's current number of files and the
severity of its worst check, filled for the requests already checked

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: As ``enclave.domain.outputs.review.CHECK_SEVERITY`` (copied: a migration must not change with the code).
SEVERITY = {"fail": 3, "warn": 2, "pass": 1}


def upgrade() -> None:
    with op.batch_alter_table("output_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_files", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("review_risk", sa.Integer(), server_default="0", nullable=False))
    requests = sa.table(
        "output_requests",
        sa.column("id", sa.Integer),
        sa.column("version", sa.Integer),
        sa.column("review_files", sa.Integer),
        sa.column("review_risk", sa.Integer),
    )
    files = sa.table(
        "output_files",
        sa.column("request_id", sa.Integer),
        sa.column("version", sa.Integer),
        sa.column("checks_json", sa.Text),
    )
    connection = op.get_bind()
    versions = dict(connection.execute(sa.select(requests.c.id, requests.c.version)).all())
    summary: dict[int, tuple[int, int]] = {}
    for request_id, version, checks in connection.execute(
        sa.select(files.c.request_id, files.c.version, files.c.checks_json)
    ):
        if versions.get(request_id) != version:
            continue
        count, risk = summary.get(request_id, (0, 0))
        status = json.loads(checks).get("status") if checks else None
        summary[request_id] = (count + 1, max(risk, SEVERITY.get(str(status), 0)))
    for request_id, (count, risk) in summary.items():
        connection.execute(
            requests.update().where(requests.c.id == request_id).values(review_files=count, review_risk=risk)
        )


def downgrade() -> None:
    with op.batch_alter_table("output_requests", schema=None) as batch_op:
        batch_op.drop_column("review_risk")
        batch_op.drop_column("review_files")
