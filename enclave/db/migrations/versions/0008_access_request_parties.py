"""who stands to each access request (applicant, team member, custodian): the index behind paged
lists of the requests a user may see

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    parties = op.create_table(
        "access_request_parties",
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("relation", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["access_requests.id"],
            name=op.f("fk_access_request_parties_request_id_access_requests"),
        ),
        sa.PrimaryKeyConstraint("request_id", "username", "relation", name=op.f("pk_access_request_parties")),
    )
    op.create_index(
        "ix_access_request_parties_lookup",
        "access_request_parties",
        ["username", "relation", "request_id"],
        unique=False,
    )
    # The requests already recorded: the same relations the repository writes on every change.
    requests = sa.table(
        "access_requests",
        sa.column("id", sa.Integer),
        sa.column("applicant_id", sa.Integer),
        sa.column("form_json", sa.Text),
        sa.column("parts_json", sa.Text),
    )
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("username", sa.String))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(requests.c.id, users.c.username, requests.c.form_json, requests.c.parts_json).join(
            users, users.c.id == requests.c.applicant_id
        )
    )
    found: set[tuple[int, str, str]] = set()
    for request_id, applicant, form_json, parts_json in rows:
        found.add((request_id, applicant, "applicant"))
        found.update((request_id, m["username"], "member") for m in json.loads(form_json).get("team", []))
        found.update((request_id, p["custodian"], "custodian") for p in json.loads(parts_json))
    if found:
        op.bulk_insert(
            parties,
            [{"request_id": r, "username": u, "relation": rel} for r, u, rel in sorted(found)],
        )


def downgrade() -> None:
    op.drop_index("ix_access_request_parties_lookup", table_name="access_request_parties")
    op.drop_table("access_request_parties")
