"""Ports: what the domain needs from outside, as protocols the adapters implement.

- the metadata repositories and their unit of work (``enclave.db``);
- the DP query engine, which plans and releases a :class:`QueryPlan` (``enclave.dp``: OpenDP on
  Polars today);
- the research store and the airlock's holding and release stores (``enclave.store``);
- intake and the automated disclosure checks of output files (``enclave.airlock``);
- the ingest pipeline: staging, publishing and viewing versions of the research store
  (``enclave.ingest``).

Rule (checked by ``tests/unit/test_ports.py``): every method of a repository that changes state takes
an ``audit: AuditEvent`` keyword argument, and the implementation writes that event in the same
transaction as the change. Read methods are named ``get_*``, ``list_*``, ``find_*``, ``count_*`` or
``iter_*``. The only writer without an ``audit`` argument is :meth:`AuditLog.append` itself.

Uniqueness: a write that breaks a unique rule of the records (the same release fingerprint, the
same reviewer's decision on a version, the same file released twice) raises
:class:`enclave.domain.errors.Conflict`, never the database library's own error.

Lock order: every audited write ends by locking the audit head, so a transaction takes its row
locks (``get_*(..., lock=True)``) *before* its first audited write. Taking a row lock after an audit
append can deadlock against a transaction that holds that row and waits for the head.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from enclave.domain.access.drafts import Draft
from enclave.domain.access.form import AccessRequestForm
from enclave.domain.access.requests import AccessRequest, Part, Project, RequestQuery
from enclave.domain.access.states import ProjectState, RequestState
from enclave.domain.audit.chain import AuditEvent, ChainedEvent
from enclave.domain.audit.executions import ExecutionPurge, ExecutionRecord
from enclave.domain.catalog.datasets import CatalogColumn, Dataset, DatasetVersion
from enclave.domain.catalog.reports import IngestReport
from enclave.domain.identity.accounts import ApiToken, Role, TokenKind, User
from enclave.domain.outputs.acro import AcroImport, Upload
from enclave.domain.outputs.checks import CheckContext, CheckRecord, Policy, TableSpec
from enclave.domain.outputs.files import Limits, SanitisedFile
from enclave.domain.outputs.review import OutputFile, OutputRequest, ReleasedFile, Review
from enclave.domain.outputs.states import OutputState
from enclave.domain.queries.budget import Account, Budget, Reservation
from enclave.domain.queries.cohorts import Catalog
from enclave.domain.queries.plans import QueryPlan, Release


class AuditLog(Protocol):
    def append(self, event: AuditEvent) -> ChainedEvent:
        """Chain ``event`` after the current head, in the caller's transaction."""
        ...

    def get_head(self) -> tuple[int, str]: ...

    def iter_events(self, after_seq: int = 0, limit: int | None = None) -> Generator[ChainedEvent]: ...

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
        """Events matching every filter given, newest first, a page at a time (a keyset on ``seq``):
        the ``limit`` newest older than ``before_seq``, or the ``limit`` oldest newer than
        ``after_seq``. An ``action`` ending in ``.*`` matches every action of that area."""
        ...

    # --- the execution record of workspaces: a chain per project (enclave.domain.audit.executions)

    def get_execution_head(self, project_id: int) -> tuple[int, str]:
        """The last record of the project (after a purge of all of them, the purge's last; 0 and the
        genesis hash when none), under the audit head's lock."""
        ...

    def append_execution(self, record: ExecutionRecord, *, audit: AuditEvent) -> None:
        """Store ``record`` and append ``audit`` (which pins it), in the caller's transaction."""
        ...

    def list_executions(
        self, project_id: int, *, after_seq: int = 0, limit: int = 100, newest_first: bool = False
    ) -> list[ExecutionRecord]: ...

    def iter_executions(self, project_id: int) -> Generator[ExecutionRecord]: ...

    def get_execution_purge(self, project_id: int) -> ExecutionPurge | None:
        """The project's latest purge, or None."""
        ...

    def purge_executions(self, purge: ExecutionPurge, *, audit: AuditEvent) -> None:
        """Record ``purge`` and delete the project's records up to its ``through_seq``."""
        ...


