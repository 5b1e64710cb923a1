"""SQLAlchemy implementations of the repository protocols in ``enclave.domain.ports``.

Every state-changing method writes its audit event through :class:`SqlAuditLog` in the same
session, so the change and its record commit or roll back together.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Generator, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVarTuple

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from enclave.db.models import (
    AccessDraftRow,
    AccessRequestPartyRow,
    AccessRequestRow,
    ApiTokenRow,
    AuditEventRow,
    AuditHeadRow,
    BudgetAccountRow,
    BudgetEntryRow,
    DatasetRow,
    DatasetVersionRow,
    ExecutionPurgeRow,
    ExecutionRecordRow,
    OptOutRow,
    OutputFileRow,
    OutputRequestRow,
    OutputReviewRow,
    ProjectRow,
    ReleasedFileRow,
    ReleaseRow,
    UserRoleRow,
    UserRow,
)
from enclave.domain.access.drafts import Draft
from enclave.domain.access.form import AccessRequestForm
from enclave.domain.access.requests import AccessRequest, Part, Project, RequestQuery, relations
from enclave.domain.access.states import ProjectState, RequestState
from enclave.domain.audit.chain import GENESIS_HASH, AuditEvent, ChainedEvent, chain_event
from enclave.domain.audit.executions import ExecutionPurge, ExecutionRecord
from enclave.domain.catalog.datasets import CatalogColumn, Dataset, DatasetVersion
from enclave.domain.clock import utcnow
from enclave.domain.errors import Conflict, InternalError, InvalidState, NotFound
from enclave.domain.identity.accounts import ApiToken, Role, TokenKind, User
from enclave.domain.outputs.review import (
    CHECK_SEVERITY,
    CheckOverride,
    Decision,
    FileDecision,
    OutputFile,
    OutputRequest,
    ReleasedFile,
    Review,
    worst_check,
)
from enclave.domain.outputs.states import OutputState
from enclave.domain.queries.budget import Account, Budget, EntryKind, Reservation
from enclave.domain.queries.plans import QueryPlan, Release

HEAD_ID = 1


def is_unique_violation(exc: IntegrityError) -> bool:
    """A broken unique constraint (PostgreSQL's SQLSTATE 23505, SQLite's "UNIQUE constraint failed"),
    as opposed to a foreign key or a check, which only a bug can break."""
    return getattr(exc.orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(exc.orig)


def _flush(session: Session) -> None:
    """Send the pending changes; a broken uniqueness rule is the domain's :class:`Conflict`, so no
    use case sees SQLAlchemy's errors (the transaction is then rolled back by the unit of work)."""
    try:
        session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise Conflict("this change conflicts with one already recorded") from exc
        raise


class SqlAuditLog:
    def __init__(self, session: Session) -> None:
        self._session = session

    def append(self, event: AuditEvent) -> ChainedEvent:
        head = self._session.execute(
            select(AuditHeadRow).where(AuditHeadRow.id == HEAD_ID).with_for_update()
        ).scalar_one_or_none()
        if head is None:
            raise InternalError("the audit head row is missing: run `enclave db upgrade`")
        chained = chain_event(event, seq=head.seq + 1, at=utcnow(), prev_hash=head.hash)
        self._session.add(
            AuditEventRow(
                seq=chained.seq,
                at=chained.at,
                actor=chained.actor,
                action=chained.action,
                object_type=chained.object_type,
                object_id=chained.object_id,
                details_json=chained.details_json,
                prev_hash=chained.prev_hash,
                hash=chained.hash,
            )
        )
        head.seq = chained.seq
        head.hash = chained.hash
        _flush(self._session)
        return chained

    def get_execution_head(self, project_id: int) -> tuple[int, str]:
        # the audit head's row lock (taken by the caller's audit append, or here) serialises the
        # appends of every project, so reading the last record without a lock of its own is safe
        self._session.execute(select(AuditHeadRow).where(AuditHeadRow.id == HEAD_ID).with_for_update())
        row = self._session.execute(
            select(ExecutionRecordRow)
            .where(ExecutionRecordRow.project_id == project_id)
            .order_by(ExecutionRecordRow.seq.desc())
            .limit(1)
        ).scalar_one_or_none()
        if row is not None:
            return row.seq, row.hash
        purge = self.get_execution_purge(project_id)
        return (0, GENESIS_HASH) if purge is None else (purge.through_seq, purge.head_hash)

    def append_execution(self, record: ExecutionRecord, *, audit: AuditEvent) -> None:
        self._session.add(ExecutionRecordRow(**dataclasses.asdict(record)))
        self.append(audit)

    def list_executions(
        self, project_id: int, *, after_seq: int = 0, limit: int = 100, newest_first: bool = False
    ) -> list[ExecutionRecord]:
        query = select(ExecutionRecordRow).where(ExecutionRecordRow.project_id == project_id)
        if newest_first:
            query = query.order_by(ExecutionRecordRow.seq.desc())
        else:
            query = query.where(ExecutionRecordRow.seq > after_seq).order_by(ExecutionRecordRow.seq)
        return [_execution(row) for row in self._session.execute(query.limit(limit)).scalars()]

    def iter_executions(self, project_id: int) -> Generator[ExecutionRecord]:
        query = (
            select(ExecutionRecordRow)
            .where(ExecutionRecordRow.project_id == project_id)
            .order_by(ExecutionRecordRow.seq)
        )
        result = self._session.execute(query.execution_options(yield_per=2000)).scalars()
        try:
            for row in result:
                yield _execution(row)
        finally:
            result.close()

    def get_execution_purge(self, project_id: int) -> ExecutionPurge | None:
        row = self._session.execute(
            select(ExecutionPurgeRow)
            .where(ExecutionPurgeRow.project_id == project_id)
            .order_by(ExecutionPurgeRow.through_seq.desc())
            .limit(1)
        ).scalar_one_or_none()
        if row is None:
            return None
        return ExecutionPurge(**{name: getattr(row, name) for name in _PURGE_FIELDS})

    def purge_executions(self, purge: ExecutionPurge, *, audit: AuditEvent) -> None:
        self._session.add(ExecutionPurgeRow(**dataclasses.asdict(purge)))
        _flush(self._session)  # the database lets the records go only once the purge is there
        self._session.execute(
            delete(ExecutionRecordRow).where(
                ExecutionRecordRow.project_id == purge.project_id,
                ExecutionRecordRow.seq <= purge.through_seq,
            )
        )
        self.append(audit)

    def get_head(self) -> tuple[int, str]:
        head = self._session.get(AuditHeadRow, HEAD_ID)
        return (0, GENESIS_HASH) if head is None else (head.seq, head.hash)

    def iter_events(self, after_seq: int = 0, limit: int | None = None) -> Generator[ChainedEvent]:
        query = select(AuditEventRow).where(AuditEventRow.seq > after_seq).order_by(AuditEventRow.seq)
        if limit is not None:
            query = query.limit(limit)
        result = self._session.execute(query.execution_options(yield_per=2000)).scalars()
        try:
            for row in result:
                yield _chained(row)
        finally:
            # A reader that stops early (verify at the first broken link) must not leave a
            # server-side cursor open.
            result.close()

    def list_events(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        object_type: str | None = None,
        object_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_seq: int | None = None,
        after_seq: int | None = None,
        limit: int = 50,
    ) -> list[ChainedEvent]:
        """Events matching every filter given, newest first: the ``limit`` newest older than
        ``before_seq``, or with ``after_seq`` the ``limit`` oldest newer than it (a keyset on ``seq``,
        so any page costs what the first does). An ``action`` ending in ``.*`` matches a prefix;
        ``since`` is inclusive, ``until`` exclusive."""
        query = select(AuditEventRow)
        if actor:
            query = query.where(AuditEventRow.actor == actor)
        if action:
            if action.endswith(".*"):
                prefix = action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                query = query.where(AuditEventRow.action.like(prefix + "%", escape="\\"))
            else:
                query = query.where(AuditEventRow.action == action)
        if object_type:
            query = query.where(AuditEventRow.object_type == object_type)
        if object_id:
            query = query.where(AuditEventRow.object_id == object_id)
        if since is not None:
            query = query.where(AuditEventRow.at >= since)
        if until is not None:
            query = query.where(AuditEventRow.at < until)
        if before_seq is not None:
            query = query.where(AuditEventRow.seq < before_seq)
        if after_seq is not None:
            query = query.where(AuditEventRow.seq > after_seq)
            rows = self._session.execute(query.order_by(AuditEventRow.seq).limit(limit)).scalars()
            return [_chained(r) for r in reversed(list(rows))]
        rows = self._session.execute(query.order_by(AuditEventRow.seq.desc()).limit(limit)).scalars()
        return [_chained(r) for r in rows]


