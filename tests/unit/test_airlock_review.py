"""The review rules of the airlock: who may decide, what a decision needs, who sees what, outcomes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from enclave.domain.errors import InvalidInput, InvalidState, PermissionDenied
from enclave.domain.outputs.review import (
    CheckOverride,
    Decision,
    FileDecision,
    Outcome,
    ReviewSubject,
    can_release,
    can_review,
    check_can_release,
    check_can_review,
    compute_outcome,
    record_review,
    visible_reviews,
)
from enclave.domain.outputs.states import OUTPUT_MACHINE, AirlockParty, OutputState

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
A, R, J = Decision.APPROVE, Decision.REQUEST_CHANGES, Decision.REJECT


def subject(**changes: object) -> ReviewSubject:
    base = ReviewSubject(
        request_id=7,
        project_id=3,
        author="alice",
        project_members=frozenset({"alice", "bob"}),
        state=OutputState.IN_REVIEW,
        version=1,
        files=("table.csv", "figure.png"),
        failed_checks={"table.csv": frozenset({"small_counts"})},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _comment(decision: Decision) -> str:
    return "" if decision is A else "please fix this"


def decide(
    s: ReviewSubject, reviewer: str, table: Decision, figure: Decision, *overrides: CheckOverride
) -> ReviewSubject:
    """Record a review through the real rules and move the request where the outcome says."""
    review = record_review(
        s,
        reviewer,
        [
            FileDecision("table.csv", table, _comment(table)),
            FileDecision("figure.png", figure, _comment(figure)),
        ],
        overrides,
        at=AT,
    )
    s = replace(s, reviews=(*s.reviews, review))
    outcome = compute_outcome(s)
    if outcome.state != s.state:
        OUTPUT_MACHINE.check(s.state, outcome.state, AirlockParty.SYSTEM)
        s = replace(s, state=outcome.state)
    return s


OVERRIDE = CheckOverride("table.csv", "small_counts", "the small cells are DP counts of a public register")


def test_two_approvals_with_an_override_approve_and_allow_release() -> None:
    """The full path: two reviewers outside the project approve; one overrides the failed check."""
    s = decide(subject(), "carol", A, A, OVERRIDE)
    assert s.state is OutputState.IN_REVIEW
    assert compute_outcome(s).reason == "waiting for 1 more independent review"
    assert not can_release(s)
    s = decide(s, "dave", A, A)
    outcome = compute_outcome(s)
    assert s.state is OutputState.APPROVED
    assert outcome.settled
    assert outcome.files[0].overrides == (OVERRIDE,)
    check_can_release(s)
    assert outcome.to_dict()["files"][0]["overrides"][0]["rule"] == "small_counts"


def test_the_author_and_project_members_cannot_review() -> None:
    """Nobody reviews their own work or their own project's."""
    with pytest.raises(PermissionDenied, match="you wrote output request 7"):
        check_can_review(subject(), "alice")
    with pytest.raises(PermissionDenied, match="member of project 3"):
        check_can_review(subject(), "bob")
    other_author = subject(author="erin")
    with pytest.raises(PermissionDenied, match="you wrote"):
        check_can_review(other_author, "erin")
    assert not can_review(subject(), "bob")
    assert can_review(subject(), "carol")


def test_a_reviewer_decides_once_per_version_but_again_on_a_new_version() -> None:
    """Deciding twice on one version is refused; a resubmitted version gets fresh decisions."""
    s = decide(subject(), "carol", R, A)
    with pytest.raises(InvalidState, match="already decided on version 1"):
        decide(s, "carol", A, A)
    s = decide(s, "dave", R, A)
    assert s.state is OutputState.CHANGES_REQUESTED
    s = replace(s, state=OutputState.IN_REVIEW, version=2, failed_checks={})
    s = decide(s, "carol", A, A)
    s = decide(s, "dave", A, A)
    assert s.state is OutputState.APPROVED
    assert [r.version for r in s.reviews] == [1, 1, 2, 2]


