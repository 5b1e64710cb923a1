"""The state machine of output requests (the airlock), as data.

Same idea as :mod:`enclave.domain.access.states`: a table of transitions (from, to, by whom, which
audit event) that services consult with :meth:`AirlockStateMachine.check` before changing a state,
that generates ``docs/airlock-states.md`` (:func:`diagrams_markdown`) and that drives the test that
every state is reachable.

The parties differ from the access machines, so the airlock has its own :class:`AirlockParty`; the
machine is ``access_states.StateMachine`` typed on that party.

Reviewers' individual decisions are not transitions: they are recorded against the request while
it is ``in_review`` or ``needs_consolidation`` (see :mod:`enclave.domain.outputs.review`), and the
*system* moves the request once :func:`enclave.domain.outputs.review.compute_outcome` says the decisions
settle it. A release that is withdrawn stays on record as ``release_withdrawn``: nothing that left
the enclave is ever erased from its history.
"""

from __future__ import annotations

from enum import StrEnum

from enclave.domain.access.states import StateMachine, Transition


class AirlockParty(StrEnum):
    """Who acts, relative to one output request."""

    RESEARCHER = "researcher"  # a member of the request's project (the author or a co-member)
    REVIEWER = "reviewer"  # an output checker who is not a member of the project
    ADMIN = "admin"
    SYSTEM = "system"  # the automated checks, or the last decision that settles the outcome


class OutputState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    NEEDS_CONSOLIDATION = "needs_consolidation"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    RELEASED = "released"
    WITHDRAWN = "withdrawn"
    RELEASE_WITHDRAWN = "release_withdrawn"


STATE_DESCRIPTIONS: dict[OutputState, str] = {
    OutputState.DRAFT: "the researcher adds files and a justification; nothing is checked yet",
    OutputState.SUBMITTED: "files are frozen as a version; the automated disclosure checks run",
    OutputState.IN_REVIEW: "two independent reviewers decide on every file, blind to each other",
    OutputState.NEEDS_CONSOLIDATION: "the two reviews disagree (or a failed check lacks an override);"
    " a third reviewer's decision settles it",
    OutputState.CHANGES_REQUESTED: "the researcher uploads a new version (the old one is kept) or withdraws",
    OutputState.APPROVED: "every file approved by two reviewers; waiting to be copied to the release store",
    OutputState.REJECTED: "final: nothing leaves",
    OutputState.RELEASED: "the files are in the immutable release store, downloadable by project members",
    OutputState.WITHDRAWN: "final: withdrawn by the researcher before release",
    OutputState.RELEASE_WITHDRAWN: "final: a release that was withdrawn; recorded, not erased",
}


AirlockTransition = Transition[AirlockParty]
AirlockStateMachine = StateMachine[AirlockParty]


def _t(
    source: OutputState, target: OutputState, action: str, *parties: AirlockParty, event: str
) -> AirlockTransition:
    return Transition(source.value, target.value, action, frozenset(parties), event)


S = OutputState
RESEARCHER = AirlockParty.RESEARCHER
SYSTEM = AirlockParty.SYSTEM
_WITHDRAW = "output_request.withdrawn"

