"""Use cases of the airlock: output requests from draft to release, and downloads.

The flow, and where each rule lives:

1. a project member creates a request (a draft) and adds files: intake refuses what must not leave
   and sanitises the rest; the payload is kept in the *holding store* (0600, outside every
   workspace), the record in the metadata database;
2. submitting freezes the version and runs the automated disclosure checks on each file, with the
   project's releases from the ledger, its small-count threshold and the pseudonyms any cell might
   be; the records and the policy are stored with the request;
3. two reviewers outside the project decide (:mod:`enclave.domain.outputs.review`); the system moves the
   request to the outcome the decisions settle (:data:`enclave.domain.outputs.states.OUTPUT_MACHINE`);
4. an approved request is released at once: each file is copied to the *release store* (0400) with
   its SHA-256, under a row lock on the request and a unique constraint per file, so a file is
   released exactly once whoever approves or retries concurrently;
5. members download released files with their personal token; every download is audited.

Intake and the checks (:class:`enclave.domain.ports.OutputChecks`: ``enclave/airlock/``) and the
holding, release and research stores (``enclave/store/``) are ports; who may do what is
:mod:`enclave.domain.policy`.

A frozen project (suspended, revoked, expired; or a member whose accreditation lapsed) cannot
create, add, submit or download. Every change is audited with its transaction, and every refusal of
an authenticated caller is audited too (``output_request.refused``), then raised unchanged.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from enclave.domain import policy
from enclave.domain.access.requests import Project
from enclave.domain.audit.chain import AuditEvent, canonical_json
from enclave.domain.clock import Clock, utcnow
from enclave.domain.errors import (
    Conflict,
    EnclaveError,
    InvalidInput,
    InvalidState,
    NotFound,
    PayloadTooLarge,
)
from enclave.domain.identity.accounts import Actor
from enclave.domain.outputs.acro import AcroImportResult, ImportedFile, Upload
from enclave.domain.outputs.checks import DEFAULT_POLICY, CheckContext, Policy, Rounding, Status, TableSpec
from enclave.domain.outputs.files import (
    DEFAULT_LIMITS,
    MEDIA_TYPES,
    TABLE_KINDS,
    FileKind,
    Limits,
    SanitisedFile,
)
from enclave.domain.outputs.review import (
    CHECK_SEVERITY,
    CheckOverride,
    FileDecision,
    Outcome,
    OutputFile,
    OutputRequest,
    ReleasedFile,
    Review,
    can_review,
    check_can_release,
    compute_outcome,
    record_review,
    review_subject,
    visible_reviews,
)
from enclave.domain.outputs.states import OUTPUT_MACHINE, REVIEWABLE_STATES, AirlockParty, OutputState
from enclave.domain.ports import (
    HoldingStore,
    OutputChecks,
    ReleaseStore,
    ResearchStore,
    UnitOfWork,
    UnitOfWorkFactory,
)

T = TypeVar("T")

MAX_TEXT = 5000
MIN_CONTEXT = 10
MIN_WITHDRAWAL_REASON = 10
_PSEUDONYM_LIKE = re.compile(r"[0-9a-f]{32}")
EDITABLE = frozenset({OutputState.DRAFT, OutputState.CHANGES_REQUESTED})
S = OutputState


@dataclass(frozen=True)
class OutputView:
    """What one viewer may see of one request: every version's files, the reviews visible to them,
    the released files and (for reviewers, and for members once review is over) the outcome."""

    request: OutputRequest
    project_title: str
    files: tuple[OutputFile, ...]
    reviews: tuple[Review, ...]
    released: tuple[ReleasedFile, ...]
    outcome: Outcome | None
    can_review: bool

    @property
    def current_files(self) -> tuple[OutputFile, ...]:
        return tuple(f for f in self.files if f.version == self.request.version)


@dataclass(frozen=True)
class QueueEntry:
    """One request in the reviewers' queue, as one reviewer sees it: its current version's files,
    the worst of their checks, and whether that reviewer still has a review to give."""

    request: OutputRequest
    project_title: str
    files: int
    worst: str | None
    due: bool

    @property
    def rank(self) -> tuple[Any, ...]:
        """Failed checks first, then warnings; then more files; then the oldest submission."""
        waiting = self.request.submitted_at or self.request.created_at
        return (-CHECK_SEVERITY.get(self.worst, 0), -self.files, waiting, self.request.id)


@dataclass(frozen=True)
class Download:
    released: ReleasedFile
    content: bytes
    media_type: str


def _text(value: str, what: str, *, minimum: int = 0) -> str:
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"the {what} is longer than {MAX_TEXT} characters")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise InvalidInput(f"the {what} contains control characters")
    if len(value) < minimum:
        raise InvalidInput(f"give the {what} in a sentence (at least {minimum} characters)")
    return value


class AirlockService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        checks: OutputChecks,
        holding: HoldingStore,
        releases: ReleaseStore,
        research: ResearchStore,
        project_pseudonyms: Callable[[int, Sequence[str]], Sequence[str]] | None = None,
        policy: Policy = DEFAULT_POLICY,
        limits: Limits = DEFAULT_LIMITS,
        release_on_approval: bool = True,
        clock: Clock = utcnow,
    ) -> None:
        self._uow = uow
        self._checks = checks
        self._holding = holding
        self._releases = releases
        self._research = research
        self._project_pseudonyms = project_pseudonyms
        self.policy = policy
        self.limits = limits
        self._release_on_approval = release_on_approval
        self._clock = clock

    # --- helpers ------------------------------------------------------------------------------

    def _today(self) -> date:
        return self._clock().date()

    def _refused(
        self, actor: Actor, action: str, request_id: int | None, exc: EnclaveError, **extra: Any
    ) -> None:
        with self._uow() as uow:
            uow.audit.append(
                AuditEvent(
                    "output_request.refused",
                    actor.name,
                    "output_request",
                    str(request_id) if request_id is not None else "new",
                    {"action": action, "error": exc.code, "reason": exc.detail[:500], **extra},
                )
            )

    def _audited(
        self, actor: Actor, action: str, request_id: int | None, fn: Callable[[], T], **extra: Any
    ) -> T:
        """Run ``fn``; a refusal is audited (in its own transaction, the failed one rolled back)."""
        try:
            return fn()
        except EnclaveError as exc:
            self._refused(actor, action, request_id, exc, **extra)
            raise

    def _load(
        self, uow: UnitOfWork, actor: Actor, request_id: int, *, lock: bool = False
    ) -> tuple[OutputRequest, Project]:
        request = uow.outputs.get_request(request_id, lock=lock)
        project = uow.access.get_project(request.project_id) if request is not None else None
        if request is None or project is None or not policy.can_view_output(actor, request, project):
            raise NotFound(f"no output request {request_id} that you can see")
        return request, project

    def _member(self, actor: Actor, project: Project, *, frozen_ok: bool = False) -> None:
        policy.check_output_member(actor, project, self._today(), frozen_ok=frozen_ok)

    def _read_held(self, file: OutputFile) -> bytes:
        return self._holding.read(file.holding_path, file.sha256, file_id=file.id)

    def _sanitised(self, file: OutputFile) -> SanitisedFile:
        return SanitisedFile(
            name=file.name,
            kind=FileKind(file.kind),
            content=self._read_held(file),
            sha256=file.sha256,
            original_sha256=file.original_sha256,
            original_size=file.original_size,
            changes=file.changes,
        )

    # --- the researcher -----------------------------------------------------------------------

    def create(
        self, actor: Actor, project_id: int, *, context: str = "", controls: str = ""
    ) -> OutputRequest:
        """A project member opens a draft output request."""

        def body() -> OutputRequest:
            clean_context = _text(context, "context")
            clean_controls = _text(controls, "description of the disclosure controls")
            with self._uow() as uow:
                policy.check_output_project(
                    actor, project_id, uow.access.get_project(project_id), self._today()
                )
                assert actor.user is not None
                return uow.outputs.add_request(
                    project_id=project_id,
                    author=actor.user.username,
                    context=clean_context,
                    controls=clean_controls,
                    at=self._clock(),
                    audit=AuditEvent(
                        "output_request.created", actor.name, "output_request", "new", {"project": project_id}
                    ),
                )

        return self._audited(actor, "create", None, body, project=project_id)

    def _editable_version(self, uow: UnitOfWork, actor: Actor, request: OutputRequest) -> OutputRequest:
        """The request, with a new version started if changes were requested and none is yet."""
        if request.state not in EDITABLE:
            raise InvalidState(
                f"output request {request.id} is {request.state}; files can be changed while it is a draft or"
                " after changes were requested"
            )
        if request.state is S.CHANGES_REQUESTED and any(
            r.version == request.version for r in uow.outputs.list_reviews(request.id)
        ):
            return uow.outputs.start_version(
                request.id,
                self._clock(),
                audit=AuditEvent(
                    "output_request.version_started",
                    actor.name,
                    "output_request",
                    str(request.id),
                    {"version": request.version + 1},
                ),
            )
        return request

    def add_file(
        self,
        actor: Actor,
        request_id: int,
        name: str,
        content: bytes,
        *,
        description: str = "",
        derived_from: Sequence[int] = (),
        count_columns: Sequence[str] | None = None,
        rounding: Rounding | None = None,
    ) -> OutputFile:
        """Add (or replace, by name) a file in the version being edited, after intake."""

        def body() -> OutputFile:
            with self._uow(write=False) as uow:
                request, project = self._load(uow, actor, request_id)
                self._member(actor, project)
            clean_description = _text(description, "file description")
            if len(content) > self.limits.max_file_bytes:
                raise PayloadTooLarge(
                    f"{name[:200]!r} is over the size limit: files are limited to"
                    f" {self.limits.max_file_bytes} bytes"
                )
            accepted = self._checks.intake(name, content, limits=self.limits)
            spec: dict[str, Any] = {"rounding": (rounding or Rounding()).to_dict()}
            if count_columns is not None:
                if accepted.kind not in TABLE_KINDS:
                    raise InvalidInput(f"{accepted.name} is not a table; count columns apply to CSV/TSV only")
                delimiter = "\t" if accepted.kind is FileKind.TSV else ","
                header = next(csv.reader(io.StringIO(accepted.text()), delimiter=delimiter), [])
                unknown = [c for c in count_columns if c not in header]
                if unknown:
                    raise InvalidInput(
                        f"count column(s) {', '.join(unknown)} are not in the header of {accepted.name}"
                    )
                spec["count_columns"] = list(count_columns)
            held = self._hold(request_id, accepted)
            with self._uow() as uow:
                request, project = self._load(uow, actor, request_id, lock=True)
                self._member(actor, project)
                for release_id in derived_from:
                    release = uow.releases.get_release(release_id)
                    if release is None or release.project_id != project.id:
                        raise InvalidInput(f"release {release_id} is not a release of project {project.id}")
                request = self._editable_version(uow, actor, request)
                others = [
                    (f.name, f.size)
                    for f in uow.outputs.list_files(request_id)
                    if f.version == request.version and f.name != accepted.name
                ]
                self._checks.check_request_limits(
                    [*others, (accepted.name, len(accepted.content))], limits=self.limits
                )
                return self._record_file(
                    uow, actor, request, accepted, held, clean_description, tuple(derived_from), spec
                )

        return self._audited(actor, "add_file", request_id, body, name=name[:200])

    def remove_file(self, actor: Actor, request_id: int, file_id: int) -> None:
        """Remove a file from the version being edited (submitted versions are never changed)."""

        def body() -> None:
            with self._uow() as uow:
                request, project = self._load(uow, actor, request_id, lock=True)
                self._member(actor, project)
                old = uow.outputs.get_file(file_id)
                if old is None or old.request_id != request_id:
                    raise NotFound(f"output request {request_id} has no file {file_id}")
                request = self._editable_version(uow, actor, request)
                target = next(
                    (
                        f
                        for f in uow.outputs.list_files(request_id)
                        if f.version == request.version and f.name == old.name
                    ),
                    None,
                )
                if target is None:
                    raise NotFound(
                        f"{old.name} is not in version {request.version} of output request {request_id}"
                    )
                uow.outputs.remove_file(
                    target.id,
                    audit=AuditEvent(
                        "output_request.file_removed",
                        actor.name,
                        "output_request",
                        str(request_id),
                        {"name": target.name, "version": request.version},
                    ),
                )

        self._audited(actor, "remove_file", request_id, body)

    def submit(
        self, actor: Actor, request_id: int, *, context: str | None = None, controls: str | None = None
    ) -> OutputRequest:
        """Freeze the version being edited, run the automated checks on each file, record them and
        the policy, and put the request in review."""

        def body() -> OutputRequest:
            with self._uow(write=False) as uow:
                request, project = self._load(uow, actor, request_id)
                self._member(actor, project)
                target = S.SUBMITTED
                OUTPUT_MACHINE.check(request.state.value, target.value, AirlockParty.RESEARCHER)
                needs_version = request.state is S.CHANGES_REQUESTED and any(
                    r.version == request.version for r in uow.outputs.list_reviews(request_id)
                )
            new_context = _text(
                context if context is not None else request.context, "context", minimum=MIN_CONTEXT
            )
            new_controls = _text(
                controls if controls is not None else request.controls,
                "description of the disclosure controls",
            )
            if needs_version:
                with self._uow() as uow:
                    request, project = self._load(uow, actor, request_id, lock=True)
                    self._member(actor, project)
                    request = self._editable_version(uow, actor, request)
            with self._uow(write=False) as uow:
                request, project = self._load(uow, actor, request_id)
                files = [f for f in uow.outputs.list_files(request_id) if f.version == request.version]
                if not files:
                    raise InvalidInput(
                        f"add at least one file to output request {request_id} before submitting"
                    )
                released = tuple(uow.releases.list_releases(project.id))
                sanitised = {f.id: self._sanitised(f) for f in files}
                pseudonyms = self._known_pseudonyms(uow, project, list(sanitised.values()))
            min_count = project.conditions.get("min_count")
            check_context = CheckContext(
                pseudonyms=pseudonyms,
                released=released,
                min_count=int(min_count) if min_count is not None else None,
            )
            records = {}
            for f in files:
                spec = TableSpec(
                    count_columns=tuple(f.spec["count_columns"]) if "count_columns" in f.spec else None,
                    rounding=Rounding(**f.spec.get("rounding", {})),
                )
                # with an ACRO verdict, if the file was imported with one
                records[f.id] = self._checks.check(
                    sanitised[f.id], check_context, spec, self.policy, imported=f.spec
                )
            with self._uow() as uow:
                current, project = self._load(uow, actor, request_id, lock=True)
                self._member(actor, project)
                now_files = {f.id for f in uow.outputs.list_files(request_id) if f.version == current.version}
                if (
                    current.state != request.state
                    or current.version != request.version
                    or now_files != set(records)
                ):
                    raise InvalidState(
                        f"output request {request_id} changed while its files were being checked;"
                        " submit again"
                    )
                self._move(
                    uow,
                    actor,
                    current,
                    S.SUBMITTED,
                    AirlockParty.RESEARCHER,
                    {"version": current.version, "files": len(records)},
                    context=new_context,
                    controls=new_controls,
                    submitted=True,
                )
                uow.outputs.record_checks(
                    request_id,
                    {fid: r.to_json() for fid, r in records.items()},
                    policy_version=self.policy.version,
                    policy_json=canonical_json(self.policy.to_dict()),
                    audit=AuditEvent(
                        "output_request.checks_run",
                        actor.name,
                        "output_request",
                        str(request_id),
                        {
                            "version": current.version,
                            "policy": self.policy.version,
                            "results": {r.file: r.status for r in records.values()},
                            "failed": {
                                r.file: sorted(r.failed_rules) for r in records.values() if r.failed_rules
                            },
                        },
                    ),
                )
                submitted = replace(current, state=S.SUBMITTED)
                return self._move(
                    uow, actor, submitted, S.IN_REVIEW, AirlockParty.SYSTEM, {"party": "system"}
                )

        return self._audited(actor, "submit", request_id, body)

    def _known_pseudonyms(
        self, uow: UnitOfWork, project: Project, files: Sequence[SanitisedFile]
    ) -> frozenset[str]:
        """The cells of the tables that are pseudonyms: of the store (the person ids of the project's
        datasets) or of this project (derived from those). Cheap when no cell looks like one."""
        candidates: set[str] = set()
        for f in files:
            if f.kind not in TABLE_KINDS:
                continue
            delimiter = "\t" if f.kind is FileKind.TSV else ","
            for row in csv.reader(io.StringIO(f.text()), delimiter=delimiter):
                candidates.update(c.strip() for c in row if _PSEUDONYM_LIKE.fullmatch(c.strip()))
        if not candidates:
            return frozenset()
        store: set[str] = set()
        for name in project.scope:
            dataset = uow.catalog.get_dataset(name)
            if dataset is None or dataset.current_version is None:
                continue
            version = uow.catalog.get_version(dataset.id, dataset.current_version)
            if version is None:
                continue
            columns = [c.name for c in version.columns if c.role == "person_id"]
            for column in columns:
                store |= self._research.distinct(version.path, column)
        found = candidates & store
        if self._project_pseudonyms is not None and store:
            found |= candidates & set(self._project_pseudonyms(project.id, sorted(store)))
        return frozenset(found)

    def withdraw(self, actor: Actor, request_id: int, reason: str = "") -> OutputRequest:
        """A member withdraws a request before release; a released request's files are withdrawn
        (recorded on each, never erased) by a member, a reviewer or an admin."""

        def body() -> OutputRequest:
            clean = _text(reason, "reason")
            with self._uow(write=False) as uow:
                request, _ = self._load(uow, actor, request_id)
            if request.state is S.RELEASED:
                with self._uow(write=False) as uow:
                    released = [r for r in uow.outputs.list_released(request_id) if not r.withdrawn]
                for r in released:
                    self._withdraw_release(actor, request_id, r.file_id, clean)
                with self._uow(write=False) as uow:
                    final, _ = self._load(uow, actor, request_id)
                return final
            with self._uow() as uow:
                request, project = self._load(uow, actor, request_id, lock=True)
                self._member(actor, project, frozen_ok=True)
                return self._move(
                    uow, actor, request, S.WITHDRAWN, AirlockParty.RESEARCHER, {"reason": clean}
                )

        return self._audited(actor, "withdraw", request_id, body)

    # --- reviewers ----------------------------------------------------------------------------

    def review(
        self,
        actor: Actor,
        request_id: int,
        decisions: Sequence[FileDecision],
        overrides: Sequence[CheckOverride] = (),
    ) -> OutputView:
        """Record a reviewer's decisions on every file of the current version, move the request to
        the outcome they settle, and release it if that is approval."""

        def body() -> OutputRequest:
            reviewer = policy.check_review_outputs(actor)
            with self._uow() as uow:
                request, project = self._load(uow, actor, request_id, lock=True)
                subject = review_subject(
                    request,
                    frozenset(project.members),
                    uow.outputs.list_files(request_id),
                    uow.outputs.list_reviews(request_id),
                )
                review = record_review(subject, reviewer, decisions, overrides, at=self._clock())
                try:
                    stored = uow.outputs.add_review(
                        request_id,
                        review,
                        audit=AuditEvent(
                            "output_request.reviewed",
                            actor.name,
                            "output_request",
                            str(request_id),
                            {
                                "version": review.version,
                                "consolidating": review.consolidating,
                                "decisions": {d.file: d.decision for d in review.decisions},
                                "overrides": [
                                    {"file": o.file, "rule": o.rule, "reason": o.reason}
                                    for o in review.overrides
                                ],
                            },
                        ),
                    )
                except Conflict:
                    raise InvalidState(
                        f"you already decided on version {review.version} of output request {request_id}"
                    ) from None
                outcome = compute_outcome(replace(subject, reviews=(*subject.reviews, stored)))
                if outcome.state is request.state:
                    return request
                return self._move(
                    uow,
                    actor,
                    request,
                    outcome.state,
                    AirlockParty.SYSTEM,
                    {"party": "system", "reason": outcome.reason},
                )

        request = self._audited(actor, "review", request_id, body)
        if request.state is S.APPROVED and self._release_on_approval:
            self.release(actor, request_id)
        return self.show(actor, request_id)

    def release(self, actor: Actor, request_id: int) -> list[ReleasedFile]:
        """Copy an approved request's files to the release store, exactly once (a retry, or a
        concurrent call, on a released request returns what was released)."""

        def body() -> list[ReleasedFile]:
            policy.check_release_outputs(actor)
            with self._uow() as uow:
                request, project = self._load(uow, actor, request_id, lock=True)
                if request.state is S.RELEASED:
                    return uow.outputs.list_released(request_id)
                files = uow.outputs.list_files(request_id)
                subject = review_subject(
                    request, frozenset(project.members), files, uow.outputs.list_reviews(request_id)
                )
                check_can_release(subject)
                # refused here, before any file is copied, if the request cannot be released
                OUTPUT_MACHINE.check(request.state.value, S.RELEASED.value, AirlockParty.SYSTEM)
                out = []
                for f in (f for f in files if f.version == request.version):
                    relative = self._copy_to_release_store(project.id, request, f)
                    out.append(
                        uow.outputs.add_released(
                            ReleasedFile(
                                id=0,
                                file_id=f.id,
                                request_id=request_id,
                                project_id=project.id,
                                name=f.name,
                                sha256=f.sha256,
                                path=relative,
                                released_at=self._clock(),
                            ),
                            audit=AuditEvent(
                                "output.released",
                                actor.name,
                                "output_file",
                                str(f.id),
                                {"request": request_id, "name": f.name, "sha256": f.sha256, "path": relative},
                            ),
                        )
                    )
                self._move(
                    uow,
                    actor,
                    request,
                    S.RELEASED,
                    AirlockParty.SYSTEM,
                    {"party": "system", "files": len(out)},
                )
                return out

        return self._audited(actor, "release", request_id, body)

    def _copy_to_release_store(self, project_id: int, request: OutputRequest, file: OutputFile) -> str:
        """Write the held payload to its release path, read-only, never overwriting: a file left by
        an attempt that did not commit is reused only if its SHA-256 is the recorded one."""
        relative = f"{project_id}/{request.id}/v{request.version}/{file.name}"
        return self._releases.write(relative, file.sha256, self._read_held(file), file_id=file.id)

    def _withdraw_release(self, actor: Actor, request_id: int, file_id: int, reason: str) -> ReleasedFile:
        if len(reason) < MIN_WITHDRAWAL_REASON:
            raise InvalidInput("say why the release is withdrawn, in a sentence; it is recorded with it")
        with self._uow() as uow:
            request, project = self._load(uow, actor, request_id, lock=True)
            party = policy.withdraw_party(actor, project)
            OUTPUT_MACHINE.check(request.state.value, S.RELEASE_WITHDRAWN.value, party)
            released = uow.outputs.find_released(file_id)
            if released is None or released.request_id != request_id:
                raise NotFound(f"file {file_id} of output request {request_id} was not released")
            done = uow.outputs.withdraw_released(
                released.id,
                by=actor.name,
                reason=reason,
                at=self._clock(),
                audit=AuditEvent(
                    "output.release_withdrawn",
                    actor.name,
                    "output_file",
                    str(file_id),
                    {"request": request_id, "name": released.name, "reason": reason},
                ),
            )
            if all(r.withdrawn for r in uow.outputs.list_released(request_id)):
                self._move(uow, actor, request, S.RELEASE_WITHDRAWN, party, {"reason": reason})
            return done

    def withdraw_release(self, actor: Actor, request_id: int, file_id: int, reason: str) -> ReleasedFile:
        """Withdraw one released file: recorded (who, when, why) and no longer downloadable; the
        record and the file in the release store stay. When every file is withdrawn, so is the request."""
        return self._audited(
            actor,
            "withdraw_release",
            request_id,
            lambda: self._withdraw_release(actor, request_id, file_id, _text(reason, "reason")),
            file=file_id,
        )

    # --- reading ------------------------------------------------------------------------------

    def list_requests(
        self, actor: Actor, *, project_id: int | None = None, states: Sequence[OutputState] | None = None
    ) -> list[OutputRequest]:
        """Members see their projects' requests; reviewers and admins every request past draft."""
        with self._uow(write=False) as uow:
            projects = {p.id: p for p in uow.access.list_projects()}
            found = uow.outputs.list_requests(
                project_ids=[project_id] if project_id is not None else None,
                states=list(states) if states is not None else None,
            )
        return [
            r
            for r in found
            if r.project_id in projects and policy.can_view_output(actor, r, projects[r.project_id])
        ]

    def _own_projects(self, uow: UnitOfWork, reviewer: str) -> list[int]:
        """The projects a reviewer is a member of: their outputs are checked by others."""
        return [p.id for p in uow.access.list_projects() if reviewer in p.members]

    def review_queue(self, actor: Actor, *, offset: int = 0, limit: int | None = None) -> list[QueueEntry]:
        """The requests waiting for review that ``actor`` may review (never their own projects'),
        ranked by risk then age: one page of them, ranked and paged by the database (from the
        summary written with each version's checks); only the page's reviews are read."""
        reviewer = policy.check_review_outputs(actor)
        states = sorted(REVIEWABLE_STATES)
        with self._uow(write=False) as uow:
            own = self._own_projects(uow, reviewer)
            page = uow.outputs.find_review_queue(states, exclude_projects=own, offset=offset, limit=limit)
            ids = [request.id for request, _, _ in page]
            files = uow.outputs.list_files_of(ids)
            reviews = uow.outputs.list_reviews_of(ids)
            projects = {pid: uow.access.get_project(pid) for pid in {r.project_id for r, _, _ in page}}
        entries = []
        worst_of = {severity: status for status, severity in CHECK_SEVERITY.items()}
        for request, count, risk in page:
            project = projects[request.project_id]
            if project is None:
                continue
            subject = review_subject(
                request, frozenset(project.members), files[request.id], reviews[request.id]
            )
            entries.append(
                QueueEntry(request, project.title, count, worst_of.get(risk), can_review(subject, reviewer))
            )
        return entries

    def review_queue_size(self, actor: Actor) -> int:
        reviewer = policy.check_review_outputs(actor)
        with self._uow(write=False) as uow:
            own = self._own_projects(uow, reviewer)
            return uow.outputs.count_review_queue(sorted(REVIEWABLE_STATES), exclude_projects=own)

    def review_view(self, actor: Actor, request_id: int) -> OutputView:
        """The request as a reviewer opens it to decide: refused to anyone but a reviewer, and to a
        reviewer who is a member of its project (their outputs are checked by others)."""
        policy.check_review_outputs(actor)
        with self._uow(write=False) as uow:
            _, project = self._load(uow, actor, request_id)
        policy.check_not_own_outputs(actor, project)
        return self.show(actor, request_id)

    def show(self, actor: Actor, request_id: int) -> OutputView:
        with self._uow(write=False) as uow:
            request, project = self._load(uow, actor, request_id)
            files = uow.outputs.list_files(request_id)
            reviews = uow.outputs.list_reviews(request_id)
            released = uow.outputs.list_released(request_id)
        subject = review_subject(request, frozenset(project.members), files, reviews)
        viewer = actor.user.username if actor.user is not None else None
        insider = viewer is not None and (viewer == request.author or viewer in project.members)
        visible = tuple(reviews) if viewer is None else visible_reviews(subject, viewer)
        show_outcome = request.state not in (S.DRAFT, S.SUBMITTED) and (
            not insider or request.state not in REVIEWABLE_STATES
        )
        reviewer = policy.can_review_outputs(actor)
        return OutputView(
            request=request,
            project_title=project.title,
            files=tuple(files),
            reviews=visible,
            released=tuple(released),
            outcome=compute_outcome(subject) if show_outcome else None,
            can_review=reviewer and viewer is not None and can_review(subject, viewer),
        )

    def held_file(self, actor: Actor, request_id: int, file_id: int) -> Download:
        """A reviewer reads a held file of a request in review (audited)."""

        def body() -> Download:
            policy.check_review_outputs(actor)
            with self._uow(write=False) as uow:
                _, project = self._load(uow, actor, request_id)
                file = uow.outputs.get_file(file_id)
            policy.check_not_own_outputs(actor, project)
            if file is None or file.request_id != request_id:
                raise NotFound(f"output request {request_id} has no file {file_id}")
            content = self._read_held(file)
            with self._uow() as uow:
                uow.audit.append(
                    AuditEvent(
                        "output_request.file_viewed",
                        actor.name,
                        "output_file",
                        str(file_id),
                        {"request": request_id, "name": file.name, "sha256": file.sha256},
                    )
                )
            stub = ReleasedFile(0, file.id, request_id, project.id, file.name, file.sha256, "", self._clock())
            return Download(stub, content, MEDIA_TYPES[FileKind(file.kind)])

        return self._audited(actor, "view_file", request_id, body, file=file_id)

    def download(self, actor: Actor, request_id: int, file_id: int) -> Download:
        """A project member downloads a released file with their personal token (audited)."""

        def body() -> Download:
            policy.check_download_token(actor)
            with self._uow(write=False) as uow:
                request, project = self._load(uow, actor, request_id)
                policy.check_download_outputs(actor, project, self._today())
                released = uow.outputs.find_released(file_id)
                file = uow.outputs.get_file(file_id)
            if released is None or released.request_id != request_id:
                if file is None or file.request_id != request_id:
                    raise NotFound(f"output request {request_id} has no file {file_id}")
                raise InvalidState(
                    f"{file.name} is not released; output request {request_id} is {request.state}"
                )
            if released.withdrawn_at is not None:
                raise InvalidState(
                    f"the release of {released.name} was withdrawn on {released.withdrawn_at.date()} by"
                    f" {released.withdrawn_by}: {released.withdrawal_reason}"
                )
            content = self._releases.read(released.path, released.sha256, released_id=released.id)
            assert file is not None
            with self._uow() as uow:
                uow.audit.append(
                    AuditEvent(
                        "output.downloaded",
                        actor.name,
                        "output_file",
                        str(file_id),
                        {"request": request_id, "name": released.name, "sha256": released.sha256},
                    )
                )
            return Download(released, content, MEDIA_TYPES[FileKind(file.kind)])

        return self._audited(actor, "download", request_id, body, file=file_id)

    # --- importing an ACRO results folder ------------------------------------------------------

    def _move(
        self,
        uow: UnitOfWork,
        actor: Actor,
        request: OutputRequest,
        target: OutputState,
        party: AirlockParty,
        details: dict[str, Any],
        **changes: Any,
    ) -> OutputRequest:
        """Move ``request`` to ``target`` if the machine lets ``party`` do so, audited with the
        transition's event, ``from``/``to`` and ``details``; ``changes`` are the other fields updated."""
        t = OUTPUT_MACHINE.check(request.state.value, target.value, party)
        return uow.outputs.update_request(
            request.id,
            state=target,
            at=self._clock(),
            audit=AuditEvent(
                t.event,
                actor.name,
                "output_request",
                str(request.id),
                {"from": request.state, "to": target, **details},
            ),
            **changes,
        )

    def _record_file(
        self,
        uow: UnitOfWork,
        actor: Actor,
        request: OutputRequest,
        accepted: SanitisedFile,
        held: str,
        description: str,
        derived_from: tuple[int, ...],
        spec: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> OutputFile:
        """Record a held file in the request's version being edited, audited as ``file_added``."""
        return uow.outputs.add_file(
            OutputFile(
                id=0,
                request_id=request.id,
                version=request.version,
                name=accepted.name,
                kind=accepted.kind.value,
                sha256=accepted.sha256,
                original_sha256=accepted.original_sha256,
                size=len(accepted.content),
                original_size=accepted.original_size,
                description=description,
                derived_from=derived_from,
                spec=spec,
                holding_path=held,
                changes=accepted.changes,
                checks=None,
                created_at=self._clock(),
            ),
            audit=AuditEvent(
                "output_request.file_added",
                actor.name,
                "output_request",
                str(request.id),
                {
                    "name": accepted.name,
                    "version": request.version,
                    "sha256": accepted.sha256,
                    "size": len(accepted.content),
                    "changes": list(accepted.changes),
                    **(extra or {}),
                },
            ),
        )

    def _hold(self, request_id: int, accepted: SanitisedFile) -> str:
        """Write an accepted payload to the holding store, once per content; its recorded path."""
        return self._holding.hold(request_id, accepted.sha256, accepted.content)

    def import_acro(
        self,
        actor: Actor,
        project_id: int,
        source: Path | Sequence[Upload],
        *,
        context: str = "",
        controls: str = "",
    ) -> AcroImportResult:
        """A project member opens a draft request holding the outputs of an ACRO results folder (a
        folder on this machine, or its files as uploaded; :mod:`enclave.airlock.acro`).

        Every file passes the normal intake; ACRO's verdict is stored with it (``spec["acro"]``) and
        joins Enclave's own checks when the request is submitted, so an ACRO failure blocks release
        until a reviewer overrides it. All or nothing: one bad file refuses the import, and nothing is
        created. ``controls`` defaults to the mitigations ACRO applied (suppression, rounding).
        """

        def body() -> AcroImportResult:
            clean_context = _text(context, "context")
            clean_controls = _text(controls, "description of the disclosure controls")
            with self._uow(write=False) as uow:
                policy.check_output_project(
                    actor, project_id, uow.access.get_project(project_id), self._today()
                )
            found = self._checks.load_acro(source, limits=self.limits)
            accepted: list[tuple[ImportedFile, SanitisedFile]] = []
            for item in found.files:
                try:
                    accepted.append((item, self._checks.intake(item.name, item.content, limits=self.limits)))
                except PayloadTooLarge as exc:
                    raise PayloadTooLarge(f"ACRO output {item.uid!r}: {exc.detail}") from None
                except InvalidInput as exc:
                    raise InvalidInput(f"ACRO output {item.uid!r}: {exc.detail}") from None
            self._checks.check_request_limits(
                [(a.name, len(a.content)) for _, a in accepted], limits=self.limits
            )
            with self._uow() as uow:
                policy.check_output_project(
                    actor, project_id, uow.access.get_project(project_id), self._today()
                )
                assert actor.user is not None
                request = uow.outputs.add_request(
                    project_id=project_id,
                    author=actor.user.username,
                    context=clean_context,
                    controls=clean_controls or _text(found.controls(), "description of the controls"),
                    at=self._clock(),
                    audit=AuditEvent(
                        "output_request.created",
                        actor.name,
                        "output_request",
                        "new",
                        {"project": project_id, "source": f"ACRO {found.version}"},
                    ),
                )
                files = []
                for item, file in accepted:
                    held = self._hold(request.id, file)
                    spec: dict[str, Any] = {
                        "rounding": (item.rounding or Rounding()).to_dict(),
                        "acro": dict(item.verdict),
                    }
                    if item.count_columns is not None:
                        spec["count_columns"] = list(item.count_columns)
                    description = _text(item.description, "file description")
                    acro = {"acro": {"uid": item.uid, "status": item.status}}
                    files.append(
                        self._record_file(uow, actor, request, file, held, description, (), spec, acro)
                    )
                uow.audit.append(
                    AuditEvent(
                        "output_request.acro_imported",
                        actor.name,
                        "output_request",
                        str(request.id),
                        {
                            "acro_version": found.version,
                            "outputs": {f.uid: f.status for f in found.files},
                            "failed": {
                                f.name: [r.rule for r in f.results if r.status is Status.FAIL]
                                for f in found.files
                                if any(r.status is Status.FAIL for r in f.results)
                            },
                            "skipped": list(found.skipped),
                        },
                    )
                )
            return AcroImportResult(request, found.version, tuple(files), found.skipped)

        return self._audited(actor, "import_acro", None, body, project=project_id)
