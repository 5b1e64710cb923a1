"""The custodian's access-request pages: the queue, a request, the decision form, and the
projects on their datasets.

Every page calls the access use cases the API's routes call (``AccessService.list_requests``,
``get``, ``decide``, ``projects``, ``project``, ``set_project_state``): the state machine, who may
decide what, and how far an approval may narrow are the service's rules, and a refusal is shown as
the service's own sentence, with nothing changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from starlette.responses import RedirectResponse, Response

from enclave.api.deps import ServicesDep
from enclave.api.schemas import MAX_INT, NAME_PATTERN
from enclave.domain.access.form import LegalBasis
from enclave.domain.access.requests import AccessRequest, Decision, Part, Project
from enclave.domain.access.states import PROJECT_MACHINE, Party, ProjectState, RequestState
from enclave.domain.audit.executions import ExecutionRecord
from enclave.domain.errors import EnclaveError, NotFound
from enclave.domain.identity.accounts import Actor, Role
from enclave.portal.forms import DateFields, FormErrors, refusal_sentence, text_field
from enclave.portal.sessions import CheckedForm, signed_in
from enclave.portal.web import PREFIX, Renderer
from enclave.wiring import Services

router = APIRouter(prefix=PREFIX, include_in_schema=False)

CustodianPage = Annotated[Actor, Depends(signed_in(Role.CUSTODIAN))]
Id = Annotated[int, PathParam(ge=1, le=MAX_INT)]

#: GOV.UK tag colour and label of each request state, decision and project state.
REQUEST_TAGS = {
    RequestState.DRAFT: ("grey", "Draft"),
    RequestState.SUBMITTED: ("blue", "Submitted"),
    RequestState.UNDER_REVIEW: ("light-blue", "Under review"),
    RequestState.CHANGES_REQUESTED: ("yellow", "Changes requested"),
    RequestState.APPROVED: ("green", "Approved"),
    RequestState.REJECTED: ("red", "Rejected"),
    RequestState.WITHDRAWN: ("grey", "Withdrawn"),
}
DECISION_TAGS = {
    Decision.PENDING: ("grey", "Pending"),
    Decision.APPROVED: ("green", "Approved"),
    Decision.REJECTED: ("red", "Rejected"),
    Decision.CHANGES_REQUESTED: ("yellow", "Changes requested"),
}
PROJECT_TAGS = {
    ProjectState.ACTIVE: ("green", "Active"),
    ProjectState.SUSPENDED: ("yellow", "Suspended"),
    ProjectState.REVOKED: ("red", "Revoked"),
    ProjectState.EXPIRED: ("grey", "Expired"),
    ProjectState.CLOSED: ("grey", "Closed"),
}

#: What each legal basis means, in the words a radio button shows.
LEGAL_BASES = {
    LegalBasis.PUBLIC_TASK_RESEARCH: (
        "Public task, for research (UK GDPR 6(1)(e) and 9(2)(j))",
        "A public body's research, with safeguards.",
    ),
    LegalBasis.LEGITIMATE_INTEREST_RESEARCH: (
        "Legitimate interests, for research (UK GDPR 6(1)(f) and 9(2)(j))",
        "Research by a body that is not a public authority, with safeguards.",
    ),
    LegalBasis.CONSENT: ("Explicit consent (UK GDPR 6(1)(a) and 9(2)(a))", ""),
    LegalBasis.STATUTORY: ("A statutory gateway", "A law that allows this use of the data."),
}

#: The messages a page shows after a change: fixed sentences, never text from the request.
DONE = {
    "approved": "You approved your part of this request.",
    "rejected": "You rejected this request. The applicant has been told your reasons.",
    "changes_requested": "You asked for changes. The request has gone back to the applicant.",
    "suspended": "The project was suspended.",
    "reinstated": "The project was reinstated.",
    "revoked": "The project was revoked.",
}

STALE = "This request changed while you were deciding: read it again, then decide"


@dataclass(frozen=True)
class Action:
    """A change a custodian can make to a project, and what it means for its members."""

    name: str
    target: ProjectState
    verb: str
    done: str
    explains: tuple[str, ...]


ACTIONS = {
    "suspend": Action(
        "suspend",
        ProjectState.SUSPENDED,
        "Suspend",
        "suspended",
        (
            "Members can no longer run queries. Their workspace tokens stop working at once, and their"
            " workspaces are stopped and cannot start again until the project is reinstated.",
            "Output requests cannot be created, submitted or downloaded; withdrawing one stays possible.",
            "The public register shows the project as suspended.",
            "This can be undone: a custodian of the project's data or an admin can reinstate it.",
        ),
    ),
    "reinstate": Action(
        "reinstate",
        ProjectState.ACTIVE,
        "Reinstate",
        "reinstated",
        (
            "Members can run queries, start workspaces and request outputs again, within the project's"
            " scope, budget and end date.",
            "The public register shows the project as active.",
        ),
    ),
    "revoke": Action(
        "revoke",
        ProjectState.REVOKED,
        "Revoke",
        "revoked",
        (
            "Members lose all access to the project's data at once: no queries, workspaces or output"
            " requests, ever again.",
            "This is permanent. A revoked project cannot be reinstated; the researchers would have to"
            " apply again.",
            "The public register shows the project as revoked.",
        ),
    ),
}


def version_of(access_request: AccessRequest) -> str:
    """What the decision form was shown for: a digest of the request's state, form and decisions
    (not only its time of change, which two changes within one clock tick would share)."""
    record = json.dumps(
        [
            access_request.state.value,
            access_request.updated_at.isoformat(),
            access_request.form.model_dump(mode="json"),
            [p.as_json() for p in access_request.parts],
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(record.encode()).hexdigest()[:32]


def _user_id(actor: Actor) -> int:
    return actor.user.id if actor.user is not None else -1


def _mine(actor: Actor, request: AccessRequest) -> list[Part]:
    """The parts of the request whose dataset the actor holds."""
    return [p for p in request.parts if p.custodian_id == _user_id(actor)]


_render = Renderer(
    DONE,
    request_tags=REQUEST_TAGS,
    decision_tags=DECISION_TAGS,
    project_tags=PROJECT_TAGS,
    legal_bases=LEGAL_BASES,
)


# --- the queue ----------------------------------------------------------------------------------


#: Requests per page of the queue.
QUEUE_PAGE = 50


@router.get("/custodian/requests", response_class=HTMLResponse, name="custodian_requests")
def queue(
    request: Request,
    services: ServicesDep,
    actor: CustodianPage,
    state: Annotated[str, Query(max_length=40)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    wanted = RequestState(state) if state in set(RequestState) else None
    shown = services.access.count_requests(actor, state=wanted, deciding=True)
    pages = max(1, -(-shown // QUEUE_PAGE))
    page = min(page, pages)
    found = services.access.list_requests(
        actor,
        state=wanted,
        deciding=True,
        newest_first=True,
        offset=(page - 1) * QUEUE_PAGE,
        limit=QUEUE_PAGE,
    )
    # Only asked when nothing is shown: whether the filter hid everything or there is nothing yet.
    total = shown if wanted is None or shown else services.access.count_requests(actor, deciding=True)
    return _render(
        request,
        "requests/queue.html",
        title="Access requests",
        requests=[(r, _mine(actor, r)) for r in found],
        shown=shown,
        page=page,
        pages=pages,
        total=total,
        state=wanted.value if wanted else "",
        states=list(RequestState),
    )


# --- a request ------------------------------------------------------------------------------------


def history(access_request: AccessRequest) -> list[tuple[datetime, str]]:
    """What happened to the request, as its record shows it (the audit log is for admins)."""
    events = [(access_request.created_at, f"Created by {access_request.applicant}")]
    for part in access_request.parts:
        if part.decided_at is not None:
            label = DECISION_TAGS[part.decision][1].lower()
            events.append((part.decided_at, f"{part.dataset}: {label} by {part.decided_by}"))
    if access_request.updated_at != access_request.created_at:
        label = REQUEST_TAGS[access_request.state][1].lower()
        events.append((access_request.updated_at, f"Last changed; now {label}"))
    return sorted(events, key=lambda e: e[0], reverse=True)


def _can_decide(actor: Actor, access_request: AccessRequest, part: Part) -> bool:
    """Whether to offer the decision form (the service decides whether it is accepted)."""
    return (
        part.custodian_id == _user_id(actor)
        and part.decision is Decision.PENDING
        and access_request.state in (RequestState.SUBMITTED, RequestState.UNDER_REVIEW)
    )


@router.get("/custodian/requests/{request_id}", response_class=HTMLResponse)
def request_page(
    request: Request, request_id: Id, services: ServicesDep, actor: CustodianPage
) -> HTMLResponse:
    found = services.access.get(actor, request_id)
    wanted = {d.dataset: d for d in found.form.datasets}
    return _render(
        request,
        "requests/request.html",
        title=found.form.title,
        item=found,
        form=found.form,
        wanted=wanted,
        history=history(found),
        decidable=[p for p in found.parts if _can_decide(actor, found, p)],
        my_id=_user_id(actor),
    )


# --- the decision form --------------------------------------------------------------------------


@dataclass
class Typed:
    """What the custodian typed into the decision form, to show it again."""

    dataset: str
    decision: str = ""
    columns: list[str] | None = None
    epsilon: str = ""
    end_date: DateFields = field(default_factory=DateFields)
    min_count: str = ""
    approve_reason: str = ""
    reject_reason: str = ""
    changes_comments: str = ""
    version: str = ""


REASON_FIELDS = {
    Decision.APPROVED: "approve_reason",
    Decision.REJECTED: "reject_reason",
    Decision.CHANGES_REQUESTED: "changes_comments",
}


def _decision_page(
    request: Request,
    found: AccessRequest,
    typed: Typed,
    *,
    errors: FormErrors | None = None,
    status: int = 200,
) -> HTMLResponse:
    part = found.part(typed.dataset)
    wanted = next(d for d in found.form.datasets if d.dataset == part.dataset)
    columns = typed.columns if typed.columns is not None else list(wanted.columns)
    return _render(
        request,
        "requests/decision.html",
        title=f"Decide on {part.dataset}",
        item=found,
        part=part,
        wanted=wanted,
        typed=typed,
        ticked=set(columns),
        errors=errors or FormErrors(),
        status=status,
    )


def _first_decidable(actor: Actor, found: AccessRequest) -> str:
    parts = _mine(actor, found)
    pending = [p for p in parts if p.decision is Decision.PENDING]
    if not (pending or parts):
        # The service says who decides on which part.
        return found.parts[0].dataset if found.parts else ""
    return (pending or parts)[0].dataset


@router.get("/custodian/requests/{request_id}/decision", response_class=HTMLResponse)
def decision_form(
    request: Request,
    request_id: Id,
    services: ServicesDep,
    actor: CustodianPage,
    dataset: Annotated[str, Query(pattern=NAME_PATTERN)] | None = None,
) -> HTMLResponse:
    found = services.access.get(actor, request_id)
    typed = Typed(dataset=dataset or _first_decidable(actor, found), version=version_of(found))
    return _decision_page(request, found, typed)


def _read_decision(form: Any, found: AccessRequest) -> Typed:
    return Typed(
        dataset=text_field(form, "dataset", 100),
        decision=text_field(form, "decision", 40),
        columns=[c for c in form.getlist("columns") if isinstance(c, str)][:500],
        epsilon=text_field(form, "epsilon", 40),
        end_date=DateFields.read(form, "end_date"),
        min_count=text_field(form, "min_count", 10),
        approve_reason=text_field(form, "approve_reason"),
        reject_reason=text_field(form, "reject_reason"),
        changes_comments=text_field(form, "changes_comments"),
        version=text_field(form, "version", 64),
    )


def _error_field(message: str, decision: Decision) -> str:
    """Which field of the form a refusal is about, so the message stands beside it."""
    lowered = message.lower()
    if "column" in lowered:
        return "columns"
    if "epsilon" in lowered:
        return "epsilon"
    if "end date" in lowered:
        return "end_date"
    if "min_count" in lowered:
        return "min_count"
    if "reason" in lowered:
        return REASON_FIELDS.get(decision, "decision")
    return "decision"


@router.post("/custodian/requests/{request_id}/decision", response_class=HTMLResponse)
def decide(
    request: Request, request_id: Id, services: ServicesDep, actor: CustodianPage, form: CheckedForm
) -> Response:
    found = services.access.get(actor, request_id)
    typed = _read_decision(form, found)
    found.part(typed.dataset)  # a dataset the request does not ask for is refused, as the API does
    errors = FormErrors()
    if typed.version != version_of(found):
        errors.add("decision", STALE)
        typed.version = version_of(found)
        return _decision_page(request, found, typed, errors=errors, status=409)
    decision = Decision(typed.decision) if typed.decision in set(REASON_FIELDS) else None
    if decision is None:
        errors.add("decision", "Select whether you approve, reject or ask for changes")
        return _decision_page(request, found, typed, errors=errors, status=400)
    reason = getattr(typed, REASON_FIELDS[decision])
    columns: list[str] | None = None
    epsilon: Decimal | None = None
    end_date: date | None = None
    conditions: dict[str, Any] = {}
    if decision is Decision.APPROVED:
        wanted = next(d for d in found.form.datasets if d.dataset == typed.dataset)
        columns = typed.columns if set(typed.columns or []) != set(wanted.columns) else None
        if typed.epsilon:
            try:
                epsilon = Decimal(typed.epsilon)
            except InvalidOperation:
                epsilon = None
            if epsilon is None or not epsilon.is_finite():
                errors.add("epsilon", "Enter epsilon as a number, like 0.5")
        try:
            end_date = typed.end_date.value()
        except ValueError:
            errors.add("end_date", "Enter a real end date, like 31 12 2026")
        if typed.min_count:
            if typed.min_count.isdigit():
                conditions["min_count"] = int(typed.min_count)
            else:
                errors.add("min_count", "Enter the minimum count as a whole number, like 10")
    if errors:
        return _decision_page(request, found, typed, errors=errors, status=400)
    try:
        services.access.decide(
            actor,
            request_id,
            typed.dataset,
            decision,
            reason,
            columns=columns,
            epsilon=epsilon,
            end_date=end_date,
            conditions=conditions,
        )
    except NotFound:
        raise
    except EnclaveError as exc:
        errors.add(_error_field(exc.detail, decision), refusal_sentence(exc))
        return _decision_page(request, found, typed, errors=errors, status=400)
    return RedirectResponse(
        f"{PREFIX}/custodian/requests/{request_id}?done={decision.value}", status_code=303
    )


# --- projects on my datasets ----------------------------------------------------------------------


def _project_for(services: Services, actor: Actor, project_id: int) -> Project:
    project = services.access.project(actor, project_id)
    if project.id not in {p.id for p in services.access.custodian_projects(actor)}:
        raise NotFound(f"no project {project_id} on your datasets")
    return project


@router.get("/custodian/projects", response_class=HTMLResponse, name="custodian_projects")
def projects(request: Request, services: ServicesDep, actor: CustodianPage) -> HTMLResponse:
    today = services.access.today()
    return _render(
        request,
        "requests/projects.html",
        title="Projects on my datasets",
        projects=[(p, p.effective_state(today)) for p in services.access.custodian_projects(actor)],
    )


def _actions(state: ProjectState) -> list[Action]:
    """The actions the state machine offers a custodian from this state."""
    targets = {t.target for t in PROJECT_MACHINE.allowed_from(state.value) if Party.CUSTODIAN in t.parties}
    return [a for a in ACTIONS.values() if a.target.value in targets]


@router.get("/custodian/projects/{project_id}", response_class=HTMLResponse)
def project_page(
    request: Request, project_id: Id, services: ServicesDep, actor: CustodianPage
) -> HTMLResponse:
    project = _project_for(services, actor, project_id)
    state = project.effective_state(services.access.today())
    return _render(
        request,
        "requests/project.html",
        title=project.title,
        project=project,
        state=state,
        actions=_actions(state),
        executions=_recent_executions(services, actor, project_id),
    )


#: How many of the newest records the project page shows; the record's own page has them all.
RECENT_EXECUTIONS = 5
EXECUTIONS_PAGE = 50


def _recent_executions(services: Services, actor: Actor, project_id: int) -> list[ExecutionRecord] | None:
    """The newest records, or None where the policy keeps the record from this custodian (a member
    of the project does not oversee their own work)."""
    try:
        return services.executions.latest(actor, project_id, limit=RECENT_EXECUTIONS)
    except NotFound:
        return None


@router.get("/custodian/projects/{project_id}/executions", response_class=HTMLResponse)
def executions_page(
    request: Request,
    project_id: Id,
    services: ServicesDep,
    actor: CustodianPage,
    after: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> HTMLResponse:
    """The project's execution record, oldest first, a page at a time, with the chain's check."""
    project = _project_for(services, actor, project_id)
    records = services.executions.page(actor, project_id, after_seq=after, limit=EXECUTIONS_PAGE + 1)
    return _render(
        request,
        "requests/executions.html",
        title=f"Code run in the workspaces of project {project.id}",
        project=project,
        records=records[:EXECUTIONS_PAGE],
        next_after=records[EXECUTIONS_PAGE - 1].seq if len(records) > EXECUTIONS_PAGE else None,
        after=after,
        check=services.executions.verify(actor, project_id),
        kept_until=services.executions.kept_until(project),
    )


def _confirm_page(
    request: Request,
    project: Project,
    state: ProjectState,
    action: Action,
    *,
    reason: str = "",
    errors: FormErrors | None = None,
    status: int = 200,
) -> HTMLResponse:
    return _render(
        request,
        "requests/confirm.html",
        title=f"{action.verb} the project",
        project=project,
        state=state,
        action=action,
        reason=reason,
        errors=errors or FormErrors(),
        status=status,
    )


def _action(name: str) -> Action:
    found = ACTIONS.get(name)
    if found is None:
        raise NotFound(f"no action {name!r} on a project")
    return found


ActionName = Annotated[str, PathParam(pattern=r"^[a-z]{1,20}$")]


@router.get("/custodian/projects/{project_id}/{action}", response_class=HTMLResponse)
def confirm(
    request: Request, project_id: Id, action: ActionName, services: ServicesDep, actor: CustodianPage
) -> HTMLResponse:
    chosen = _action(action)
    project = _project_for(services, actor, project_id)
    state = project.effective_state(services.access.today())
    return _confirm_page(request, project, state, chosen)


@router.post("/custodian/projects/{project_id}/{action}", response_class=HTMLResponse)
def change_state(
    request: Request,
    project_id: Id,
    action: ActionName,
    services: ServicesDep,
    actor: CustodianPage,
    form: CheckedForm,
) -> Response:
    chosen = _action(action)
    project = _project_for(services, actor, project_id)
    reason = text_field(form, "reason")
    try:
        services.access.set_project_state(actor, project.id, chosen.target, reason)
    except NotFound:
        raise
    except EnclaveError as exc:
        errors = FormErrors()
        errors.add("reason", refusal_sentence(exc))
        state = project.effective_state(services.access.today())
        return _confirm_page(request, project, state, chosen, reason=reason, errors=errors, status=400)
    return RedirectResponse(f"{PREFIX}/custodian/projects/{project.id}?done={chosen.done}", status_code=303)
