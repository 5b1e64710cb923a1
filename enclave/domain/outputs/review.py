"""The review rules of the airlock, as plain functions over plain values.

Nothing leaves the enclave without two approvals (architecture invariant 5). This module says who
may decide on an output request, what a valid decision is, what each participant may see, and what
the decisions add up to. It reads no database: the service loads a :class:`ReviewSubject` (the
request's current version, its project's members, the failed automated checks, every review so
far), asks these functions, stores what they return and moves the request with
:data:`enclave.domain.outputs.states.OUTPUT_MACHINE`.

The rules, and why:

* **Two distinct reviewers, neither the author nor a project member.** Someone who wants the output
  out cannot be the one who lets it out. (That the user holds the reviewer role is the service's
  check; this module knows usernames, not accounts.)
* **One decision per reviewer per version.** A reviewer cannot outvote a colleague by deciding again;
  a new version (after changes were requested) is new material and gets fresh decisions.
* **Decisions per file, with a comment** for "request changes" and "reject", so the researcher
  knows what to fix.
* **Blind until both decided.** A reviewer sees the other's decision only once both are in, so the
  second review is independent rather than a confirmation; the researcher sees the decisions once
  the request has left review.
* **Disagreement needs a third decision.** A file on which the two reviews differ is settled by a
  consolidating decision from a third reviewer (who may have talked to the first two), which then
  counts for every file.
* **A failed automated check blocks release** unless a reviewer who approves the file overrides
  that check with a recorded reason. Two approvals without an override send the request to
  consolidation, and the consolidating reviewer must override or decide otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from enclave.domain.errors import InternalError, InvalidInput, InvalidState, PermissionDenied
from enclave.domain.outputs.states import REVIEWABLE_STATES, OutputState

MAX_COMMENT_LENGTH = 5000
MIN_OVERRIDE_REASON_LENGTH = 10


class Decision(StrEnum):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
    REJECT = "reject"


@dataclass(frozen=True)
class FileDecision:
    """One reviewer's decision on one file of one version."""

    file: str
    decision: Decision
    comment: str = ""


@dataclass(frozen=True)
class CheckOverride:
    """A reviewer's recorded reason for releasing a file although an automated check failed on it."""

    file: str
    rule: str
    reason: str


@dataclass(frozen=True)
class Review:
    """A reviewer's decisions on every file of one version; ``consolidating`` marks a third decision."""

    reviewer: str
    version: int
    decisions: tuple[FileDecision, ...]
    overrides: tuple[CheckOverride, ...]
    consolidating: bool
    decided_at: datetime

    def decision_for(self, file: str) -> Decision:
        for d in self.decisions:
            if d.file == file:
                return d.decision
        raise InternalError(f"review by {self.reviewer} has no decision for {file}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "reviewer": self.reviewer,
            "version": self.version,
            "consolidating": self.consolidating,
            "decided_at": self.decided_at.isoformat(),
            "decisions": [
                {"file": d.file, "decision": d.decision.value, "comment": d.comment} for d in self.decisions
            ],
            "overrides": [{"file": o.file, "rule": o.rule, "reason": o.reason} for o in self.overrides],
        }


@dataclass(frozen=True)
class ReviewSubject:
    """What the review rules need to know about one output request.

    ``files`` are the file names of the current ``version``; ``failed_checks`` maps a file name to the
    names of the automated rules that *failed* on it (warnings do not block); ``reviews`` holds every
    review of every version, in the order they were recorded.
    """

    request_id: int
    project_id: int
    author: str
    project_members: frozenset[str]
    state: OutputState
    version: int
    files: tuple[str, ...]
    failed_checks: Mapping[str, frozenset[str]] = field(default_factory=dict)
    reviews: tuple[Review, ...] = ()

    def current_reviews(self) -> tuple[Review, ...]:
        return tuple(r for r in self.reviews if r.version == self.version)

    def independent_reviews(self) -> tuple[Review, ...]:
        return tuple(r for r in self.current_reviews() if not r.consolidating)

    def consolidation(self) -> Review | None:
        return next((r for r in self.current_reviews() if r.consolidating), None)