class UserRepository(Protocol):
    def get_by_id(self, user_id: int) -> User | None: ...

    def get_by_username(self, username: str) -> User | None: ...

    def get_password_hash(self, user_id: int) -> str | None: ...

    def list_users(self) -> list[User]: ...

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
    ) -> User: ...

    def grant_role(self, user_id: int, role: Role, *, audit: AuditEvent) -> User: ...

    def revoke_role(self, user_id: int, role: Role, *, audit: AuditEvent) -> User: ...

    def set_accreditation(self, user_id: int, expires: date | None, *, audit: AuditEvent) -> User: ...

    def set_password_hash(self, user_id: int, password_hash: str, *, audit: AuditEvent) -> None: ...

    def set_active(self, user_id: int, active: bool, *, audit: AuditEvent) -> User: ...

    def record_login_failure(
        self, user_id: int, at: datetime, *, limit: int, lock_for: timedelta, audit: AuditEvent
    ) -> User:
        """Count a failed login; the ``limit``-th in a row locks the account for ``lock_for`` (and
        starts the count again). The event's details get ``locked_until``."""
        ...

    def reset_login_failures(self, user_id: int, *, audit: AuditEvent) -> User: ...


class TokenRepository(Protocol):
    def get_by_hash(self, token_hash: str) -> ApiToken | None: ...

    def get_by_id(self, token_id: int) -> ApiToken | None: ...

    def list_for_user(self, user_id: int) -> list[ApiToken]: ...

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
    ) -> ApiToken: ...

    def revoke_token(self, token_id: int, at: datetime, *, audit: AuditEvent) -> ApiToken: ...

    def touch(self, token_id: int, at: datetime) -> None:
        """Record a use of the token (the idle expiry of web sessions counts from it)."""
        ...

    def revoke_all_for_user(
        self, user_id: int, at: datetime, *, audit: AuditEvent, kind: TokenKind | None = None
    ) -> int: ...


class CatalogRepository(Protocol):
    def get_dataset(self, name: str) -> Dataset | None: ...

    def list_datasets(self) -> list[Dataset]: ...

    def get_version(self, dataset_id: int, version: int) -> DatasetVersion | None: ...

    def list_versions(self, dataset_id: int) -> list[DatasetVersion]: ...

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
    ) -> Dataset: ...

    def set_dataset_policy(self, dataset_id: int, max_epsilon: Decimal, *, audit: AuditEvent) -> Dataset: ...

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
        """Record ``version`` and make it the dataset's current one, in the caller's transaction."""
        ...


class AccessRepository(Protocol):
    def get_request(self, request_id: int, *, lock: bool = False) -> AccessRequest | None:
        """``lock`` holds the row until the transaction ends, so two deciders never overwrite each other."""
        ...

    def list_requests(self) -> list[AccessRequest]: ...

    def find_requests(self, query: RequestQuery) -> list[AccessRequest]:
        """The requests ``query`` selects, ordered by id, paged by its offset and limit."""
        ...

    def count_requests(self, query: RequestQuery) -> int:
        """How many requests ``query`` selects, ignoring its offset and limit."""
        ...

    def find_request_projects(self, query: RequestQuery) -> set[int]:
        """The projects the selected requests created or amended."""
        ...

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
    ) -> AccessRequest: ...

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
    ) -> AccessRequest: ...

    def get_project(self, project_id: int, *, lock: bool = False) -> Project | None: ...

    def list_projects(
        self, *, newest_first: bool = False, offset: int = 0, limit: int | None = None
    ) -> list[Project]: ...

    def count_projects(self) -> int: ...

    def add_project(self, project: Project, *, audit: AuditEvent) -> Project:
        """Insert ``project`` (its ``id`` is ignored and assigned)."""
        ...

    def set_project_state(
        self, project_id: int, state: ProjectState, at: datetime, *, audit: AuditEvent
    ) -> Project: ...

    def update_project(self, project: Project, at: datetime, *, audit: AuditEvent) -> Project:
        """Replace the amendable fields (scope, budget, end date, members, conditions)."""
        ...

    # Applications in progress (enclave.domain.access.drafts): the applicant's own, never shown to others.

    def add_draft(
        self,
        *,
        owner_id: int,
        answers: Mapping[str, Any],
        request_id: int | None,
        amends_project_id: int | None,
        at: datetime,
        audit: AuditEvent,
    ) -> Draft: ...

    def get_draft(self, draft_id: int, *, lock: bool = False) -> Draft | None: ...

    def find_drafts(self, owner_id: int) -> list[Draft]:
        """The owner's drafts, the most recently changed first."""
        ...

    def save_draft(
        self, draft_id: int, answers: Mapping[str, Any], at: datetime, *, audit: AuditEvent
    ) -> Draft: ...

    def delete_draft(self, draft_id: int, *, audit: AuditEvent) -> None: ...


