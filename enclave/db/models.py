"""SQLAlchemy 2 typed models of the metadata store.

The schema itself is owned by the Alembic migrations in ``enclave/db/migrations``; a test checks
that the migrations and these models agree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime(), date: Date()}


class AuditEventRow(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    object_type: Mapped[str] = mapped_column(String(50))
    object_id: Mapped[str] = mapped_column(String(200))
    details_json: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    # The audit viewer filters by action or actor and reads newest first: with ``seq`` in the index,
    # a filter that matches nothing (no ``audit.verified`` yet) is one index probe, not a backward
    # walk over the whole chain.
    __table_args__ = (
        Index("ix_audit_events_object", "object_type", "object_id"),
        Index("ix_audit_events_action_seq", "action", "seq"),
        Index("ix_audit_events_actor_seq", "actor", "seq"),
    )


class AuditHeadRow(Base):
    """One row: the last event written. Writers lock it, so the chain never forks."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))


class ExecutionRecordRow(Base):
    """The code run in a project's workspaces, a chain per project (append-only, like the audit log)."""

    __tablename__ = "execution_records"
    __table_args__ = (UniqueConstraint("project_id", "seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, index=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    at: Mapped[datetime]
    username: Mapped[str] = mapped_column(String(64))
    kernel_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    code: Mapped[str] = mapped_column(Text)
    truncated: Mapped[bool]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class ExecutionPurgeRow(Base):
    """A project's execution record purged at the end of its retention, up to ``through_seq``
    (append-only: the database lets a record go only once a purge reaches it)."""

    __tablename__ = "execution_purges"
    __table_args__ = (UniqueConstraint("project_id", "through_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer)
    through_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    head_hash: Mapped[str] = mapped_column(String(64))
    records: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    organisation: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    accreditation_expires: Mapped[date | None]
    created_at: Mapped[datetime]
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None]

    roles: Mapped[list[UserRoleRow]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin", order_by="UserRoleRow.role"
    )


class UserRoleRow(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)

    user: Mapped[UserRow] = relationship(back_populates="roles")


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    project_id: Mapped[int | None] = mapped_column(Integer, index=True)
    last_seen_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("token_hash"),)


class DatasetRow(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text)
    population: Mapped[str] = mapped_column(String(63), index=True)
    custodian_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    contribution_bound: Mapped[int] = mapped_column(Integer)
    max_epsilon: Mapped[str] = mapped_column(String(40), default="10", server_default="10")
    current_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    source_name: Mapped[str] = mapped_column(String(300))
    source_sha256: Mapped[str] = mapped_column(String(64))
    spec_sha256: Mapped[str] = mapped_column(String(64))
    spec_yaml: Mapped[str] = mapped_column(Text)
    columns_json: Mapped[str] = mapped_column(Text)
    report_json: Mapped[str] = mapped_column(Text)
    rows_written: Mapped[int] = mapped_column(BigInteger)
    persons: Mapped[int] = mapped_column(BigInteger)
    key_fingerprint: Mapped[str] = mapped_column(String(32))

    __table_args__ = (UniqueConstraint("dataset_id", "version"),)


class OptOutRow(Base):
    """The national data opt-out list, as linkage pseudonyms (never the raw numbers)."""

    __tablename__ = "opt_outs"

    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    loaded_at: Mapped[datetime]


class AccessRequestRow(Base):
    __tablename__ = "access_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    applicant_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    state: Mapped[str] = mapped_column(String(30), index=True)
    form_json: Mapped[str] = mapped_column(Text)
    parts_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    project_id: Mapped[int | None] = mapped_column(Integer)
    amends_project_id: Mapped[int | None] = mapped_column(Integer, index=True)


class AccessRequestPartyRow(Base):
    """Who stands to a request in which relation (applicant, team member, custodian of a part):
    derived from the request on every write, so that the requests a user may see are one indexed
    query."""

    __tablename__ = "access_request_parties"
    __table_args__ = (Index("ix_access_request_parties_lookup", "username", "relation", "request_id"),)

    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id"), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    relation: Mapped[str] = mapped_column(String(20), primary_key=True)


class AccessDraftRow(Base):
    """An application in progress: the answers of the sections saved so far, as JSON."""

    __tablename__ = "access_drafts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    answers_json: Mapped[str] = mapped_column(Text)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("access_requests.id"))
    amends_project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id"), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    lay_summary: Mapped[str] = mapped_column(Text)
    organisation: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), index=True)
    start_date: Mapped[date]
    end_date: Mapped[date]
    # Exact decimals as text: SQLite has no decimal type, and the budget must never drift.
    epsilon: Mapped[str] = mapped_column(String(40))
    delta: Mapped[str | None] = mapped_column(String(40))
    scope_json: Mapped[str] = mapped_column(Text)
    conditions_json: Mapped[str] = mapped_column(Text)
    members_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class BudgetAccountRow(Base):
    """One row per project: the sums of its ledger, and the row every reservation locks."""

    __tablename__ = "budget_accounts"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True, autoincrement=False)
    granted_epsilon: Mapped[str] = mapped_column(String(40))
    granted_delta: Mapped[str] = mapped_column(String(40))
    spent_epsilon: Mapped[str] = mapped_column(String(40))
    spent_delta: Mapped[str] = mapped_column(String(40))
    reserved_epsilon: Mapped[str] = mapped_column(String(40))
    reserved_delta: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[datetime]


