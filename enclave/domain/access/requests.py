"""Access requests and projects: values and the rules that do not need storage.

A request asks for several datasets; each dataset's custodian decides on their **part**. The request
is approved only when every part is approved (then a project is created with the narrowest scope
the custodians approved); one rejection rejects it; a request for changes sends it back to the
applicant, and a resubmission resets every part.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from enclave.domain.access.form import AccessRequestForm
from enclave.domain.access.states import Party, ProjectState, RequestState
from enclave.domain.errors import InvalidInput, PermissionDenied
from enclave.domain.identity.accounts import Actor, Role, User


class Decision(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CHANGES_REQUESTED = "changes_requested"


@dataclass(frozen=True)
class Part:
    dataset: str
    custodian_id: int
    custodian: str
    decision: Decision = Decision.PENDING
    reason: str = ""
    columns: tuple[str, ...] | None = None  # narrowed scope, if the custodian narrowed it
    epsilon: Decimal | None = None
    end_date: date | None = None
    conditions: dict[str, Any] = field(default_factory=dict)
    decided_by: str | None = None
    decided_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "custodian_id": self.custodian_id,
            "custodian": self.custodian,
            "decision": self.decision.value,
            "reason": self.reason,
            "columns": list(self.columns) if self.columns is not None else None,
            "epsilon": str(self.epsilon) if self.epsilon is not None else None,
            "end_date": self.end_date.isoformat() if self.end_date else None,
            "conditions": self.conditions,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Part:
        return cls(
            dataset=raw["dataset"],
            custodian_id=raw["custodian_id"],
            custodian=raw["custodian"],
            decision=Decision(raw["decision"]),
            reason=raw.get("reason", ""),
            columns=tuple(raw["columns"]) if raw.get("columns") is not None else None,
            epsilon=Decimal(raw["epsilon"]) if raw.get("epsilon") is not None else None,
            end_date=date.fromisoformat(raw["end_date"]) if raw.get("end_date") else None,
            conditions=dict(raw.get("conditions") or {}),
            decided_by=raw.get("decided_by"),
            decided_at=datetime.fromisoformat(raw["decided_at"]) if raw.get("decided_at") else None,
        )


@dataclass(frozen=True)
class AccessRequest:
    id: int
    applicant_id: int
    applicant: str
    state: RequestState
    form: AccessRequestForm
    parts: tuple[Part, ...]
    created_at: datetime
    updated_at: datetime
    project_id: int | None = None
    amends_project_id: int | None = None

    @property
    def members(self) -> frozenset[str]:
        return frozenset(m.username for m in self.form.team)

    def part(self, dataset: str) -> Part:
        for p in self.parts:
            if p.dataset == dataset:
                return p
        asked = ", ".join(p.dataset for p in self.parts)
        raise InvalidInput(f"request {self.id} does not ask for {dataset!r}; it asks for {asked}")


@dataclass(frozen=True)
class Project:
    id: int
    request_id: int
    title: str
    lay_summary: str
    organisation: str
    state: ProjectState
    start_date: date
    end_date: date
    epsilon: Decimal
    delta: Decimal | None
    scope: dict[str, list[str]]
    conditions: dict[str, Any]
    members: dict[str, str]  # username -> role in the project
    created_at: datetime

    def effective_state(self, on: date) -> ProjectState:
        """Expiry counts from the day after the end date, whether or not the sweep has run."""
        if self.state in (ProjectState.ACTIVE, ProjectState.SUSPENDED) and on > self.end_date:
            return ProjectState.EXPIRED
        return self.state


# --- who is acting, relative to a request ------------------------------------------------------


def parties(actor: Actor, request: AccessRequest) -> frozenset[Party]:
    found: set[Party] = set()
    if actor.is_operator:
        return frozenset({Party.ADMIN})
    if actor.user is None or actor.project_scope is not None:
        return frozenset()
    if actor.user.id == request.applicant_id:
        found.add(Party.APPLICANT)
    if actor.has_role(Role.CUSTODIAN) and any(p.custodian_id == actor.user.id for p in request.parts):
        found.add(Party.CUSTODIAN)
    if actor.has_role(Role.ADMIN):
        found.add(Party.ADMIN)
    return frozenset(found)


class Relation(StrEnum):
    """How a user stands to a request: the three ways of being allowed to see it."""

    APPLICANT = "applicant"
    MEMBER = "member"
    CUSTODIAN = "custodian"


def relations(request: AccessRequest) -> frozenset[tuple[str, Relation]]:
    """Every (username, relation) the request has. Stored beside the request, so that a page of
    the requests a user may see is one indexed query rather than a walk over every request."""
    found = {(request.applicant, Relation.APPLICANT)}
    found.update((m, Relation.MEMBER) for m in request.members)
    found.update((p.custodian, Relation.CUSTODIAN) for p in request.parts)
    return frozenset(found)


def seen_through(actor: Actor) -> frozenset[Relation] | None:
    """The relations through which ``actor`` sees a request: ``None`` means every request (admins
    and the operator), an empty set none (a workspace token, nobody signed in). Researchers see
    their own requests, as applicant or team member; custodians also those that touch their
    datasets."""
    if actor.is_operator:
        return None
    if actor.user is None or actor.project_scope is not None:
        return frozenset()
    if actor.has_role(Role.ADMIN):
        return None
    through = {Relation.APPLICANT, Relation.MEMBER}
    if actor.has_role(Role.CUSTODIAN):
        through.add(Relation.CUSTODIAN)
    return frozenset(through)


def can_view_request(actor: Actor, request: AccessRequest) -> bool:
    """The rule of :func:`seen_through`, for one request; the repository's paged query applies the
    same relations in SQL."""
    through = seen_through(actor)
    if through is None:
        return True
    name = actor.user.username if actor.user is not None else None
    return any(user == name and relation in through for user, relation in relations(request))


@dataclass(frozen=True)
class RequestQuery:
    """Which requests to read, in the repository's terms: those where ``party`` stands in one of
    the ``through`` relations (``party`` ``None``: every request), optionally in one state; oldest
    first unless ``newest_first``; ``limit`` ``None`` for all of them."""

    party: str | None = None
    through: frozenset[Relation] = frozenset(Relation)
    state: RequestState | None = None
    newest_first: bool = False
    offset: int = 0
    limit: int | None = None


def check_can_decide(actor: Actor, request: AccessRequest, part: Part) -> None:
    if actor.user is None or actor.project_scope is not None or not actor.has_role(Role.CUSTODIAN):
        raise PermissionDenied("deciding on a request needs the custodian role")
    if actor.user.id != part.custodian_id:
        raise PermissionDenied(
            f"only {part.custodian}, the custodian of {part.dataset}, decides on that part"
        )
    if actor.user.username in request.members or actor.user.id == request.applicant_id:
        raise PermissionDenied("you cannot decide on a request you are a member of")


def narrow(
    request: AccessRequest,
    part: Part,
    *,
    columns: list[str] | None,
    epsilon: Decimal | None,
    end_date: date | None,
) -> Part:
    """Validate a custodian's narrowing: it may only shrink what was asked."""
    wanted = next(d for d in request.form.datasets if d.dataset == part.dataset)
    if columns is not None:
        extra = sorted(set(columns) - set(wanted.columns))
        if extra:
            raise InvalidInput(
                f"approval can only narrow the columns asked for ({', '.join(wanted.columns)}); not asked: "
                + ", ".join(extra)
            )
        if not columns:
            raise InvalidInput("approve at least one column, or reject the part")
    if epsilon is not None and not (Decimal(0) < epsilon <= request.form.budget.epsilon):
        raise InvalidInput(
            f"the approved epsilon must be above 0 and at most the {request.form.budget.epsilon} asked"
        )
    if end_date is not None and not (request.form.start_date < end_date <= request.form.end_date):
        raise InvalidInput(
            f"the approved end date must be after {request.form.start_date} and no later than"
            f" the {request.form.end_date} asked"
        )
    return replace(
        part, columns=tuple(columns) if columns is not None else None, epsilon=epsilon, end_date=end_date
    )