def test_decisions_are_refused_outside_review_and_after_both_reviews() -> None:
    """Only in_review / needs_consolidation take decisions, and only as many as the state needs."""
    for state in (OutputState.DRAFT, OutputState.SUBMITTED, OutputState.APPROVED, OutputState.RELEASED):
        with pytest.raises(InvalidState, match=f"is {state.value}; decisions are recorded only"):
            check_can_review(subject(state=state), "carol")
    s = decide(decide(subject(), "carol", A, A), "dave", J, A)
    assert s.state is OutputState.NEEDS_CONSOLIDATION
    stuck = replace(s, state=OutputState.IN_REVIEW)
    with pytest.raises(InvalidState, match="already has its two independent reviews"):
        check_can_review(stuck, "erin")
    s = decide(s, "erin", J, A)
    with pytest.raises(InvalidState, match="already has its consolidating decision"):
        check_can_review(replace(s, state=OutputState.NEEDS_CONSOLIDATION), "frank")


def test_every_file_needs_exactly_one_decision_and_refusals_need_a_comment() -> None:
    """Incomplete, duplicated, unknown or unexplained decisions are refused with the file named."""
    s = subject()
    good = FileDecision("figure.png", A)
    with pytest.raises(InvalidInput, match=r"no decision for table\.csv"):
        record_review(s, "carol", [good], at=AT)
    with pytest.raises(InvalidInput, match=r"more than one decision for figure.png"):
        record_review(s, "carol", [good, good, FileDecision("table.csv", A)], at=AT)
    with pytest.raises(InvalidInput, match=r"other\.csv is not a file of version 1"):
        record_review(s, "carol", [good, FileDecision("table.csv", A), FileDecision("other.csv", A)], at=AT)
    with pytest.raises(InvalidInput, match=r"comment on table\.csv: a decision to request changes needs one"):
        record_review(s, "carol", [good, FileDecision("table.csv", R, "  ")], at=AT)
    with pytest.raises(InvalidInput, match="not a decision"):
        record_review(s, "carol", [good, FileDecision("table.csv", "maybe")], at=AT)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="longer than"):
        record_review(s, "carol", [good, FileDecision("table.csv", J, "x" * 6000)], at=AT)


def test_overrides_must_name_a_failed_check_go_with_an_approval_and_give_a_reason() -> None:
    """An override is a recorded, reasoned exception to a failed check, nothing else."""
    s = subject()
    both = [FileDecision("figure.png", A), FileDecision("table.csv", A)]
    with pytest.raises(InvalidInput, match=r"'provenance' did not fail on table\.csv"):
        record_review(
            s, "carol", both, [CheckOverride("table.csv", "provenance", "a long enough reason")], at=AT
        )
    with pytest.raises(InvalidInput, match="give the reason"):
        record_review(s, "carol", both, [CheckOverride("table.csv", "small_counts", "ok")], at=AT)
    with pytest.raises(InvalidInput, match="not a file of this version"):
        record_review(
            s, "carol", both, [CheckOverride("x.csv", "small_counts", "a long enough reason")], at=AT
        )
    changes = [FileDecision("figure.png", A), FileDecision("table.csv", R, "round the counts")]
    with pytest.raises(InvalidInput, match="an override goes with an approval"):
        record_review(s, "carol", changes, [OVERRIDE], at=AT)
    with pytest.raises(InvalidInput, match="overridden twice"):
        record_review(s, "carol", both, [OVERRIDE, OVERRIDE], at=AT)


def test_a_failed_check_without_an_override_blocks_release_until_a_third_decision() -> None:
    """Two approvals without an override are not enough; the consolidator must override or refuse."""
    s = decide(decide(subject(), "carol", A, A), "dave", A, A)
    assert s.state is OutputState.NEEDS_CONSOLIDATION
    assert "small_counts failed and no reviewer recorded an override" in compute_outcome(s).files[0].reason
    assert not can_release(replace(s, state=OutputState.APPROVED))
    with pytest.raises(InvalidInput, match="failed check\\(s\\) small_counts and no reviewer overrode them"):
        decide(s, "erin", A, A)
    approved = decide(s, "erin", A, A, OVERRIDE)
    assert approved.state is OutputState.APPROVED
    check_can_release(approved)


