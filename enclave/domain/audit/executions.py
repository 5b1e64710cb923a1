"""The execution record of workspaces: the code that ran in a project's notebooks and terminals.

The workspace's Jupyter server sends the enclave one record per executed cell (and per command
line typed in a terminal) before the kernel gets it. Each project's records form a hash chain of
their own, built like the audit log's (:mod:`enclave.domain.audit.chain`: the same canonical JSON,
timestamps and SHA-256 links): each record's hash covers its fields and the hash of the record
before it, so editing, deleting, inserting or reordering a record breaks a link that
:meth:`ExecutionRecordService.verify` finds and names. The store keeps each project's head (its
last record) beside the chain, so deleting the newest records is found too.

What is recorded: the project, the record's place in the project's chain, the member (from the
workspace token), the kernel (or terminal), the kind, the code (at most :data:`MAX_CODE_CHARS`
characters; ``truncated`` says when more ran) and the time by the enclave's clock, never one the
workspace sends.

Who reads it is :func:`enclave.domain.policy.check_view_executions`; records are kept until
:data:`DEFAULT_RETENTION_DAYS` after the project's end date, then purged by an operator
(:meth:`ExecutionRecordService.purge`), which the audit log records with the purged chain's head.

Not an audit event per cell: the record is itself an append-only, hash-chained log with its own
verification. An audit event per cell would write every cell twice and queue every cell of every
project (which waits for its record before it runs) on the audit log's one head, and it would bury
the audit log's events (approvals, releases, refusals) under thousands of cells. The purge, which
removes records, is audited.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from enclave.domain.audit.chain import (
    GENESIS_HASH,
    AuditEvent,
    VerifyResult,
    canonical_json,
    digest,
    format_timestamp,
    verify_links,
)
from enclave.domain.clock import Clock, utcnow
from enclave.domain.errors import InvalidInput
from enclave.domain.identity.accounts import Actor
from enclave.domain.policy import check_purge_executions, check_record_execution, check_view_executions

if TYPE_CHECKING:  # the ports name this module's records, so it cannot import them at run time
    from enclave.domain.ports import UnitOfWork, UnitOfWorkFactory

#: The most characters of one cell (or command line) a record keeps; longer code is cut here and
#: the record says ``truncated``.
MAX_CODE_CHARS = 100_000
#: The longest kernel (or terminal) name a record keeps.
MAX_KERNEL_ID = 200
#: How long records are kept after their project's end date: 7 years (7 x 365 days and two leap
#: days), the retention of research records many sponsors ask for. ``enclave executions purge
#: --older-than-days`` takes another number.
DEFAULT_RETENTION_DAYS = 2557
#: Most records one page of a listing returns.
MAX_PAGE = 1000

# A NUL cannot be stored in PostgreSQL's text, nor a lone surrogate in UTF-8: each becomes U+FFFD.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class ExecutionKind(StrEnum):
    CELL = "cell"  # a notebook cell sent to a kernel
    TERMINAL = "terminal"  # a command line typed in a terminal


@dataclass(frozen=True)
class Execution:
    """What ran, before it has its place in the project's chain."""

    project_id: int
    username: str
    kernel_id: str
    kind: ExecutionKind
    code: str
    truncated: bool
    recorded_at: datetime


@dataclass(frozen=True)
class ExecutionRecord:
    """A record as stored in its project's chain (``seq`` counts from 1 in each project)."""

    project_id: int
    seq: int
    recorded_at: datetime
    username: str
    kernel_id: str
    kind: ExecutionKind
    code: str
    truncated: bool
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "seq": self.seq,
            "recorded_at": format_timestamp(self.recorded_at),
            "username": self.username,
            "kernel_id": self.kernel_id,
            "kind": self.kind.value,
            "code": self.code,
            "truncated": self.truncated,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    def to_json(self) -> str:
        """One line of an export: every field, with the hashes, so the export verifies on its own."""
        return canonical_json(self.as_json())