class BudgetEntryRow(Base):
    """The ledger itself: grants, reservations, commits and returns, never updated."""

    __tablename__ = "budget_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    epsilon: Mapped[str] = mapped_column(String(40))
    delta: Mapped[str] = mapped_column(String(40))
    reservation_id: Mapped[int | None] = mapped_column(Integer, index=True)
    reference: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class ReleaseRow(Base):
    """Every DP release: the plan, the mechanism, the noise, the privacy loss and the values."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    dataset: Mapped[str] = mapped_column(String(63))
    dataset_version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    plan_json: Mapped[str] = mapped_column(Text)
    epsilon: Mapped[str] = mapped_column(String(40))
    delta: Mapped[str] = mapped_column(String(40))
    mechanism: Mapped[str] = mapped_column(String(100))
    noise_json: Mapped[str] = mapped_column(Text)
    values_json: Mapped[str] = mapped_column(Text)
    accuracy_json: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("project_id", "fingerprint"),)


class OutputRequestRow(Base):
    """An output request of the airlock; its state follows ``enclave.domain.outputs.states``."""

    __tablename__ = "output_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(30), index=True)
    version: Mapped[int] = mapped_column(Integer)
    context: Mapped[str] = mapped_column(Text)
    controls: Mapped[str] = mapped_column(Text)
    policy_version: Mapped[str | None] = mapped_column(String(40))
    policy_json: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    # The reviewers' queue, ranked in the database: the current version's number of files and the
    # severity of its worst check (3 fail, 2 warn, 1 pass, 0 none), written with the checks.
    review_files: Mapped[int] = mapped_column(Integer, server_default="0")
    review_risk: Mapped[int] = mapped_column(Integer, server_default="0")


class OutputFileRow(Base):
    """A file of one version of an output request, held outside every workspace."""

    __tablename__ = "output_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("output_requests.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64))
    original_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    original_size: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(Text)
    derived_from_json: Mapped[str] = mapped_column(Text)
    spec_json: Mapped[str] = mapped_column(Text)
    holding_path: Mapped[str] = mapped_column(String(500))
    changes_json: Mapped[str] = mapped_column(Text)
    checks_json: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("request_id", "version", "name"),)


class OutputReviewRow(Base):
    """One reviewer's decisions on one version; at most one per reviewer and version."""

    __tablename__ = "output_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("output_requests.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    reviewer: Mapped[str] = mapped_column(String(64))
    decisions_json: Mapped[str] = mapped_column(Text)
    overrides_json: Mapped[str] = mapped_column(Text)
    consolidating: Mapped[bool] = mapped_column(Boolean)
    decided_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("request_id", "version", "reviewer"),)


class ReleasedFileRow(Base):
    """A file in the release store. Unique per output file: released exactly once, even under
    concurrent approvals. A withdrawal is recorded here and never deletes the row."""

    __tablename__ = "released_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("output_files.id"), unique=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("output_requests.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(500))
    released_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by: Mapped[str | None] = mapped_column(String(200))
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)