def test_the_third_decision_may_refuse_a_file_both_approved_without_an_override() -> None:
    """Two approvals left a failed check open: the consolidator asks for changes or rejects instead
    of overriding, and that settles the file (it used to raise an internal error)."""
    s = decide(decide(subject(), "carol", A, A), "dave", A, A)
    changes = decide(s, "erin", R, A)
    assert changes.state is OutputState.CHANGES_REQUESTED
    assert compute_outcome(changes).files[0].reason == "settled by the consolidating decision"
    rejected = decide(s, "erin", J, J)
    assert compute_outcome(rejected).files[0].decision is J
    assert rejected.state is OutputState.CHANGES_REQUESTED  # the figure stays approved by both
    assert not can_release(replace(rejected, state=OutputState.APPROVED))


def test_disagreement_needs_a_third_decision_which_settles_every_file() -> None:
    """Reviews that differ on a file go to consolidation; the third decision counts."""
    s = decide(decide(subject(), "carol", A, A, OVERRIDE), "dave", J, A)
    outcome = compute_outcome(s)
    assert s.state is OutputState.NEEDS_CONSOLIDATION
    assert outcome.reason == "a third decision is needed on table.csv"
    assert outcome.files[0].decision is None
    assert outcome.files[1].decision is A
    rejected = decide(s, "erin", J, J)
    assert rejected.state is OutputState.CHANGES_REQUESTED  # the figure stays approved by both
    assert rejected.reviews[-1].consolidating
    approved = decide(s, "erin", A, A)  # carol's override covers the failed check
    assert approved.state is OutputState.APPROVED


@pytest.mark.parametrize(
    ("first", "second", "state"),
    [
        ((A, A), (A, A), OutputState.NEEDS_CONSOLIDATION),  # no override of the failed check
        ((J, J), (J, J), OutputState.REJECTED),
        ((R, A), (R, A), OutputState.CHANGES_REQUESTED),
        ((J, A), (J, A), OutputState.CHANGES_REQUESTED),
        ((A, R), (J, R), OutputState.NEEDS_CONSOLIDATION),
    ],
)
def test_outcome_of_two_independent_reviews(
    first: tuple[Decision, Decision], second: tuple[Decision, Decision], state: OutputState
) -> None:
    """All approved -> approved; all rejected -> rejected; other agreed mixes -> changes requested."""
    s = decide(decide(subject(), "carol", *first), "dave", *second)
    assert s.state is state
    assert isinstance(compute_outcome(s), Outcome)


def test_reviewers_are_blind_to_each_other_until_both_decided() -> None:
    """A reviewer sees only their own review until the second is in; members see after review ends."""
    s = decide(subject(), "carol", A, A, OVERRIDE)
    assert [r.reviewer for r in visible_reviews(s, "carol")] == ["carol"]
    assert visible_reviews(s, "dave") == ()
    assert visible_reviews(s, "alice") == ()
    s = decide(s, "dave", J, A)
    assert [r.reviewer for r in visible_reviews(s, "carol")] == ["carol", "dave"]
    assert visible_reviews(s, "bob") == ()  # still in review (needs consolidation)
    s = decide(s, "erin", J, A)
    assert len(visible_reviews(s, "bob")) == 3
    assert visible_reviews(s, "alice")[0].to_dict()["overrides"][0]["rule"] == "small_counts"
    older = replace(s, version=2, state=OutputState.IN_REVIEW)
    assert len(visible_reviews(older, "frank")) == 3  # earlier versions are history, always visible


def test_release_requires_the_approved_state_and_decisions_that_approve() -> None:
    """The state alone is not trusted: the decisions are recomputed before anything leaves."""
    with pytest.raises(InvalidState, match="is in_review; only an approved request can be released"):
        check_can_release(subject())
    forged = subject(state=OutputState.APPROVED)
    with pytest.raises(InvalidState, match="its decisions do not approve every file"):
        check_can_release(forged)
    s = decide(decide(subject(), "carol", A, A, OVERRIDE), "dave", A, A)
    insider = replace(s, project_members=frozenset({"alice", "dave"}))
    with pytest.raises(InvalidState, match="cannot be released"):
        check_can_release(insider)