_EXECUTION_FIELDS = tuple(f.name for f in dataclasses.fields(ExecutionRecord))
_PURGE_FIELDS = tuple(f.name for f in dataclasses.fields(ExecutionPurge))


def _execution(row: ExecutionRecordRow) -> ExecutionRecord:
    return ExecutionRecord(**{name: getattr(row, name) for name in _EXECUTION_FIELDS})


def _chained(row: AuditEventRow) -> ChainedEvent:
    return ChainedEvent(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        details_json=row.details_json,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _user(row: UserRow) -> User:
    return User(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        email=row.email,
        organisation=row.organisation,
        roles=frozenset(Role(r.role) for r in row.roles),
        active=row.active,
        accreditation_expires=row.accreditation_expires,
        created_at=row.created_at,
        locked_until=row.locked_until,
        failed_logins=row.failed_logins or 0,
    )


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        id=row.id,
        user_id=row.user_id,
        kind=TokenKind(row.kind),
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        project_id=row.project_id,
        last_seen_at=row.last_seen_at,
    )


class SqlUserRepository:
    def __init__(self, session: Session, audit: SqlAuditLog) -> None:
        self._session = session
        self._audit = audit

    def _row(self, user_id: int) -> UserRow:
        row = self._session.get(UserRow, user_id)
        if row is None:
            raise NotFound(f"no user with id {user_id}")
        return row

    def get_by_id(self, user_id: int) -> User | None:
        row = self._session.get(UserRow, user_id)
        return _user(row) if row is not None else None

    def get_by_username(self, username: str) -> User | None:
        row = self._session.execute(select(UserRow).where(UserRow.username == username)).scalar_one_or_none()
        return _user(row) if row is not None else None

    def get_password_hash(self, user_id: int) -> str | None:
        return self._row(user_id).password_hash

    def list_users(self) -> list[User]:
        return [_user(r) for r in self._session.execute(select(UserRow).order_by(UserRow.username)).scalars()]

    def add_user(
        self,
        *,
        username: str,
        display_name: str,
        email: str,
        organisation: str,
        password_hash: str | None,
        roles: frozenset[Role],
        accreditation_expires: date | None,
        created_at: datetime,
        audit: AuditEvent,
    ) -> User:
        row = UserRow(
            username=username,
            display_name=display_name,
            email=email,
            organisation=organisation,
            password_hash=password_hash,
            active=True,
            accreditation_expires=accreditation_expires,
            created_at=created_at,
            roles=[UserRoleRow(role=r.value) for r in sorted(roles)],
        )
        self._session.add(row)
        _flush(self._session)
        self._audit.append(audit)
        return _user(row)

    def grant_role(self, user_id: int, role: Role, *, audit: AuditEvent) -> User:
        row = self._row(user_id)
        row.roles.append(UserRoleRow(role=role.value))
        _flush(self._session)
        self._audit.append(audit)
        return _user(row)

    def revoke_role(self, user_id: int, role: Role, *, audit: AuditEvent) -> User:
        row = self._row(user_id)
        row.roles = [r for r in row.roles if r.role != role.value]
        _flush(self._session)
        self._audit.append(audit)
        return _user(row)

    def set_accreditation(self, user_id: int, expires: date | None, *, audit: AuditEvent) -> User:
        row = self._row(user_id)
        row.accreditation_expires = expires
        _flush(self._session)
        self._audit.append(audit)
        return _user(row)

    def set_password_hash(self, user_id: int, password_hash: str, *, audit: AuditEvent) -> None:
        row = self._row(user_id)
        row.password_hash = password_hash
        _flush(self._session)
        self._audit.append(audit)

    def set_active(self, user_id: int, active: bool, *, audit: AuditEvent) -> User:
        row = self._row(user_id)
        row.active = active
        _flush(self._session)
        self._audit.append(audit)
        return _user(row)

    def record_login_failure(
        self, user_id: int, at: datetime, *, limit: int, lock_for: timedelta, audit: AuditEvent
    ) -> User:
        row = self._session.execute(
            select(UserRow).where(UserRow.id == user_id).with_for_update()
        ).scalar_one()
        row.failed_logins = (row.failed_logins or 0) + 1
        locked = row.failed_logins >= limit
        if locked:
            row.locked_until = at + lock_for
            row.failed_logins = 0
        _flush(self._session)
        self._audit.append(
            dataclasses.replace(
                audit, details={**audit.details, "locked_until": row.locked_until if locked else None}
            )
        )
        return _user(row)

    def reset_login_failures(self, user_id: int, *, audit: AuditEvent) -> User:
        row = self._row(user_id)
        row.failed_logins = 0
        row.locked_until = None
        _flush(self._session)
        self._audit.append(audit)
        return _user(row)