# --- who may review -------------------------------------------------------------------------------


def check_can_review(subject: ReviewSubject, reviewer: str) -> None:
    """Raise unless ``reviewer`` may record a decision on the request now."""
    rid = subject.request_id
    if reviewer == subject.author:
        raise PermissionDenied(
            f"you wrote output request {rid}; it must be checked by reviewers who did not write it"
        )
    if reviewer in subject.project_members:
        raise PermissionDenied(
            f"you are a member of project {subject.project_id}; its outputs are checked by reviewers"
            " outside the project"
        )
    if subject.state not in REVIEWABLE_STATES:
        raise InvalidState(
            f"output request {rid} is {subject.state}; decisions are recorded only while it is in_review"
            " or needs_consolidation"
        )
    if any(r.reviewer == reviewer for r in subject.current_reviews()):
        raise InvalidState(
            f"you already decided on version {subject.version} of output request {rid}; each reviewer"
            " decides once per version"
        )
    if subject.state == OutputState.IN_REVIEW and len(subject.independent_reviews()) >= 2:
        raise InvalidState(
            f"version {subject.version} of output request {rid} already has its two independent reviews"
        )
    if subject.state == OutputState.NEEDS_CONSOLIDATION and subject.consolidation() is not None:
        raise InvalidState(
            f"version {subject.version} of output request {rid} already has its consolidating decision"
        )


def can_review(subject: ReviewSubject, reviewer: str) -> bool:
    """The boolean twin of :func:`check_can_review` (pages hide the buttons with it)."""
    try:
        check_can_review(subject, reviewer)
    except (PermissionDenied, InvalidState):
        return False
    return True


# --- recording a review ---------------------------------------------------------------------------


def record_review(
    subject: ReviewSubject,
    reviewer: str,
    decisions: Sequence[FileDecision],
    overrides: Sequence[CheckOverride] = (),
    *,
    at: datetime,
) -> Review:
    """Validate a reviewer's decisions and return the :class:`Review` to store.

    Whether the review is the consolidating third decision follows from the request's state, not from
    the caller. Raises ``PermissionDenied``/``InvalidState`` (see :func:`check_can_review`) or
    ``InvalidInput`` when the decisions are incomplete or inconsistent.
    """
    check_can_review(subject, reviewer)
    consolidating = subject.state == OutputState.NEEDS_CONSOLIDATION
    by_file = _validate_decisions(subject, decisions)
    _validate_overrides(subject, by_file, overrides, consolidating=consolidating)
    ordered = tuple(by_file[f] for f in subject.files)
    return Review(
        reviewer=reviewer,
        version=subject.version,
        decisions=tuple(FileDecision(d.file, Decision(d.decision), d.comment.strip()) for d in ordered),
        overrides=tuple(CheckOverride(o.file, o.rule, o.reason.strip()) for o in overrides),
        consolidating=consolidating,
        decided_at=at,
    )


def _validate_decisions(subject: ReviewSubject, decisions: Sequence[FileDecision]) -> dict[str, FileDecision]:
    names = [d.file for d in decisions]
    twice = sorted(n for n, c in Counter(names).items() if c > 1)
    if twice:
        raise InvalidInput(f"decide once per file; more than one decision for {', '.join(twice)}")
    unknown = sorted(set(names) - set(subject.files))
    if unknown:
        raise InvalidInput(
            f"{', '.join(unknown)} is not a file of version {subject.version} of output request"
            f" {subject.request_id}"
        )
    missing = [f for f in subject.files if f not in names]
    if missing:
        raise InvalidInput(f"decide on every file of the version; no decision for {', '.join(missing)}")
    for d in decisions:
        try:
            kind = Decision(d.decision)
        except ValueError:
            raise InvalidInput(
                f"{d.decision!r} is not a decision; use approve, request_changes or reject"
            ) from None
        comment = d.comment.strip()
        if kind != Decision.APPROVE and not comment:
            raise InvalidInput(
                f"say why in a comment on {d.file}: a decision to {kind.value.replace('_', ' ')} needs one"
                " so the researcher knows what to do"
            )
        if len(comment) > MAX_COMMENT_LENGTH:
            raise InvalidInput(f"the comment on {d.file} is longer than {MAX_COMMENT_LENGTH} characters")
    return {d.file: d for d in decisions}