@dataclass(frozen=True)
class ExecutionHead:
    """The store's record of a project's chain: its last record, and how far it was purged (the
    records up to ``purged_seq`` are gone; the chain goes on from ``purged_hash``)."""

    project_id: int
    seq: int
    hash: str
    purged_seq: int = 0
    purged_hash: str = GENESIS_HASH
    purged_at: datetime | None = None

    @property
    def records(self) -> int:
        """How many records the store should hold."""
        return self.seq - self.purged_seq


def record_hash(
    *,
    project_id: int,
    seq: int,
    recorded_at: datetime,
    username: str,
    kernel_id: str,
    kind: ExecutionKind,
    code: str,
    truncated: bool,
    prev_hash: str,
) -> str:
    return digest(
        {
            "project_id": project_id,
            "seq": seq,
            "recorded_at": format_timestamp(recorded_at),
            "username": username,
            "kernel_id": kernel_id,
            "kind": kind.value,
            "code": code,
            "truncated": truncated,
            "prev_hash": prev_hash,
        }
    )


def _content_hash(record: ExecutionRecord) -> str:
    return record_hash(
        project_id=record.project_id,
        seq=record.seq,
        recorded_at=record.recorded_at,
        username=record.username,
        kernel_id=record.kernel_id,
        kind=record.kind,
        code=record.code,
        truncated=record.truncated,
        prev_hash=record.prev_hash,
    )


def chain_execution(execution: Execution, *, seq: int, prev_hash: str) -> ExecutionRecord:
    """Give ``execution`` its place in its project's chain, after the record whose hash is ``prev_hash``."""
    digest_of = record_hash(
        project_id=execution.project_id,
        seq=seq,
        recorded_at=execution.recorded_at,
        username=execution.username,
        kernel_id=execution.kernel_id,
        kind=execution.kind,
        code=execution.code,
        truncated=execution.truncated,
        prev_hash=prev_hash,
    )
    return ExecutionRecord(
        project_id=execution.project_id,
        seq=seq,
        recorded_at=execution.recorded_at,
        username=execution.username,
        kernel_id=execution.kernel_id,
        kind=execution.kind,
        code=execution.code,
        truncated=execution.truncated,
        prev_hash=prev_hash,
        hash=digest_of,
    )


def verify_records(
    project_id: int, records: Iterable[ExecutionRecord], head: ExecutionHead | None
) -> VerifyResult:
    """Check every link of one project's chain against the head the store recorded (no head: no
    record was ever written, so there must be none)."""
    start_seq, start_hash = (head.purged_seq, head.purged_hash) if head is not None else (0, GENESIS_HASH)
    return verify_links(
        records,
        _content_hash,
        head_seq=head.seq if head is not None else 0,
        head_hash=head.hash if head is not None else GENESIS_HASH,
        start_seq=start_seq,
        start_hash=start_hash,
        subject=f"execution record of project {project_id}",
        noun="record",
    )


def storable(code: str) -> tuple[str, bool]:
    """The code as a record keeps it (at most :data:`MAX_CODE_CHARS`, nothing a database cannot
    store), and whether it was cut."""
    truncated = len(code) > MAX_CODE_CHARS
    return _UNSTORABLE.sub("\ufffd", code[:MAX_CODE_CHARS]), truncated


def parse_kind(value: str) -> ExecutionKind:
    try:
        return ExecutionKind(value)
    except ValueError:
        raise InvalidInput(f"unknown kind {value!r}: use cell or terminal") from None


@dataclass(frozen=True)
class Purged:
    """One project's records removed by a purge (or, in a dry run, that would be)."""

    project_id: int
    end_date: str
    records: int


