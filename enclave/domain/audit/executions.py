"""The execution record: the code of every notebook cell and terminal command line run in a
project's workspaces, a hash chain per project.

The workspace's Jupyter server writes a record *before* the kernel (or the shell) gets the code,
with its own key (``enclave.api.deps.workspace_server``): code in a notebook holds the workspace
token but not the key, so it can neither write nor silence records; the server forwards nothing
whose record was refused. Each record links to the one before it in its project
(``prev_hash``), and each append also writes an audit event naming the record's number and hash
(never the code), so the audit log, chained and append-only itself, pins the head of every
project's record: deleting the last records is caught by :meth:`ExecutionService.verify`. The
append takes the audit log's head lock first, which serialises the appends of one project, so
two cells recorded at once never fork the chain.

It is kept for the project's retention: its end date plus ``ENCLAVE_EXECUTION_RETENTION_DAYS``
(ten years by default). Then an operator or admin purges it (:meth:`ExecutionService.purge`):
the records go, the purge stays (the number of records and the last hash, in its own append-only
table and the audit log), and the database refuses to delete a record no purge reaches.

Who reads it is the access policy's (``check_view_executions``): the custodians of the project's
datasets, admins and operators; not the project's members, whose own work it is, and never a
workspace token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from enclave.domain.access.states import ProjectState
from enclave.domain.audit.chain import (
    GENESIS_HASH,
    AuditEvent,
    VerifyResult,
    digest,
    format_timestamp,
    verify_links,
)
from enclave.domain.clock import Clock, utcnow
from enclave.domain.errors import InvalidInput, InvalidState, NotFound
from enclave.domain.identity.accounts import Actor
from enclave.domain.policy import check_purge_executions, check_record_execution, check_view_executions

if TYPE_CHECKING:  # the ports name this module's record
    from enclave.domain.access.requests import Project
    from enclave.domain.ports import UnitOfWorkFactory

Kind = Literal["cell", "terminal"]
#: Longer code is kept to this many characters, and the record says it was truncated.
MAX_CODE_CHARS = 100_000
RECORDED = "workspace.code_recorded"
PURGED = "workspace.code_purged"


@dataclass(frozen=True)
class ExecutionRecord:
    project_id: int
    seq: int
    at: datetime
    username: str
    kernel_id: str
    kind: str
    code: str
    truncated: bool
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ExecutionPurge:
    """A project's record purged at the end of its retention: records 1 to ``through_seq`` are
    gone; ``head_hash`` (the last one's hash) is where a later record and the check start from."""

    project_id: int
    through_seq: int
    head_hash: str
    records: int
    at: datetime
    actor: str


def record_hash(record: ExecutionRecord) -> str:
    """The hash of a record: its content and the hash before it (everything but its own hash)."""
    fields = dataclasses.asdict(record)
    del fields["hash"]
    fields["at"] = format_timestamp(record.at)
    return digest(fields)


def chain_record(
    *,
    project_id: int,
    seq: int,
    at: datetime,
    username: str,
    kernel_id: str,
    kind: str,
    code: str,
    prev_hash: str,
) -> ExecutionRecord:
    unhashed = ExecutionRecord(
        project_id=project_id,
        seq=seq,
        at=at,
        username=username,
        kernel_id=kernel_id,
        kind=kind,
        code=code[:MAX_CODE_CHARS],
        truncated=len(code) > MAX_CODE_CHARS,
        prev_hash=prev_hash,
        hash="",
    )
    return dataclasses.replace(unhashed, hash=record_hash(unhashed))


def verify_records(
    records: Iterable[ExecutionRecord],
    *,
    head_seq: int | None = None,
    head_hash: str | None = None,
    purge: ExecutionPurge | None = None,
) -> VerifyResult:
    """Every link of one project's record, in order, against the head the audit log recorded; after
    a purge, from the purge's last record on."""
    return verify_links(
        records,
        record_hash,
        head_seq=head_seq,
        head_hash=head_hash,
        start_seq=purge.through_seq if purge is not None else 0,
        start_hash=purge.head_hash if purge is not None else GENESIS_HASH,
        subject="execution record",
        noun="record",
    )


class ExecutionService:
    def __init__(self, uow: UnitOfWorkFactory, *, clock: Clock = utcnow, retention_days: int = 3650) -> None:
        self._uow = uow
        self._clock = clock
        self.retention = timedelta(days=retention_days)

    def record(self, actor: Actor, kernel_id: str, kind: Kind, code: str) -> ExecutionRecord:
        """Chain the code a workspace's server is about to run (the caller is that server: the
        route checks its key)."""
        project_id, username = check_record_execution(actor)
        if kind not in ("cell", "terminal"):
            raise InvalidInput(f"kind must be 'cell' or 'terminal', not {kind!r}")
        with self._uow() as uow:
            head_seq, head_hash = uow.audit.get_execution_head(project_id)
            record = chain_record(
                project_id=project_id,
                seq=head_seq + 1,
                at=self._clock(),
                username=username,
                kernel_id=kernel_id[:200],
                kind=kind,
                code=code,
                prev_hash=head_hash,
            )
            uow.audit.append_execution(
                record,
                audit=AuditEvent(
                    RECORDED,
                    actor.name,
                    "project",
                    str(project_id),
                    {"seq": record.seq, "hash": record.hash, "kind": kind, "kernel": record.kernel_id},
                ),
            )
        return record

    def _check(self, actor: Actor, project_id: int) -> None:
        with self._uow(write=False) as uow:
            project = uow.access.get_project(project_id)
            datasets = [uow.catalog.get_dataset(name) for name in project.scope] if project else []
            custodians = frozenset(d.custodian_id for d in datasets if d is not None)
        check_view_executions(actor, project_id, project, custodians)

    def page(
        self, actor: Actor, project_id: int, *, after_seq: int = 0, limit: int = 100
    ) -> list[ExecutionRecord]:
        """A page of a project's record, oldest first, after ``after_seq``."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be between 1 and 1000")
        self._check(actor, project_id)
        with self._uow(write=False) as uow:
            return uow.audit.list_executions(project_id, after_seq=after_seq, limit=limit)

    def latest(self, actor: Actor, project_id: int, *, limit: int = 50) -> list[ExecutionRecord]:
        """The ``limit`` newest records, newest first."""
        self._check(actor, project_id)
        with self._uow(write=False) as uow:
            return uow.audit.list_executions(project_id, limit=limit, newest_first=True)

    def kept_until(self, project: Project) -> date:
        """The last day a project's record is kept: its end date plus the retention period (the
        record is oversight of the project, so it outlives it)."""
        return project.end_date + self.retention

    def purge(self, actor: Actor, project_id: int) -> ExecutionPurge:
        """Delete a project's record once its retention is over (the project over, and its end date
        plus the retention period past). The purge itself is kept, and audited: the number of
        records and the hash of the last, so the check and any later record start from there."""
        check_purge_executions(actor)
        today = self._clock().date()
        with self._uow() as uow:
            project = uow.access.get_project(project_id)
            if project is None:
                raise NotFound(f"no project {project_id}")
            if project.effective_state(today) in (ProjectState.ACTIVE, ProjectState.SUSPENDED):
                raise InvalidState(
                    f"project {project_id} is {project.effective_state(today)}: its execution record is"
                    f" kept until {self.kept_until(project)} (its end date, {project.end_date}, plus"
                    f" {self.retention.days} days)"
                )
            if today <= self.kept_until(project):
                raise InvalidState(
                    f"project {project_id}'s execution record is kept until {self.kept_until(project)}"
                    f" (its end date, {project.end_date}, plus {self.retention.days} days)"
                )
            head_seq, head_hash = uow.audit.get_execution_head(project_id)
            before = uow.audit.get_execution_purge(project_id)
            purged_seq = before.through_seq if before is not None else 0
            if head_seq == purged_seq:
                raise InvalidState(f"project {project_id}'s execution record has nothing to purge")
            purge = ExecutionPurge(
                project_id=project_id,
                through_seq=head_seq,
                head_hash=head_hash,
                records=head_seq - purged_seq,
                at=self._clock(),
                actor=actor.name,
            )
            uow.audit.purge_executions(
                purge,
                audit=AuditEvent(
                    PURGED,
                    actor.name,
                    "project",
                    str(project_id),
                    {"through_seq": head_seq, "hash": head_hash, "records": purge.records},
                ),
            )
        return purge

    def due(self, actor: Actor) -> list[int]:
        """The projects whose record's retention is over and that still have records."""
        check_purge_executions(actor)
        today = self._clock().date()
        with self._uow(write=False) as uow:
            ended = [
                p
                for p in uow.access.list_projects()
                if p.effective_state(today) not in (ProjectState.ACTIVE, ProjectState.SUSPENDED)
                and today > self.kept_until(p)
            ]
            due = []
            for project in ended:
                purge = uow.audit.get_execution_purge(project.id)
                after = purge.through_seq if purge is not None else 0
                if uow.audit.list_executions(project.id, after_seq=after, limit=1):
                    due.append(project.id)
        return due

    def verify(self, actor: Actor, project_id: int) -> VerifyResult:
        """The project's chain, link by link, against the head the audit log holds: the last
        ``workspace.code_recorded`` event of the project."""
        self._check(actor, project_id)
        with self._uow(write=False) as uow:
            pinned = uow.audit.list_events(
                action=RECORDED, object_type="project", object_id=str(project_id), limit=1
            )
            head_seq, head_hash = 0, GENESIS_HASH
            if pinned:
                details = pinned[0].details
                head_seq, head_hash = int(str(details["seq"])), str(details["hash"])
            purge = uow.audit.get_execution_purge(project_id)
            records = uow.audit.iter_executions(project_id)
            try:
                return verify_records(records, head_seq=head_seq, head_hash=head_hash, purge=purge)
            finally:
                records.close()