OUTPUT_MACHINE: AirlockStateMachine = StateMachine(
    name="output request",
    states=tuple(s.value for s in OutputState),
    initial=S.DRAFT.value,
    final=frozenset({S.REJECTED.value, S.WITHDRAWN.value, S.RELEASE_WITHDRAWN.value}),
    transitions=(
        _t(S.DRAFT, S.SUBMITTED, "submit", RESEARCHER, event="output_request.submitted"),
        _t(S.DRAFT, S.WITHDRAWN, "withdraw", RESEARCHER, event=_WITHDRAW),
        _t(S.SUBMITTED, S.IN_REVIEW, "checks recorded", SYSTEM, event="output_request.checks_recorded"),
        _t(S.SUBMITTED, S.WITHDRAWN, "withdraw", RESEARCHER, event=_WITHDRAW),
        _t(S.IN_REVIEW, S.APPROVED, "both reviews approve", SYSTEM, event="output_request.approved"),
        _t(
            S.IN_REVIEW,
            S.CHANGES_REQUESTED,
            "both reviews ask for changes",
            SYSTEM,
            event="output_request.changes_requested",
        ),
        _t(S.IN_REVIEW, S.REJECTED, "both reviews reject", SYSTEM, event="output_request.rejected"),
        _t(
            S.IN_REVIEW,
            S.NEEDS_CONSOLIDATION,
            "reviews disagree",
            SYSTEM,
            event="output_request.needs_consolidation",
        ),
        _t(S.IN_REVIEW, S.WITHDRAWN, "withdraw", RESEARCHER, event=_WITHDRAW),
        _t(
            S.NEEDS_CONSOLIDATION,
            S.APPROVED,
            "third decision approves",
            SYSTEM,
            event="output_request.approved",
        ),
        _t(
            S.NEEDS_CONSOLIDATION,
            S.CHANGES_REQUESTED,
            "third decision asks for changes",
            SYSTEM,
            event="output_request.changes_requested",
        ),
        _t(
            S.NEEDS_CONSOLIDATION,
            S.REJECTED,
            "third decision rejects",
            SYSTEM,
            event="output_request.rejected",
        ),
        _t(S.NEEDS_CONSOLIDATION, S.WITHDRAWN, "withdraw", RESEARCHER, event=_WITHDRAW),
        _t(
            S.CHANGES_REQUESTED,
            S.SUBMITTED,
            "resubmit a new version",
            RESEARCHER,
            event="output_request.resubmitted",
        ),
        _t(S.CHANGES_REQUESTED, S.WITHDRAWN, "withdraw", RESEARCHER, event=_WITHDRAW),
        _t(S.APPROVED, S.RELEASED, "release", SYSTEM, event="output_request.released"),
        _t(S.APPROVED, S.WITHDRAWN, "withdraw", RESEARCHER, event=_WITHDRAW),
        _t(
            S.RELEASED,
            S.RELEASE_WITHDRAWN,
            "withdraw the release",
            RESEARCHER,
            AirlockParty.REVIEWER,
            AirlockParty.ADMIN,
            event="output_request.release_withdrawn",
        ),
    ),
)

MACHINES = (OUTPUT_MACHINE,)

# States in which reviewers record decisions (not transitions: see the module docstring).
REVIEWABLE_STATES = frozenset({OutputState.IN_REVIEW, OutputState.NEEDS_CONSOLIDATION})


def _who(machine: AirlockStateMachine, state: OutputState) -> str:
    who: list[str] = sorted(machine.parties_in(state.value))
    if state in REVIEWABLE_STATES:
        who.insert(0, "reviewer (decides)")
    return ", ".join(who) or "nobody (final)"


def diagrams_markdown() -> str:
    """The generated page ``docs/airlock-states.md``: the diagram, the states, the transitions."""
    parts = [
        "# Output requests (the airlock): states",
        "",
        "Generated from `enclave/domain/outputs/states.py`; a test fails when this page is stale.",
        "Each arrow is labelled with the action and who may take it. Reviewers' decisions are recorded",
        "while a request is in_review or needs_consolidation; the system then moves it to the outcome",
        "the decisions settle (`enclave.domain.outputs.review.compute_outcome`).",
    ]
    for machine in MACHINES:
        parts += ["", f"## {machine.name.capitalize()}", "", "```mermaid", machine.mermaid(), "```", ""]
        parts += ["| state | meaning | who may act |", "|---|---|---|"]
        parts += [f"| {s.value} | {STATE_DESCRIPTIONS[s]} | {_who(machine, s)} |" for s in OutputState]
        parts += ["", *machine.transitions_table()]
    return "\n".join(parts) + "\n"