class SqlTokenRepository:
    def __init__(self, session: Session, audit: SqlAuditLog) -> None:
        self._session = session
        self._audit = audit

    def get_by_hash(self, token_hash: str) -> ApiToken | None:
        row = self._session.execute(
            select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash)
        ).scalar_one_or_none()
        return _token(row) if row is not None else None

    def get_by_id(self, token_id: int) -> ApiToken | None:
        row = self._session.get(ApiTokenRow, token_id)
        return _token(row) if row is not None else None

    def list_for_user(self, user_id: int) -> list[ApiToken]:
        rows = self._session.execute(
            select(ApiTokenRow).where(ApiTokenRow.user_id == user_id).order_by(ApiTokenRow.id)
        ).scalars()
        return [_token(r) for r in rows]

    def add_token(
        self,
        *,
        user_id: int,
        kind: TokenKind,
        name: str,
        token_hash: str,
        prefix: str,
        created_at: datetime,
        expires_at: datetime,
        project_id: int | None,
        audit: AuditEvent,
    ) -> ApiToken:
        row = ApiTokenRow(
            user_id=user_id,
            kind=kind.value,
            name=name,
            token_hash=token_hash,
            prefix=prefix,
            created_at=created_at,
            expires_at=expires_at,
            revoked_at=None,
            project_id=project_id,
        )
        self._session.add(row)
        _flush(self._session)
        self._audit.append(audit)
        return _token(row)

    def revoke_token(self, token_id: int, at: datetime, *, audit: AuditEvent) -> ApiToken:
        row = self._session.get(ApiTokenRow, token_id)
        if row is None:
            raise NotFound(f"no token with id {token_id}")
        row.revoked_at = at
        _flush(self._session)
        self._audit.append(audit)
        return _token(row)

    def touch(self, token_id: int, at: datetime) -> None:
        self._session.execute(update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_seen_at=at))

    def revoke_all_for_user(
        self, user_id: int, at: datetime, *, audit: AuditEvent, kind: TokenKind | None = None
    ) -> int:
        statement = update(ApiTokenRow).where(
            ApiTokenRow.user_id == user_id, ApiTokenRow.revoked_at.is_(None)
        )
        if kind is not None:
            statement = statement.where(ApiTokenRow.kind == kind.value)
        result = self._session.execute(statement.values(revoked_at=at))
        self._audit.append(audit)
        return int(getattr(result, "rowcount", 0) or 0)


def _dataset(row: DatasetRow, custodian: str) -> Dataset:
    return Dataset(
        id=row.id,
        name=row.name,
        title=row.title,
        description=row.description,
        population=row.population,
        custodian_id=row.custodian_id,
        custodian=custodian,
        contribution_bound=row.contribution_bound,
        current_version=row.current_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        max_epsilon=Decimal(row.max_epsilon),
    )


def _version(row: DatasetVersionRow) -> DatasetVersion:
    return DatasetVersion(
        dataset_id=row.dataset_id,
        version=row.version,
        path=row.path,
        created_at=row.created_at,
        created_by=row.created_by,
        source_name=row.source_name,
        source_sha256=row.source_sha256,
        spec_sha256=row.spec_sha256,
        spec_yaml=row.spec_yaml,
        columns=tuple(CatalogColumn.from_json(c) for c in json.loads(row.columns_json)),
        report=json.loads(row.report_json),
        rows_written=row.rows_written,
        persons=row.persons,
        key_fingerprint=row.key_fingerprint,
    )