class BudgetRepository(Protocol):
    def get_account(self, project_id: int, *, lock: bool = False) -> Account | None: ...

    def list_entries(self, project_id: int) -> list[dict[str, object]]: ...

    def open_account(
        self, project_id: int, granted: Budget, at: datetime, *, audit: AuditEvent
    ) -> Account: ...

    def grant(self, project_id: int, amount: Budget, at: datetime, *, audit: AuditEvent) -> Account: ...

    def reserve(self, project_id: int, cost: Budget, at: datetime, *, audit: AuditEvent) -> Reservation:
        """Hold ``cost`` against the account locked by the caller (``get_account(lock=True)``)."""
        ...

    def settle(
        self, reservation: Reservation, *, spent: bool, reference: str, at: datetime, audit: AuditEvent
    ) -> Account:
        """Commit the reservation (``spent``) or give it back."""
        ...


class ReleaseRepository(Protocol):
    def get_release(self, release_id: int) -> Release | None: ...

    def find_release(self, project_id: int, fingerprint: str) -> Release | None: ...

    def list_releases(self, project_id: int) -> list[Release]: ...

    def add_release(self, release: Release, *, audit: AuditEvent) -> Release:
        """Record ``release`` (its ``id`` is assigned)."""
        ...


class OptOutRepository(Protocol):
    def list_opt_outs(self) -> list[str]: ...

    def count_opt_outs(self) -> int: ...

    def replace_opt_outs(self, pseudonyms: list[str], loaded_at: datetime, *, audit: AuditEvent) -> int: ...


class OutputRepository(Protocol):
    """The airlock's output requests, their files per version, reviews and released files."""

    def get_request(self, request_id: int, *, lock: bool = False) -> OutputRequest | None:
        """``lock`` holds the row until the transaction ends: reviews, releases and withdrawals of
        one request are serialised on it."""
        ...

    def list_requests(
        self, *, project_ids: list[int] | None = None, states: list[OutputState] | None = None
    ) -> list[OutputRequest]: ...

    def get_file(self, file_id: int) -> OutputFile | None: ...

    def list_files(self, request_id: int) -> list[OutputFile]:
        """Every file of every version, oldest version first."""
        ...

    def list_reviews(self, request_id: int) -> list[Review]: ...

    def find_review_queue(
        self,
        states: Sequence[OutputState],
        *,
        exclude_projects: Sequence[int] = (),
        offset: int = 0,
        limit: int | None = None,
    ) -> list[tuple[OutputRequest, int, int]]:
        """The requests in ``states`` outside ``exclude_projects``, riskiest first (worst check's
        severity, then files, then the oldest submission), each with its current number of files
        and that severity (written with the checks)."""
        ...

    def count_review_queue(
        self, states: Sequence[OutputState], *, exclude_projects: Sequence[int] = ()
    ) -> int: ...

    def list_files_of(self, request_ids: Sequence[int]) -> dict[int, list[OutputFile]]:
        """The files of many requests at once (every version), by request id."""
        ...

    def list_reviews_of(self, request_ids: Sequence[int]) -> dict[int, list[Review]]:
        """The reviews of many requests at once, by request id."""
        ...

    def list_released(self, request_id: int) -> list[ReleasedFile]: ...

    def find_released(self, file_id: int) -> ReleasedFile | None: ...

    def add_request(
        self, *, project_id: int, author: str, context: str, controls: str, at: datetime, audit: AuditEvent
    ) -> OutputRequest:
        """A new draft at version 1 (the audit event's ``object_id`` is set to the new id)."""
        ...

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
    ) -> OutputRequest: ...

    def start_version(self, request_id: int, at: datetime, *, audit: AuditEvent) -> OutputRequest:
        """Begin the next version with a copy of the current version's files (their checks cleared)."""
        ...

    def add_file(self, file: OutputFile, *, audit: AuditEvent) -> OutputFile:
        """Record ``file`` (its ``id`` is assigned); a file of the same name in the same version is
        replaced."""
        ...

    def remove_file(self, file_id: int, *, audit: AuditEvent) -> None: ...

    def record_checks(
        self,
        request_id: int,
        checks: dict[int, str],
        *,
        policy_version: str,
        policy_json: str,
        audit: AuditEvent,
    ) -> None:
        """Store each file's disclosure-check record (JSON, by file id) and the policy they used."""
        ...

    def add_review(self, request_id: int, review: Review, *, audit: AuditEvent) -> Review: ...

    def add_released(self, released: ReleasedFile, *, audit: AuditEvent) -> ReleasedFile:
        """Record a released file; a second release of the same file violates a unique constraint."""
        ...

    def withdraw_released(
        self, released_id: int, *, by: str, reason: str, at: datetime, audit: AuditEvent
    ) -> ReleasedFile: ...


