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

Who reads it is the access policy's (``check_view_executions``): the custodians of the project's
datasets, admins and operators; not the project's members, whose own work it is, and never a
workspace token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from enclave.domain.audit.chain import (
    GENESIS_HASH,
    AuditEvent,
    VerifyResult,
    digest,
    format_timestamp,
    verify_links,
)
from enclave.domain.clock import Clock, utcnow
from enclave.domain.errors import InvalidInput
from enclave.domain.identity.accounts import Actor
from enclave.domain.policy import check_record_execution, check_view_executions

if TYPE_CHECKING:  # the ports name this module's record
    from enclave.domain.ports import UnitOfWorkFactory

Kind = Literal["cell", "terminal"]
#: Longer code is kept to this many characters, and the record says it was truncated.
MAX_CODE_CHARS = 100_000
RECORDED = "workspace.code_recorded"


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
    records: Iterable[ExecutionRecord], *, head_seq: int | None = None, head_hash: str | None = None
) -> VerifyResult:
    """Every link of one project's record, in order, against the head the audit log recorded."""
    return verify_links(
        records,
        record_hash,
        head_seq=head_seq,
        head_hash=head_hash,
        subject="execution record",
        noun="record",
    )


class ExecutionService:
    def __init__(self, uow: UnitOfWorkFactory, *, clock: Clock = utcnow) -> None:
        self._uow = uow
        self._clock = clock

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
            records = uow.audit.iter_executions(project_id)
            try:
                return verify_records(records, head_seq=head_seq, head_hash=head_hash)
            finally:
                records.close()