def _validate_overrides(
    subject: ReviewSubject,
    by_file: Mapping[str, FileDecision],
    overrides: Sequence[CheckOverride],
    *,
    consolidating: bool,
) -> None:
    seen: set[tuple[str, str]] = set()
    for o in overrides:
        if o.file not in by_file:
            raise InvalidInput(f"cannot override a check on {o.file}: it is not a file of this version")
        failed = subject.failed_checks.get(o.file, frozenset())
        if o.rule not in failed:
            raise InvalidInput(
                f"check {o.rule!r} did not fail on {o.file}; only a failed check can be overridden"
            )
        if by_file[o.file].decision != Decision.APPROVE:
            raise InvalidInput(
                f"an override goes with an approval; you did not approve {o.file}, so leave out the"
                f" override of {o.rule!r}"
            )
        if len(o.reason.strip()) < MIN_OVERRIDE_REASON_LENGTH:
            raise InvalidInput(
                f"give the reason for overriding {o.rule!r} on {o.file} in a sentence; it is recorded"
                " with the release"
            )
        if (o.file, o.rule) in seen:
            raise InvalidInput(f"check {o.rule!r} on {o.file} is overridden twice; once is enough")
        seen.add((o.file, o.rule))
    if not consolidating:
        return
    # The third decision settles the request: an approval from it must leave no failed check open.
    for name, d in by_file.items():
        if d.decision != Decision.APPROVE:
            continue
        open_rules = _unoverridden(subject, name, subject.independent_reviews()) - {
            o.rule for o in overrides if o.file == name
        }
        if open_rules:
            raise InvalidInput(
                f"{name} failed check(s) {', '.join(sorted(open_rules))} and no reviewer overrode them;"
                " override each with a reason, or request changes"
            )


def _unoverridden(subject: ReviewSubject, file: str, reviews: Sequence[Review]) -> set[str]:
    """Failed checks of ``file`` not overridden by a review (among ``reviews``) that approved it."""
    failed = set(subject.failed_checks.get(file, frozenset()))
    for r in reviews:
        if r.decision_for(file) == Decision.APPROVE:
            failed -= {o.rule for o in r.overrides if o.file == file}
    return failed


# --- what each participant sees -------------------------------------------------------------------


def visible_reviews(subject: ReviewSubject, viewer: str) -> tuple[Review, ...]:
    """The reviews ``viewer`` may see: earlier versions always; of the current version, a reviewer's own
    review at once and the others' once both independent reviews are in; project members see the
    current version's reviews once the request has left review."""
    older = tuple(r for r in subject.reviews if r.version != subject.version)
    current = subject.current_reviews()
    if viewer == subject.author or viewer in subject.project_members:
        return older + (current if subject.state not in REVIEWABLE_STATES else ())
    if len(subject.independent_reviews()) >= 2:
        return older + current
    return older + tuple(r for r in current if r.reviewer == viewer)