class SqlCatalogRepository:
    def __init__(self, session: Session, audit: SqlAuditLog) -> None:
        self._session = session
        self._audit = audit

    def _query(self) -> Select[DatasetRow, str]:
        return select(DatasetRow, UserRow.username).join(UserRow, UserRow.id == DatasetRow.custodian_id)

    def get_dataset(self, name: str) -> Dataset | None:
        row = self._session.execute(self._query().where(DatasetRow.name == name)).one_or_none()
        return _dataset(row[0], row[1]) if row is not None else None

    def list_datasets(self) -> list[Dataset]:
        rows = self._session.execute(self._query().order_by(DatasetRow.name)).all()
        return [_dataset(r[0], r[1]) for r in rows]

    def get_version(self, dataset_id: int, version: int) -> DatasetVersion | None:
        row = self._session.execute(
            select(DatasetVersionRow).where(
                DatasetVersionRow.dataset_id == dataset_id, DatasetVersionRow.version == version
            )
        ).scalar_one_or_none()
        return _version(row) if row is not None else None

    def list_versions(self, dataset_id: int) -> list[DatasetVersion]:
        rows = self._session.execute(
            select(DatasetVersionRow)
            .where(DatasetVersionRow.dataset_id == dataset_id)
            .order_by(DatasetVersionRow.version)
        ).scalars()
        return [_version(r) for r in rows]

    def add_dataset(
        self,
        *,
        name: str,
        title: str,
        description: str,
        population: str,
        custodian_id: int,
        contribution_bound: int,
        created_at: datetime,
        audit: AuditEvent,
    ) -> Dataset:
        row = DatasetRow(
            name=name,
            title=title,
            description=description,
            population=population,
            custodian_id=custodian_id,
            contribution_bound=contribution_bound,
            current_version=None,
            created_at=created_at,
            updated_at=created_at,
        )
        self._session.add(row)
        _flush(self._session)
        self._audit.append(audit)
        dataset = self.get_dataset(name)
        assert dataset is not None
        return dataset

    def set_dataset_policy(self, dataset_id: int, max_epsilon: Decimal, *, audit: AuditEvent) -> Dataset:
        row = self._session.get(DatasetRow, dataset_id)
        if row is None:
            raise NotFound(f"no dataset with id {dataset_id}")
        row.max_epsilon = str(max_epsilon)
        _flush(self._session)
        self._audit.append(audit)
        dataset = self.get_dataset(row.name)
        assert dataset is not None
        return dataset

    def publish_version(
        self,
        dataset_id: int,
        version: DatasetVersion,
        *,
        title: str,
        description: str,
        contribution_bound: int,
        audit: AuditEvent,
    ) -> Dataset:
        row = self._session.get(DatasetRow, dataset_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no dataset with id {dataset_id}")
        self._session.add(
            DatasetVersionRow(
                dataset_id=dataset_id,
                version=version.version,
                path=version.path,
                created_at=version.created_at,
                created_by=version.created_by,
                source_name=version.source_name,
                source_sha256=version.source_sha256,
                spec_sha256=version.spec_sha256,
                spec_yaml=version.spec_yaml,
                columns_json=json.dumps([c.as_json() for c in version.columns], default=str),
                report_json=json.dumps(version.report, default=str),
                rows_written=version.rows_written,
                persons=version.persons,
                key_fingerprint=version.key_fingerprint,
            )
        )
        row.current_version = version.version
        row.title = title
        row.description = description
        row.contribution_bound = contribution_bound
        row.updated_at = version.created_at
        _flush(self._session)
        self._audit.append(audit)
        dataset = self.get_dataset(row.name)
        assert dataset is not None
        return dataset


class SqlOptOutRepository:
    def __init__(self, session: Session, audit: SqlAuditLog) -> None:
        self._session = session
        self._audit = audit

    def list_opt_outs(self) -> list[str]:
        return list(self._session.execute(select(OptOutRow.pseudonym)).scalars())

    def count_opt_outs(self) -> int:
        return int(self._session.execute(select(func.count()).select_from(OptOutRow)).scalar_one())

    def replace_opt_outs(self, pseudonyms: list[str], loaded_at: datetime, *, audit: AuditEvent) -> int:
        self._session.execute(delete(OptOutRow))
        unique = sorted(set(pseudonyms))
        for start in range(0, len(unique), 10_000):
            chunk = unique[start : start + 10_000]
            self._session.execute(
                insert(OptOutRow), [{"pseudonym": p, "loaded_at": loaded_at} for p in chunk]
            )
        self._audit.append(audit)
        return len(unique)


def _request(row: AccessRequestRow, applicant: str) -> AccessRequest:
    return AccessRequest(
        id=row.id,
        applicant_id=row.applicant_id,
        applicant=applicant,
        state=RequestState(row.state),
        form=AccessRequestForm.model_validate_json(row.form_json),
        parts=tuple(Part.from_json(p) for p in json.loads(row.parts_json)),
        created_at=row.created_at,
        updated_at=row.updated_at,
        project_id=row.project_id,
        amends_project_id=row.amends_project_id,
    )


def _project(row: ProjectRow) -> Project:
    return Project(
        id=row.id,
        request_id=row.request_id,
        title=row.title,
        lay_summary=row.lay_summary,
        organisation=row.organisation,
        state=ProjectState(row.state),
        start_date=row.start_date,
        end_date=row.end_date,
        epsilon=Decimal(row.epsilon),
        delta=Decimal(row.delta) if row.delta is not None else None,
        scope=json.loads(row.scope_json),
        conditions=json.loads(row.conditions_json),
        members=json.loads(row.members_json),
        created_at=row.created_at,
    )


_Columns = TypeVarTuple("_Columns")


def _chunks(ids: Sequence[int], size: int = 900) -> list[list[int]]:
    """Ids in slices small enough for one ``IN`` list on every backend (SQLite allows 999 variables)."""
    unique = list(dict.fromkeys(ids))
    return [unique[i : i + size] for i in range(0, len(unique), size)]


class SqlAccessRepository:
    def __init__(self, session: Session, audit: SqlAuditLog) -> None:
        self._session = session
        self._audit = audit

    def _with_applicant(self, row: AccessRequestRow) -> AccessRequest:
        user = self._session.get(UserRow, row.applicant_id)
        return _request(row, user.username if user else "?")

    def get_request(self, request_id: int, *, lock: bool = False) -> AccessRequest | None:
        row = self._session.get(AccessRequestRow, request_id, with_for_update=lock, populate_existing=lock)
        return self._with_applicant(row) if row is not None else None

    def list_requests(self) -> list[AccessRequest]:
        return self.find_requests(RequestQuery())

    @staticmethod
    def _selected(statement: Select[*_Columns], query: RequestQuery) -> Select[*_Columns]:
        if query.party is not None:
            parties = (
                select(AccessRequestPartyRow.request_id)
                .where(AccessRequestPartyRow.username == query.party)
                .where(AccessRequestPartyRow.relation.in_([r.value for r in query.through]))
            )
            statement = statement.where(AccessRequestRow.id.in_(parties))
        if query.state is not None:
            statement = statement.where(AccessRequestRow.state == query.state.value)
        return statement

    def find_requests(self, query: RequestQuery) -> list[AccessRequest]:
        statement = self._selected(
            select(AccessRequestRow, UserRow.username).join(
                UserRow, UserRow.id == AccessRequestRow.applicant_id
            ),
            query,
        )
        order = AccessRequestRow.id.desc() if query.newest_first else AccessRequestRow.id
        statement = statement.order_by(order).offset(query.offset).limit(query.limit)
        return [_request(row, username) for row, username in self._session.execute(statement)]

    def count_requests(self, query: RequestQuery) -> int:
        statement = self._selected(select(func.count()).select_from(AccessRequestRow), query)
        return int(self._session.execute(statement).scalar_one())

    def find_request_projects(self, query: RequestQuery) -> set[int]:
        statement = self._selected(
            select(AccessRequestRow.project_id, AccessRequestRow.amends_project_id), query
        )
        return {pid for pair in self._session.execute(statement) for pid in pair if pid is not None}

    def _record_parties(self, request: AccessRequest) -> None:
        self._session.execute(
            delete(AccessRequestPartyRow).where(AccessRequestPartyRow.request_id == request.id)
        )
        self._session.execute(
            insert(AccessRequestPartyRow),
            [
                {"request_id": request.id, "username": user, "relation": relation.value}
                for user, relation in sorted(relations(request))
            ],
        )

    def add_request(
        self,
        *,
        applicant_id: int,
        state: RequestState,
        form: AccessRequestForm,
        parts: tuple[Part, ...],
        created_at: datetime,
        amends_project_id: int | None,
        audit: AuditEvent,
    ) -> AccessRequest:
        row = AccessRequestRow(
            amends_project_id=amends_project_id,
            applicant_id=applicant_id,
            state=state.value,
            form_json=form.model_dump_json(),
            parts_json=json.dumps([p.as_json() for p in parts]),
            created_at=created_at,
            updated_at=created_at,
            project_id=None,
        )
        self._session.add(row)
        _flush(self._session)
        self._audit.append(dataclasses.replace(audit, object_id=str(row.id)))
        created = self._with_applicant(row)
        self._record_parties(created)
        return created

    def update_request(
        self,
        request_id: int,
        *,
        state: RequestState,
        form: AccessRequestForm,
        parts: tuple[Part, ...],
        updated_at: datetime,
        project_id: int | None,
        audit: AuditEvent,
    ) -> AccessRequest:
        row = self._session.get(AccessRequestRow, request_id)
        if row is None:
            raise NotFound(f"no access request {request_id}")
        row.state = state.value
        row.form_json = form.model_dump_json()
        row.parts_json = json.dumps([p.as_json() for p in parts])
        row.updated_at = updated_at
        row.project_id = project_id
        _flush(self._session)
        self._audit.append(audit)
        updated = self._with_applicant(row)
        self._record_parties(updated)
        return updated

    def get_project(self, project_id: int, *, lock: bool = False) -> Project | None:
        row = self._session.get(ProjectRow, project_id, with_for_update=lock, populate_existing=lock)
        return _project(row) if row is not None else None

    def list_projects(
        self, *, newest_first: bool = False, offset: int = 0, limit: int | None = None
    ) -> list[Project]:
        order = ProjectRow.id.desc() if newest_first else ProjectRow.id
        rows = self._session.execute(select(ProjectRow).order_by(order).offset(offset).limit(limit))
        return [_project(r) for r in rows.scalars()]

    def count_projects(self) -> int:
        return int(self._session.execute(select(func.count()).select_from(ProjectRow)).scalar_one())

    def add_project(self, project: Project, *, audit: AuditEvent) -> Project:
        row = ProjectRow(
            request_id=project.request_id,
            title=project.title,
            lay_summary=project.lay_summary,
            organisation=project.organisation,
            state=project.state.value,
            start_date=project.start_date,
            end_date=project.end_date,
            epsilon=str(project.epsilon),
            delta=str(project.delta) if project.delta is not None else None,
            scope_json=json.dumps(project.scope),
            conditions_json=json.dumps(project.conditions),
            members_json=json.dumps(project.members),
            created_at=project.created_at,
            updated_at=project.created_at,
        )
        self._session.add(row)
        _flush(self._session)
        self._audit.append(dataclasses.replace(audit, object_id=str(row.id)))
        return _project(row)

    def update_project(self, project: Project, at: datetime, *, audit: AuditEvent) -> Project:
        row = self._session.get(ProjectRow, project.id)
        if row is None:
            raise NotFound(f"no project {project.id}")
        row.end_date = project.end_date
        row.epsilon = str(project.epsilon)
        row.delta = str(project.delta) if project.delta is not None else None
        row.scope_json = json.dumps(project.scope)
        row.conditions_json = json.dumps(project.conditions)
        row.members_json = json.dumps(project.members)
        row.updated_at = at
        _flush(self._session)
        self._audit.append(audit)
        return _project(row)

    def set_project_state(
        self, project_id: int, state: ProjectState, at: datetime, *, audit: AuditEvent
    ) -> Project:
        row = self._session.get(ProjectRow, project_id)
        if row is None:
            raise NotFound(f"no project {project_id}")
        row.state = state.value
        row.updated_at = at
        _flush(self._session)
        self._audit.append(audit)
        return _project(row)

    # --- applications in progress -----------------------------------------------------------

    def _draft(self, row: AccessDraftRow) -> Draft:
        owner = self._session.get(UserRow, row.owner_id)
        return Draft(
            id=row.id,
            owner_id=row.owner_id,
            owner=owner.username if owner else "?",
            answers=json.loads(row.answers_json),
            request_id=row.request_id,
            amends_project_id=row.amends_project_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def add_draft(
        self,
        *,
        owner_id: int,
        answers: Mapping[str, Any],
        request_id: int | None,
        amends_project_id: int | None,
        at: datetime,
        audit: AuditEvent,
    ) -> Draft:
        row = AccessDraftRow(
            owner_id=owner_id,
            answers_json=json.dumps(answers, sort_keys=True),
            request_id=request_id,
            amends_project_id=amends_project_id,
            created_at=at,
            updated_at=at,
        )
        self._session.add(row)
        _flush(self._session)
        self._audit.append(dataclasses.replace(audit, object_id=str(row.id)))
        return self._draft(row)

    def get_draft(self, draft_id: int, *, lock: bool = False) -> Draft | None:
        row = self._session.get(AccessDraftRow, draft_id, with_for_update=lock, populate_existing=lock)
        return self._draft(row) if row is not None else None

    def find_drafts(self, owner_id: int) -> list[Draft]:
        rows = self._session.scalars(
            select(AccessDraftRow)
            .where(AccessDraftRow.owner_id == owner_id)
            .order_by(AccessDraftRow.updated_at.desc(), AccessDraftRow.id.desc())
        )
        return [self._draft(row) for row in rows]

    def save_draft(
        self, draft_id: int, answers: Mapping[str, Any], at: datetime, *, audit: AuditEvent
    ) -> Draft:
        row = self._session.get(AccessDraftRow, draft_id)
        if row is None:
            raise NotFound(f"no application {draft_id}")
        row.answers_json = json.dumps(answers, sort_keys=True)
        row.updated_at = at
        _flush(self._session)
        self._audit.append(audit)
        return self._draft(row)

    def delete_draft(self, draft_id: int, *, audit: AuditEvent) -> None:
        self._session.execute(delete(AccessDraftRow).where(AccessDraftRow.id == draft_id))
        self._audit.append(audit)


def _account(row: BudgetAccountRow) -> Account:
    return Account(
        project_id=row.project_id,
        granted=Budget(Decimal(row.granted_epsilon), Decimal(row.granted_delta)),
        spent=Budget(Decimal(row.spent_epsilon), Decimal(row.spent_delta)),
        reserved=Budget(Decimal(row.reserved_epsilon), Decimal(row.reserved_delta)),
    )


class SqlBudgetRepository:
    def __init__(self, session: Session, audit: SqlAuditLog) -> None:
        self._session = session
        self._audit = audit

    def _row(self, project_id: int) -> BudgetAccountRow:
        row = self._session.get(BudgetAccountRow, project_id)
        if row is None:
            raise NotFound(f"project {project_id} has no budget account")
        return row

    def _entry(
        self,
        project_id: int,
        kind: EntryKind,
        amount: Budget,
        at: datetime,
        reservation_id: int | None,
        reference: str,
    ) -> BudgetEntryRow:
        entry = BudgetEntryRow(
            project_id=project_id,
            kind=kind.value,
            epsilon=str(amount.epsilon),
            delta=str(amount.delta),
            reservation_id=reservation_id,
            reference=reference[:200],
            created_at=at,
        )
        self._session.add(entry)
        _flush(self._session)
        return entry

    def get_account(self, project_id: int, *, lock: bool = False) -> Account | None:
        row = self._session.get(BudgetAccountRow, project_id, with_for_update=lock, populate_existing=lock)
        return _account(row) if row is not None else None

    def list_entries(self, project_id: int) -> list[dict[str, object]]:
        rows = self._session.execute(
            select(BudgetEntryRow).where(BudgetEntryRow.project_id == project_id).order_by(BudgetEntryRow.id)
        ).scalars()
        return [
            {
                "id": r.id,
                "kind": r.kind,
                "epsilon": r.epsilon,
                "delta": r.delta,
                "reservation_id": r.reservation_id,
                "reference": r.reference,
                "created_at": r.created_at.isoformat(),
            }
            for r in rows
        ]

    def open_account(self, project_id: int, granted: Budget, at: datetime, *, audit: AuditEvent) -> Account:
        row = BudgetAccountRow(
            project_id=project_id,
            granted_epsilon=str(granted.epsilon),
            granted_delta=str(granted.delta),
            spent_epsilon="0",
            spent_delta="0",
            reserved_epsilon="0",
            reserved_delta="0",
            updated_at=at,
        )
        self._session.add(row)
        self._entry(project_id, EntryKind.GRANT, granted, at, None, "approval")
        self._audit.append(audit)
        return _account(row)

    def grant(self, project_id: int, amount: Budget, at: datetime, *, audit: AuditEvent) -> Account:
        row = self._row(project_id)
        granted = _account(row).granted + amount
        row.granted_epsilon, row.granted_delta = str(granted.epsilon), str(granted.delta)
        row.updated_at = at
        self._entry(project_id, EntryKind.GRANT, amount, at, None, "amendment")
        self._audit.append(audit)
        return _account(row)

    def reserve(self, project_id: int, cost: Budget, at: datetime, *, audit: AuditEvent) -> Reservation:
        row = self._row(project_id)
        account = _account(row)
        account.check_can_reserve(cost)
        reserved = account.reserved + cost
        row.reserved_epsilon, row.reserved_delta = str(reserved.epsilon), str(reserved.delta)
        row.updated_at = at
        entry = self._entry(project_id, EntryKind.RESERVE, cost, at, None, "")
        self._audit.append(dataclasses.replace(audit, details={**audit.details, "reservation": entry.id}))
        return Reservation(entry.id, project_id, cost)

    def settle(
        self, reservation: Reservation, *, spent: bool, reference: str, at: datetime, audit: AuditEvent
    ) -> Account:
        row = self._row(reservation.project_id)
        done = self._session.execute(
            select(func.count())
            .select_from(BudgetEntryRow)
            .where(BudgetEntryRow.reservation_id == reservation.id)
        ).scalar_one()
        if done:
            raise InvalidState(f"reservation {reservation.id} is already settled")
        account = _account(row)
        reserved = account.reserved - reservation.cost
        row.reserved_epsilon, row.reserved_delta = str(reserved.epsilon), str(reserved.delta)
        if spent:
            total = account.spent + reservation.cost
            row.spent_epsilon, row.spent_delta = str(total.epsilon), str(total.delta)
        row.updated_at = at
        kind = EntryKind.COMMIT if spent else EntryKind.RETURN
        self._entry(reservation.project_id, kind, reservation.cost, at, reservation.id, reference)
        self._audit.append(audit)
        return _account(row)


def _release(row: ReleaseRow) -> Release:
    return Release(
        id=row.id,
        project_id=row.project_id,
        dataset=row.dataset,
        dataset_version=row.dataset_version,
        fingerprint=row.fingerprint,
        plan=QueryPlan.model_validate_json(row.plan_json),
        epsilon=Decimal(row.epsilon),
        delta=Decimal(row.delta),
        mechanism=row.mechanism,
        noise_scales=json.loads(row.noise_json),
        values=json.loads(row.values_json),
        accuracy=json.loads(row.accuracy_json),
        author=row.author,
        created_at=row.created_at,
    )


class SqlReleaseRepository:
    def __init__(self, session: Session, audit: SqlAuditLog) -> None:
        self._session = session
        self._audit = audit

    def get_release(self, release_id: int) -> Release | None:
        row = self._session.get(ReleaseRow, release_id)
        return _release(row) if row is not None else None

    def find_release(self, project_id: int, fingerprint: str) -> Release | None:
        row = self._session.execute(
            select(ReleaseRow).where(
                ReleaseRow.project_id == project_id, ReleaseRow.fingerprint == fingerprint
            )
        ).scalar_one_or_none()
        return _release(row) if row is not None else None

    def list_releases(self, project_id: int) -> list[Release]:
        rows = self._session.execute(
            select(ReleaseRow).where(ReleaseRow.project_id == project_id).order_by(ReleaseRow.id)
        ).scalars()
        return [_release(r) for r in rows]

    def add_release(self, release: Release, *, audit: AuditEvent) -> Release:
        row = ReleaseRow(
            project_id=release.project_id,
            dataset=release.dataset,
            dataset_version=release.dataset_version,
            fingerprint=release.fingerprint,
            plan_json=release.plan.model_dump_json(),
            epsilon=str(release.epsilon),
            delta=str(release.delta),
            mechanism=release.mechanism,
            noise_json=json.dumps(release.noise_scales),
            values_json=json.dumps(release.values, default=str),
            accuracy_json=json.dumps(release.accuracy),
            author=release.author,
            created_at=release.created_at,
        )
        self._session.add(row)
        _flush(self._session)
        self._audit.append(dataclasses.replace(audit, object_id=str(row.id)))
        return _release(row)


def _output_request(row: OutputRequestRow) -> OutputRequest:
    return OutputRequest(
        id=row.id,
        project_id=row.project_id,
        author=row.author,
        state=OutputState(row.state),
        version=row.version,
        context=row.context,
        controls=row.controls,
        policy_version=row.policy_version,
        policy=json.loads(row.policy_json) if row.policy_json is not None else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
        submitted_at=row.submitted_at,
    )


def _output_file(row: OutputFileRow) -> OutputFile:
    return OutputFile(
        id=row.id,
        request_id=row.request_id,
        version=row.version,
        name=row.name,
        kind=row.kind,
        sha256=row.sha256,
        original_sha256=row.original_sha256,
        size=row.size,
        original_size=row.original_size,
        description=row.description,
        derived_from=tuple(json.loads(row.derived_from_json)),
        spec=json.loads(row.spec_json),
        holding_path=row.holding_path,
        changes=tuple(json.loads(row.changes_json)),
        checks=json.loads(row.checks_json) if row.checks_json is not None else None,
        created_at=row.created_at,
    )


def _review(row: OutputReviewRow) -> Review:
    return Review(
        reviewer=row.reviewer,
        version=row.version,
        decisions=tuple(
            FileDecision(d["file"], Decision(d["decision"]), d["comment"])
            for d in json.loads(row.decisions_json)
        ),
        overrides=tuple(
            CheckOverride(o["file"], o["rule"], o["reason"]) for o in json.loads(row.overrides_json)
        ),
        consolidating=row.consolidating,
        decided_at=row.decided_at,
    )


def _released(row: ReleasedFileRow) -> ReleasedFile:
    return ReleasedFile(
        id=row.id,
        file_id=row.file_id,
        request_id=row.request_id,
        project_id=row.project_id,
        name=row.name,
        sha256=row.sha256,
        path=row.path,
        released_at=row.released_at,
        withdrawn_at=row.withdrawn_at,
        withdrawn_by=row.withdrawn_by,
        withdrawal_reason=row.withdrawal_reason,
    )


class SqlOutputRepository:
    def __init__(self, session: Session, audit: SqlAuditLog) -> None:
        self._session = session
        self._audit = audit

    def _row(self, request_id: int) -> OutputRequestRow:
        row = self._session.get(OutputRequestRow, request_id)
        if row is None:
            raise NotFound(f"no output request {request_id}")
        return row

    def get_request(self, request_id: int, *, lock: bool = False) -> OutputRequest | None:
        row = self._session.get(OutputRequestRow, request_id, with_for_update=lock, populate_existing=lock)
        return _output_request(row) if row is not None else None

    def list_requests(
        self, *, project_ids: list[int] | None = None, states: list[OutputState] | None = None
    ) -> list[OutputRequest]:
        query = select(OutputRequestRow).order_by(OutputRequestRow.id)
        if project_ids is not None:
            query = query.where(OutputRequestRow.project_id.in_(project_ids))
        if states is not None:
            query = query.where(OutputRequestRow.state.in_([s.value for s in states]))
        return [_output_request(r) for r in self._session.execute(query).scalars()]

    def _waiting(self, states: Sequence[OutputState], exclude_projects: Sequence[int]) -> Select[Any]:
        query = select(OutputRequestRow).where(OutputRequestRow.state.in_([s.value for s in states]))
        if exclude_projects:
            query = query.where(OutputRequestRow.project_id.not_in(list(exclude_projects)))
        return query

    def find_review_queue(
        self,
        states: Sequence[OutputState],
        *,
        exclude_projects: Sequence[int] = (),
        offset: int = 0,
        limit: int | None = None,
    ) -> list[tuple[OutputRequest, int, int]]:
        query = self._waiting(states, exclude_projects).order_by(
            OutputRequestRow.review_risk.desc(),
            OutputRequestRow.review_files.desc(),
            func.coalesce(OutputRequestRow.submitted_at, OutputRequestRow.created_at),
            OutputRequestRow.id,
        )
        rows = self._session.execute(query.offset(offset).limit(limit)).scalars()
        return [(_output_request(r), r.review_files, r.review_risk) for r in rows]

    def count_review_queue(
        self, states: Sequence[OutputState], *, exclude_projects: Sequence[int] = ()
    ) -> int:
        query = self._waiting(states, exclude_projects).with_only_columns(func.count())
        return int(self._session.execute(query).scalar_one())

    def get_file(self, file_id: int) -> OutputFile | None:
        row = self._session.get(OutputFileRow, file_id)
        return _output_file(row) if row is not None else None

    def list_files(self, request_id: int) -> list[OutputFile]:
        rows = self._session.execute(
            select(OutputFileRow)
            .where(OutputFileRow.request_id == request_id)
            .order_by(OutputFileRow.version, OutputFileRow.id)
        ).scalars()
        return [_output_file(r) for r in rows]

    def list_reviews(self, request_id: int) -> list[Review]:
        rows = self._session.execute(
            select(OutputReviewRow)
            .where(OutputReviewRow.request_id == request_id)
            .order_by(OutputReviewRow.id)
        ).scalars()
        return [_review(r) for r in rows]

    def list_files_of(self, request_ids: Sequence[int]) -> dict[int, list[OutputFile]]:
        found: dict[int, list[OutputFile]] = {i: [] for i in request_ids}
        for chunk in _chunks(request_ids):
            rows = self._session.execute(
                select(OutputFileRow)
                .where(OutputFileRow.request_id.in_(chunk))
                .order_by(OutputFileRow.version, OutputFileRow.id)
            ).scalars()
            for row in rows:
                found[row.request_id].append(_output_file(row))
        return found

    def list_reviews_of(self, request_ids: Sequence[int]) -> dict[int, list[Review]]:
        found: dict[int, list[Review]] = {i: [] for i in request_ids}
        for chunk in _chunks(request_ids):
            rows = self._session.execute(
                select(OutputReviewRow)
                .where(OutputReviewRow.request_id.in_(chunk))
                .order_by(OutputReviewRow.id)
            ).scalars()
            for row in rows:
                found[row.request_id].append(_review(row))
        return found

    def list_released(self, request_id: int) -> list[ReleasedFile]:
        rows = self._session.execute(
            select(ReleasedFileRow)
            .where(ReleasedFileRow.request_id == request_id)
            .order_by(ReleasedFileRow.id)
        ).scalars()
        return [_released(r) for r in rows]

    def find_released(self, file_id: int) -> ReleasedFile | None:
        row = self._session.execute(
            select(ReleasedFileRow).where(ReleasedFileRow.file_id == file_id)
        ).scalar_one_or_none()
        return _released(row) if row is not None else None

    def add_request(
        self, *, project_id: int, author: str, context: str, controls: str, at: datetime, audit: AuditEvent
    ) -> OutputRequest:
        row = OutputRequestRow(
            project_id=project_id,
            author=author,
            state=OutputState.DRAFT.value,
            version=1,
            context=context,
            controls=controls,
            policy_version=None,
            policy_json=None,
            created_at=at,
            updated_at=at,
            submitted_at=None,
        )
        self._session.add(row)
        _flush(self._session)
        self._audit.append(dataclasses.replace(audit, object_id=str(row.id)))
        return _output_request(row)

    def update_request(
        self,
        request_id: int,
        *,
        state: OutputState,
        at: datetime,
        context: str | None = None,
        controls: str | None = None,
        submitted: bool = False,
        audit: AuditEvent,
    ) -> OutputRequest:
        row = self._row(request_id)
        row.state = state.value
        row.updated_at = at
        if context is not None:
            row.context = context
        if controls is not None:
            row.controls = controls
        if submitted:
            row.submitted_at = at
        _flush(self._session)
        self._audit.append(audit)
        return _output_request(row)

    def start_version(self, request_id: int, at: datetime, *, audit: AuditEvent) -> OutputRequest:
        row = self._row(request_id)
        current = self._session.execute(
            select(OutputFileRow).where(
                OutputFileRow.request_id == request_id, OutputFileRow.version == row.version
            )
        ).scalars()
        for f in list(current):
            self._session.add(
                OutputFileRow(
                    request_id=request_id,
                    version=row.version + 1,
                    name=f.name,
                    kind=f.kind,
                    sha256=f.sha256,
                    original_sha256=f.original_sha256,
                    size=f.size,
                    original_size=f.original_size,
                    description=f.description,
                    derived_from_json=f.derived_from_json,
                    spec_json=f.spec_json,
                    holding_path=f.holding_path,
                    changes_json=f.changes_json,
                    checks_json=None,
                    created_at=f.created_at,
                )
            )
        row.version += 1
        row.updated_at = at
        _flush(self._session)
        self._audit.append(audit)
        return _output_request(row)

    def add_file(self, file: OutputFile, *, audit: AuditEvent) -> OutputFile:
        self._session.execute(
            delete(OutputFileRow).where(
                OutputFileRow.request_id == file.request_id,
                OutputFileRow.version == file.version,
                OutputFileRow.name == file.name,
            )
        )
        row = OutputFileRow(
            request_id=file.request_id,
            version=file.version,
            name=file.name,
            kind=file.kind,
            sha256=file.sha256,
            original_sha256=file.original_sha256,
            size=file.size,
            original_size=file.original_size,
            description=file.description,
            derived_from_json=json.dumps(list(file.derived_from)),
            spec_json=json.dumps(dict(file.spec), sort_keys=True),
            holding_path=file.holding_path,
            changes_json=json.dumps(list(file.changes)),
            checks_json=None,
            created_at=file.created_at,
        )
        self._session.add(row)
        _flush(self._session)
        self._audit.append(dataclasses.replace(audit, details={**audit.details, "file": row.id}))
        return _output_file(row)

    def remove_file(self, file_id: int, *, audit: AuditEvent) -> None:
        row = self._session.get(OutputFileRow, file_id)
        if row is None:
            raise NotFound(f"no output file {file_id}")
        self._session.delete(row)
        _flush(self._session)
        self._audit.append(audit)

    def record_checks(
        self,
        request_id: int,
        checks: dict[int, str],
        *,
        policy_version: str,
        policy_json: str,
        audit: AuditEvent,
    ) -> None:
        request = self._row(request_id)
        for file_id, record in checks.items():
            row = self._session.get(OutputFileRow, file_id)
            if row is None or row.request_id != request_id:
                raise NotFound(f"no file {file_id} in output request {request_id}")
            row.checks_json = record
        request.policy_version = policy_version
        request.policy_json = policy_json
        current = [f for f in self.list_files(request_id) if f.version == request.version]
        request.review_files = len(current)
        request.review_risk = CHECK_SEVERITY.get(worst_check(current), 0)
        _flush(self._session)
        self._audit.append(audit)

    def add_review(self, request_id: int, review: Review, *, audit: AuditEvent) -> Review:
        row = OutputReviewRow(
            request_id=request_id,
            version=review.version,
            reviewer=review.reviewer,
            decisions_json=json.dumps(review.to_dict()["decisions"]),
            overrides_json=json.dumps(review.to_dict()["overrides"]),
            consolidating=review.consolidating,
            decided_at=review.decided_at,
        )
        self._session.add(row)
        _flush(self._session)
        self._audit.append(audit)
        return _review(row)

    def add_released(self, released: ReleasedFile, *, audit: AuditEvent) -> ReleasedFile:
        row = ReleasedFileRow(
            file_id=released.file_id,
            request_id=released.request_id,
            project_id=released.project_id,
            name=released.name,
            sha256=released.sha256,
            path=released.path,
            released_at=released.released_at,
            withdrawn_at=None,
            withdrawn_by=None,
            withdrawal_reason=None,
        )
        self._session.add(row)
        _flush(self._session)
        self._audit.append(dataclasses.replace(audit, details={**audit.details, "released_file": row.id}))
        return _released(row)

    def withdraw_released(
        self, released_id: int, *, by: str, reason: str, at: datetime, audit: AuditEvent
    ) -> ReleasedFile:
        row = self._session.get(ReleasedFileRow, released_id)
        if row is None:
            raise NotFound(f"no released file {released_id}")
        if row.withdrawn_at is not None:
            raise InvalidState(f"{row.name} was already withdrawn on {row.withdrawn_at.date()}")
        row.withdrawn_at = at
        row.withdrawn_by = by
        row.withdrawal_reason = reason
        _flush(self._session)
        self._audit.append(audit)
        return _released(row)