class UnitOfWork(Protocol):
    """One transaction: everything done through its repositories commits or rolls back together."""

    @property
    def audit(self) -> AuditLog: ...

    @property
    def users(self) -> UserRepository: ...

    @property
    def tokens(self) -> TokenRepository: ...

    @property
    def catalog(self) -> CatalogRepository: ...

    @property
    def opt_outs(self) -> OptOutRepository: ...

    @property
    def access(self) -> AccessRepository: ...

    @property
    def budgets(self) -> BudgetRepository: ...

    @property
    def releases(self) -> ReleaseRepository: ...

    @property
    def outputs(self) -> OutputRepository: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True) -> AbstractContextManager[UnitOfWork]:
        """Open a transaction. ``write=True`` takes the database's write lock up front, so
        concurrent writers queue instead of failing."""
        ...


# --- the DP query engine ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSource:
    """The table a plan is measured on: a dataset version's table (by its path in the research
    store), the rows per person a query may use, and the catalog columns of the project's scope."""

    version_path: str
    contribution_bound: int
    columns: tuple[CatalogColumn, ...]


@dataclass(frozen=True)
class CohortSource:
    """What a cohort definition reads: each table's catalog columns as the project may see them, its
    current version number and that version's path in the research store."""

    catalog: Catalog
    versions: Mapping[str, int]
    version_paths: Mapping[str, str]


@dataclass(frozen=True)
class AggregateAccuracy:
    """One released aggregate's noise scale and the half-width of its 95% interval (None where the
    engine gives none)."""

    name: str
    noise_scale: float
    ci95: float | None


@dataclass(frozen=True)
class PlannedQuery:
    """A plan as the engine will run it, built from the schema alone: the privacy loss its
    measurement accounts for, the accuracy of each aggregate, the key threshold of a DP key release,
    how it is made (stored with the release) and the engine's own plan, given back to release."""

    epsilon: Decimal
    delta: Decimal
    threshold: int | None
    aggregates: tuple[AggregateAccuracy, ...]
    mechanism: str
    handle: object


@dataclass(frozen=True)
class Answer:
    """The released values (JSON-ready rows: group keys, aggregates, intervals) and noise scales."""

    values: list[dict[str, Any]]
    noise_scales: dict[str, float]


class QueryEngine(Protocol):
    """Plans and releases DP answers (the OpenDP/Polars engine today; Spark later, behind the same port).

    ``plan`` reads no row of a dataset (schema and file footers only). For a cohort it derives, or
    reuses, the definition's per-person frame first: that reads the data inside the enclave and
    releases nothing. ``release`` runs a planned query once; a refused plan raises
    :class:`~enclave.domain.errors.InvalidInput` with the reason.
    """

    def plan(self, plan: QueryPlan, source: TableSource | CohortSource) -> PlannedQuery: ...

    def release(self, planned: PlannedQuery) -> Answer: ...

    def dummy(
        self,
        columns: Sequence[Mapping[str, Any]],
        n: int,
        *,
        project_key: bytes,
        contribution_bound: int = 1,
        seed: int | None = None,
    ) -> Any:
        """``n`` schema-faithful synthetic rows of these catalog columns (a data frame), made from
        the metadata alone, never from the data."""
        ...


# --- the stores ------------------------------------------------------------------------------------


class ResearchStore(Protocol):
    """The published versions' tables, read inside the enclave (never released as such)."""

    def distinct(self, version_path: str, column: str) -> set[str]:
        """The distinct values of one column of the version stored at ``version_path``, as text."""
        ...


class HoldingStore(Protocol):
    """Output files waiting for review, outside every workspace; reads are checked against the
    SHA-256 recorded with the file (a missing or changed file is an ``InternalError``)."""

    def hold(self, request_id: int, sha256: str, content: bytes) -> str:
        """Keep an accepted payload (once per content); returns the path to record with the file."""
        ...

    def read(self, holding_path: str, sha256: str, *, file_id: int) -> bytes: ...


