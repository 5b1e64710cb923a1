"""The state machines of access requests and projects, as data.

Each machine is a table of transitions: from which state to which, by whom, recording which audit
event. Services ask :meth:`StateMachine.check` before changing a state; the same table generates the
diagrams in ``docs/access-states.md`` (``make docs``; a test fails when they are stale) and drives the
test that every state is reachable and every transition exercised.

Who acts is a *party* relative to the object, not a global role: the applicant of a request, a
custodian of one of its datasets, an admin, or the system (the clock, or the last of several
decisions).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from enclave.domain.errors import InvalidState, PermissionDenied


class Party(StrEnum):
    APPLICANT = "applicant"
    CUSTODIAN = "custodian"
    ADMIN = "admin"
    SYSTEM = "system"


class RequestState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class ProjectState(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    EXPIRED = "expired"
    CLOSED = "closed"


PartyT = TypeVar("PartyT", bound=StrEnum)  # who acts: Party here, AirlockParty for output requests


@dataclass(frozen=True)
class Transition(Generic[PartyT]):
    source: str
    target: str
    action: str  # the verb users see, e.g. "submit"
    parties: frozenset[PartyT]
    event: str  # the audit action written with the change

    def label(self) -> str:
        return f"{self.action} ({' / '.join(sorted(self.parties))})"


@dataclass(frozen=True)
class StateMachine(Generic[PartyT]):
    name: str
    states: tuple[str, ...]
    initial: str
    final: frozenset[str]
    transitions: tuple[Transition[PartyT], ...]

    def find(self, source: str, target: str) -> Transition[PartyT] | None:
        return next((t for t in self.transitions if t.source == source and t.target == target), None)

    def allowed_from(self, source: str) -> list[Transition[PartyT]]:
        return [t for t in self.transitions if t.source == source]

    def parties_in(self, state: str) -> frozenset[PartyT]:
        """Who may move an object on from ``state`` (for pages that show or hide actions)."""
        return frozenset(p for t in self.allowed_from(state) for p in t.parties)

    def can(self, source: str, target: str, party: PartyT) -> bool:
        t = self.find(source, target)
        return t is not None and party in t.parties

    def check(self, source: str, target: str, party: PartyT) -> Transition[PartyT]:
        """The transition, or an error that says what is allowed instead."""
        t = self.find(source, target)
        if t is None:
            options = self.allowed_from(source)
            allowed = ", ".join(f"{o.action} (to {o.target})" for o in options) or "nothing (it is final)"
            raise InvalidState(
                f"cannot change {self.name} from {source} to {target}; from {source}: {allowed}"
            )
        if party not in t.parties:
            who = " or ".join(sorted(t.parties))
            article = "an" if self.name[:1] in "aeiou" else "a"
            raise PermissionDenied(f"only the {who} can {t.action} {article} {self.name} that is {source}")
        return t

    def transitions_table(self) -> list[str]:
        """The transitions as Markdown table lines: from, to, action, who, audit event."""
        lines = ["| from | to | action | who | audit event |", "|---|---|---|---|---|"]
        lines += [
            f"| {t.source} | {t.target} | {t.action} | {', '.join(sorted(t.parties))} | `{t.event}` |"
            for t in self.transitions
        ]
        return lines

    def mermaid(self) -> str:
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial}"]
        lines += [f"    {t.source} --> {t.target}: {t.label()}" for t in self.transitions]
        lines += [f"    {s} --> [*]" for s in self.states if s in self.final]
        return "\n".join(lines)


def _t(source: StrEnum, target: StrEnum, action: str, *parties: Party, event: str) -> Transition[Party]:
    return Transition(source.value, target.value, action, frozenset(parties), event)


R = RequestState
REQUEST_MACHINE: StateMachine[Party] = StateMachine(
    name="access request",
    states=tuple(s.value for s in RequestState),
    initial=R.DRAFT.value,
    final=frozenset({R.APPROVED.value, R.REJECTED.value, R.WITHDRAWN.value}),
    transitions=(
        _t(R.DRAFT, R.SUBMITTED, "submit", Party.APPLICANT, event="access_request.submitted"),
        _t(R.DRAFT, R.WITHDRAWN, "withdraw", Party.APPLICANT, event="access_request.withdrawn"),
        _t(
            R.SUBMITTED,
            R.UNDER_REVIEW,
            "start review",
            Party.CUSTODIAN,
            event="access_request.review_started",
        ),
        _t(R.SUBMITTED, R.WITHDRAWN, "withdraw", Party.APPLICANT, event="access_request.withdrawn"),
        _t(
            R.UNDER_REVIEW,
            R.CHANGES_REQUESTED,
            "request changes",
            Party.CUSTODIAN,
            event="access_request.changes_requested",
        ),
        _t(
            R.UNDER_REVIEW,
            R.APPROVED,
            "approve (every part approved)",
            Party.SYSTEM,
            event="access_request.approved",
        ),
        _t(R.UNDER_REVIEW, R.REJECTED, "reject", Party.CUSTODIAN, event="access_request.rejected"),
        _t(R.UNDER_REVIEW, R.WITHDRAWN, "withdraw", Party.APPLICANT, event="access_request.withdrawn"),
        _t(R.CHANGES_REQUESTED, R.SUBMITTED, "resubmit", Party.APPLICANT, event="access_request.resubmitted"),
        _t(R.CHANGES_REQUESTED, R.WITHDRAWN, "withdraw", Party.APPLICANT, event="access_request.withdrawn"),
    ),
)

P = ProjectState
PROJECT_MACHINE: StateMachine[Party] = StateMachine(
    name="project",
    states=tuple(s.value for s in ProjectState),
    initial=P.ACTIVE.value,
    final=frozenset({P.REVOKED.value, P.EXPIRED.value, P.CLOSED.value}),
    transitions=(
        _t(P.ACTIVE, P.SUSPENDED, "suspend", Party.CUSTODIAN, Party.ADMIN, event="project.suspended"),
        _t(P.SUSPENDED, P.ACTIVE, "reinstate", Party.CUSTODIAN, Party.ADMIN, event="project.reinstated"),
        _t(P.ACTIVE, P.REVOKED, "revoke", Party.CUSTODIAN, Party.ADMIN, event="project.revoked"),
        _t(P.SUSPENDED, P.REVOKED, "revoke", Party.CUSTODIAN, Party.ADMIN, event="project.revoked"),
        _t(P.ACTIVE, P.EXPIRED, "expire (end date passed)", Party.SYSTEM, event="project.expired"),
        _t(P.SUSPENDED, P.EXPIRED, "expire (end date passed)", Party.SYSTEM, event="project.expired"),
        _t(P.ACTIVE, P.CLOSED, "close", Party.APPLICANT, Party.ADMIN, event="project.closed"),
    ),
)

MACHINES = (REQUEST_MACHINE, PROJECT_MACHINE)


def diagrams_markdown() -> str:
    """The generated page ``docs/access-states.md``."""
    parts = [
        "# Access requests and projects: states",
        "",
        "Generated from `enclave/domain/access/states.py` by `make docs`;",
        "a test fails when this page is stale.",
        "Each arrow is labelled with the action and who may take it.",
    ]
    for machine in MACHINES:
        parts += ["", f"## {machine.name.capitalize()}", "", "```mermaid", machine.mermaid(), "```", ""]
        parts += machine.transitions_table()
    return "\n".join(parts) + "\n"