# --- the outcome ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileOutcome:
    """What the decisions settle for one file; ``decision`` is None while it is unsettled."""

    file: str
    decision: Decision | None
    reason: str
    overrides: tuple[CheckOverride, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """Where the decisions put the request.

    ``state`` is ``in_review`` (still waiting for an independent review), ``needs_consolidation``,
    ``approved``, ``changes_requested`` or ``rejected``. The service moves the request there (by the
    system party) when it differs from the current state.
    """

    state: OutputState
    reason: str
    files: tuple[FileOutcome, ...]

    @property
    def settled(self) -> bool:
        return self.state not in REVIEWABLE_STATES

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "reason": self.reason,
            "files": [
                {
                    "file": f.file,
                    "decision": None if f.decision is None else f.decision.value,
                    "reason": f.reason,
                    "overrides": [{"rule": o.rule, "reason": o.reason} for o in f.overrides],
                }
                for f in self.files
            ],
        }


def compute_outcome(subject: ReviewSubject) -> Outcome:
    """What the recorded decisions on the current version add up to.

    Per file: the two independent decisions if they agree, otherwise the consolidating decision; an
    approval stands only if every failed check of the file is overridden by a reviewer who approved
    it. For the request: any unsettled file -> needs_consolidation; every file approved -> approved;
    every file rejected -> rejected; any other mix -> changes_requested (the researcher removes or
    fixes files in a new version, which is reviewed afresh).
    """
    independent = subject.independent_reviews()[:2]
    if len(independent) < 2:
        missing = 2 - len(independent)
        return Outcome(
            OutputState.IN_REVIEW,
            f"waiting for {missing} more independent review{'s' if missing > 1 else ''}",
            tuple(FileOutcome(f, None, "not yet reviewed twice") for f in subject.files),
        )
    third = subject.consolidation()
    counted = (*independent, third) if third is not None else independent
    files = tuple(_file_outcome(subject, f, independent, third, counted) for f in subject.files)
    unsettled = [f for f in files if f.decision is None]
    if unsettled:
        if third is not None:
            raise InternalError(
                f"output request {subject.request_id} is unsettled after its consolidating decision"
            )
        names = ", ".join(f.file for f in unsettled)
        return Outcome(OutputState.NEEDS_CONSOLIDATION, f"a third decision is needed on {names}", files)
    decisions = {f.decision for f in files}
    if decisions == {Decision.APPROVE}:
        return Outcome(OutputState.APPROVED, "every file is approved", files)
    if decisions == {Decision.REJECT}:
        return Outcome(OutputState.REJECTED, "every file is rejected", files)
    return Outcome(
        OutputState.CHANGES_REQUESTED,
        "some files are not approved; the researcher can fix or remove them in a new version",
        files,
    )


def _file_outcome(
    subject: ReviewSubject,
    file: str,
    independent: Sequence[Review],
    third: Review | None,
    counted: Sequence[Review],
) -> FileOutcome:
    first, second = (r.decision_for(file) for r in independent)
    agreed_but_open = first == second == Decision.APPROVE and bool(_unoverridden(subject, file, independent))
    if first == second and not (agreed_but_open and third is not None):
        decision, why = first, "both reviews agree"
    elif third is not None:
        # A disagreement, or two approvals that left a failed check without an override: the
        # consolidating decision settles the file (it may override the check or decide otherwise).
        decision, why = third.decision_for(file), "settled by the consolidating decision"
    else:
        return FileOutcome(file, None, f"the reviews disagree ({first} and {second})")
    if decision != Decision.APPROVE:
        return FileOutcome(file, decision, why)
    open_rules = _unoverridden(subject, file, counted)
    if open_rules:
        return FileOutcome(
            file,
            None,
            f"approved, but check(s) {', '.join(sorted(open_rules))} failed and no reviewer recorded an"
            " override",
        )
    overrides = tuple(
        o for r in counted if r.decision_for(file) == Decision.APPROVE for o in r.overrides if o.file == file
    )
    return FileOutcome(file, decision, why, overrides)


# --- release --------------------------------------------------------------------------------------