def merge_conditions(parts: tuple[Part, ...]) -> dict[str, Any]:
    """Conditions of all parts: the strictest small-count threshold wins; other keys are collected."""
    merged: dict[str, Any] = {}
    for p in parts:
        for key, value in p.conditions.items():
            if key == "min_count":
                merged[key] = max(int(merged.get(key, 0)), int(value))
            else:
                merged.setdefault(key, [])
                merged[key].append({"dataset": p.dataset, "condition": value})
    return merged


def approved_scope(request: AccessRequest) -> tuple[dict[str, list[str]], Decimal, date]:
    """The project's scope: each dataset's narrowed columns, the smallest epsilon, the earliest end."""
    scope = {}
    for wanted in request.form.datasets:
        part = request.part(wanted.dataset)
        scope[wanted.dataset] = list(part.columns) if part.columns is not None else list(wanted.columns)
    epsilons = [request.form.budget.epsilon] + [p.epsilon for p in request.parts if p.epsilon is not None]
    ends = [request.form.end_date] + [p.end_date for p in request.parts if p.end_date is not None]
    return scope, min(epsilons), min(ends)


def unaccredited(members: list[User | None], usernames: list[str], on: date) -> list[str]:
    """Members who would not hold a valid accreditation on ``on`` (or have no account)."""
    out = []
    for name, user in zip(usernames, members, strict=True):
        if user is None or not user.active or not user.is_accredited(on):
            out.append(name)
    return out