class ReleaseStore(Protocol):
    """Released files, written once, read-only, never overwritten."""

    def write(self, relative: str, sha256: str, content: bytes, *, file_id: int) -> str:
        """Write a released file at ``relative`` (an identical one left by an attempt that did not
        commit is reused); returns ``relative``."""
        ...

    def read(self, relative: str, sha256: str, *, released_id: int) -> bytes: ...


# --- the output checks -----------------------------------------------------------------------------


class OutputChecks(Protocol):
    """What the airlock's use cases need done to a file's content: intake (type from content,
    sanitising, refusals), the automated disclosure checks, and reading an ACRO results folder."""

    def intake(self, name: str, content: bytes, *, limits: Limits) -> SanitisedFile:
        """The file as it may be held, or a refusal (``InvalidInput``, ``PayloadTooLarge``) that says why."""
        ...

    def check_request_limits(self, files: Sequence[tuple[str, int]], *, limits: Limits) -> None:
        """Refuse a request whose files (name, size) are too many or too large together."""
        ...

    def check(
        self,
        file: SanitisedFile,
        context: CheckContext,
        spec: TableSpec,
        policy: Policy,
        *,
        imported: Mapping[str, Any],
    ) -> CheckRecord:
        """Every rule that applies to ``file``, with the verdict of an imported tool (the file's
        stored spec, ``imported["acro"]``) added to its record."""
        ...

    def load_acro(self, source: Path | Sequence[Upload], *, limits: Limits) -> AcroImport:
        """The outputs of an ACRO results folder (a folder on this machine, or its files as uploaded)."""
        ...


# --- the ingest pipeline ---------------------------------------------------------------------------

#: A test's hook, told each step of an ingest by name ("before_publish", "published", "recorded").
Fault = Callable[[str], None]
#: Told, in a sentence, what a long ingest is doing now (the CLI shows it beside a spinner).
Progress = Callable[[str], None]


class DatasetSpec(Protocol):
    """What the catalog's use cases read of a validated source spec."""

    @property
    def dataset(self) -> str: ...

    @property
    def custodian(self) -> str: ...

    @property
    def population(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def contribution_bound(self) -> int: ...

    @property
    def sha256(self) -> str: ...

    @property
    def text(self) -> str: ...

    def catalog_columns(self) -> tuple[CatalogColumn, ...]:
        """The output columns as the catalog records them."""
        ...


class StagedVersion(Protocol):
    """A validated, written, not yet published version, with its report."""

    @property
    def report(self) -> IngestReport: ...


class IngestPipeline(Protocol):
    """Reads extracts into the research store (validated, pseudonymised, linked, bounded) and answers
    what the catalog's use cases need of it. Key material stays inside: callers get pseudonyms and
    the key's fingerprint, never a key."""

    def lock(self, dataset: str) -> AbstractContextManager[None]:
        """One writer per dataset at a time, across processes."""
        ...

    def stage(
        self,
        spec: Any,
        source: Path,
        *,
        opt_outs: Sequence[str],
        source_name: str | None = None,
        fault: Fault | None = None,
        progress: Progress | None = None,
    ) -> StagedVersion:
        """Validate ``source`` against ``spec`` (an adapter's spec; :class:`DatasetSpec` is what the
        domain reads of it) and write it, people of ``opt_outs`` left out, beside the published ones."""
        ...

    def publish(self, staged: Any, number: int) -> str:
        """Make a staged version version ``number`` (one rename); its path as the catalog records it."""
        ...

    def discard(self, staged: Any, published: str | None) -> None:
        """Remove what an attempt that did not commit wrote, published or not."""
        ...

    def key_fingerprint(self) -> str: ...

    def pseudonymise(self, identifiers: Sequence[str]) -> list[str]:
        """The linkage pseudonyms of normalised identifiers."""
        ...

    def read_identifiers(self, source: Path) -> list[str]:
        """The identifiers of an opt-out file, normalised (``InvalidInput`` if it cannot be read)."""
        ...

    def table_file(self, version_path: str) -> Path:
        """The full data file by which the version's table is named."""
        ...

    def needs_view(self, version_path: str, bound: int) -> bool:
        """Whether the version lacks a bounded view for ``bound`` (and has the rows to build one)."""
        ...

    def build_view(
        self, dataset: str, version_path: str, bound: int, categories: dict[str, list[str]]
    ) -> None:
        """Write the version's bounded view, atomically (under :meth:`lock`)."""
        ...

    def linkage(self, tables: Mapping[str, str]) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """Persons in each table (dataset -> version path), and persons in both of each sorted pair."""
        ...