def check_can_release(subject: ReviewSubject) -> None:
    """Raise unless the request is approved *and* its recorded decisions say so.

    The state alone is not trusted: the decisions are recomputed, so a request whose state was set
    by mistake still cannot leave without two approvals from distinct reviewers outside the project.
    """
    if subject.state != OutputState.APPROVED:
        raise InvalidState(
            f"output request {subject.request_id} is {subject.state}; only an approved request can be"
            " released"
        )
    outcome = compute_outcome(subject)
    insiders = {subject.author, *subject.project_members}
    reviewers = {r.reviewer for r in subject.current_reviews()}
    if outcome.state != OutputState.APPROVED or reviewers & insiders or len(reviewers) < 2:
        raise InvalidState(
            f"output request {subject.request_id} is marked approved but its decisions do not approve"
            " every file; it cannot be released"
        )


def can_release(subject: ReviewSubject) -> bool:
    try:
        check_can_release(subject)
    except InvalidState:
        return False
    return True


# --- stored records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputRequest:
    """An output request as stored: who asked, for which project, where it stands.

    ``version`` is the version being edited or reviewed; earlier versions keep their files, checks
    and reviews. ``context`` is the researcher's justification, ``controls`` the disclosure controls
    they applied (rounding, suppression); both are shown to reviewers and recorded with the release.
    """

    id: int
    project_id: int
    author: str
    state: OutputState
    version: int
    context: str
    controls: str
    policy_version: str | None
    policy: Mapping[str, Any] | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None


@dataclass(frozen=True)
class OutputFile:
    """One file of one version of a request, as accepted by intake and held outside any workspace.

    ``checks`` is the disclosure-check record (:meth:`enclave.airlock.checks.CheckRecord.to_dict`),
    written when the version is submitted. ``spec`` is what the researcher declared about a table
    (count columns, rounding).
    """

    id: int
    request_id: int
    version: int
    name: str
    kind: str
    sha256: str
    original_sha256: str
    size: int
    original_size: int
    description: str
    derived_from: tuple[int, ...]
    spec: Mapping[str, Any]
    holding_path: str
    changes: tuple[str, ...]
    checks: Mapping[str, Any] | None
    created_at: datetime

    @property
    def check_status(self) -> str | None:
        return None if self.checks is None else str(self.checks.get("status"))

    @property
    def failed_rules(self) -> frozenset[str]:
        if self.checks is None:
            return frozenset()
        return frozenset(r["rule"] for r in self.checks.get("results", ()) if r.get("status") == "fail")


@dataclass(frozen=True)
class ReleasedFile:
    """A file copied to the release store: exactly one per approved file. A withdrawal is recorded
    on it (who, when, why); the record is never deleted."""

    id: int
    file_id: int
    request_id: int
    project_id: int
    name: str
    sha256: str
    path: str
    released_at: datetime
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None
    withdrawal_reason: str | None = None

    @property
    def withdrawn(self) -> bool:
        return self.withdrawn_at is not None


def review_subject(
    request: OutputRequest,
    project_members: frozenset[str],
    files: Sequence[OutputFile],
    reviews: Sequence[Review],
) -> ReviewSubject:
    """The :class:`ReviewSubject` of a stored request: its current version's files and checks."""
    current = [f for f in files if f.version == request.version]
    return ReviewSubject(
        request_id=request.id,
        project_id=request.project_id,
        author=request.author,
        project_members=project_members,
        state=request.state,
        version=request.version,
        files=tuple(f.name for f in current),
        failed_checks={f.name: f.failed_rules for f in current if f.failed_rules},
        reviews=tuple(reviews),
    )


#: How bad a file's checks are, for ranking the reviewers' queue (not checked counts as nothing).
CHECK_SEVERITY = {"fail": 3, "warn": 2, "pass": 1, None: 0}


def worst_check(files: Sequence[OutputFile]) -> str | None:
    """The worst check outcome of the files (``None`` when none was checked)."""
    return max((f.check_status for f in files), key=lambda s: CHECK_SEVERITY.get(s, 0), default=None)