class ExecutionRecordService:
    def __init__(self, uow: UnitOfWorkFactory, *, clock: Clock = utcnow) -> None:
        self._uow = uow
        self._clock = clock

    def record(self, actor: Actor, kernel_id: str, kind: ExecutionKind | str, code: str) -> ExecutionRecord:
        """Chain what a workspace ran after its project's last record (the workspace's server, with
        the workspace token: the project and the member are the token's, the time the enclave's)."""
        project_id, username = check_record_execution(actor)
        kernel_id = kernel_id.strip()
        if not kernel_id or len(kernel_id) > MAX_KERNEL_ID or _UNSTORABLE.search(kernel_id):
            raise InvalidInput(f"a kernel is named by 1 to {MAX_KERNEL_ID} characters")
        kept, truncated = storable(code)
        execution = Execution(
            project_id=project_id,
            username=username,
            kernel_id=kernel_id,
            kind=kind if isinstance(kind, ExecutionKind) else parse_kind(kind),
            code=kept,
            truncated=truncated,
            recorded_at=self._clock(),
        )
        with self._uow() as uow:
            return uow.executions.append(execution)

    def _readable(self, uow: UnitOfWork, actor: Actor, project_id: int) -> None:
        project = uow.access.get_project(project_id)
        custodians = project_custodians(uow, project.scope) if project is not None else frozenset()
        check_view_executions(actor, project_id, project, custodians)

    def list_records(
        self, actor: Actor, project_id: int, *, after_seq: int = 0, limit: int = 100
    ) -> list[ExecutionRecord]:
        """The project's records after ``after_seq``, oldest first, at most ``limit``."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"a page of execution records holds 1 to {MAX_PAGE} records")
        if after_seq < 0:
            raise InvalidInput("records are numbered from 1: ask for those after 0 or more")
        with self._uow(write=False) as uow:
            self._readable(uow, actor, project_id)
            found = uow.executions.iter_records(project_id, after_seq=after_seq, limit=limit)
            try:
                return list(found)
            finally:
                found.close()

    def latest(self, actor: Actor, project_id: int, *, limit: int = 50) -> tuple[list[ExecutionRecord], int]:
        """The project's ``limit`` newest records, oldest first, and how many it holds in all."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"a page of execution records holds 1 to {MAX_PAGE} records")
        with self._uow(write=False) as uow:
            self._readable(uow, actor, project_id)
            head = uow.executions.get_head(project_id)
            return uow.executions.list_latest(project_id, limit), head.records if head else 0

    def verify(self, actor: Actor, project_id: int) -> VerifyResult:
        """Check every link of the project's chain and its recorded head, in one snapshot."""
        with self._uow(write=False) as uow:
            self._readable(uow, actor, project_id)
            head = uow.executions.get_head(project_id)
            records = uow.executions.iter_records(project_id, after_seq=head.purged_seq if head else 0)
            try:
                return verify_records(project_id, records, head)
            finally:
                records.close()

    def purge(
        self, actor: Actor, *, retention_days: int = DEFAULT_RETENTION_DAYS, dry_run: bool = False
    ) -> list[Purged]:
        """Remove the records of every project whose end date is more than ``retention_days`` past
        (operator). Each project's purge is one audited transaction (``workspace.executions_purged``,
        with how many records and the head they ended at); its head stays, so the chain still
        verifies (nothing left, nothing missing) and any later record still links to it."""
        check_purge_executions(actor)
        if not 0 <= retention_days <= 36_500:
            raise InvalidInput("keep records for 0 to 36500 days after their project's end")
        now = self._clock()
        cutoff = now.date() - timedelta(days=retention_days)
        with self._uow(write=False) as uow:
            due = []
            for project_id in uow.executions.list_projects():
                project = uow.access.get_project(project_id)
                head = uow.executions.get_head(project_id)
                if project is not None and head is not None and project.end_date < cutoff and head.records:
                    due.append(Purged(project_id, project.end_date.isoformat(), head.records))
        if dry_run:
            return due
        done = []
        for entry in due:
            with self._uow() as uow:
                removed = uow.executions.purge(
                    entry.project_id,
                    now,
                    audit=AuditEvent(
                        "workspace.executions_purged",
                        actor.name,
                        "project",
                        str(entry.project_id),
                        {"end_date": entry.end_date, "retention_days": retention_days},
                    ),
                )
            done.append(Purged(entry.project_id, entry.end_date, removed))
        return done


def project_custodians(uow: UnitOfWork, scope: Iterable[str]) -> frozenset[int]:
    """The custodians of the datasets in a project's scope."""
    datasets = (uow.catalog.get_dataset(name) for name in scope)
    return frozenset(d.custodian_id for d in datasets if d is not None)
