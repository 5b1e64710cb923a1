from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from enclave.api.deps import ServicesDep, requires
from enclave.api.schemas import MAX_INT, NAME_PATTERN, Text200
from enclave.domain.access.form import AccessRequestForm
from enclave.domain.access.requests import AccessRequest, Decision, Project
from enclave.domain.access.states import ProjectState, RequestState
from enclave.domain.identity.accounts import Actor, Role

router = APIRouter(prefix="/requests", tags=["access requests"])
projects_router = APIRouter(prefix="/projects", tags=["projects"])
register_router = APIRouter(tags=["projects"])

AnyUser = Annotated[Actor, Depends(requires())]
Researcher = Annotated[Actor, Depends(requires(Role.RESEARCHER))]
Custodian = Annotated[Actor, Depends(requires(Role.CUSTODIAN))]
Id = Annotated[int, PathParam(ge=1, le=MAX_INT)]
Reason = Annotated[str, Field(max_length=2000)]


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: Annotated[str, Field(pattern=NAME_PATTERN)]
    decision: Decision
    reason: Reason
    columns: list[Annotated[str, Field(pattern=NAME_PATTERN)]] | None = Field(
        None, max_length=500, description="approve only these columns (a subset of those asked)"
    )
    epsilon: Decimal | None = Field(None, gt=0, le=100, max_digits=12, decimal_places=6)
    end_date: date | None = None
    min_count: int | None = Field(None, ge=1, le=1000, description="a stricter small-count threshold")
    note: Text200 | None = None


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason = ""


class ProjectStateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: ProjectState
    reason: Reason


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_epsilon: Decimal = Field(gt=0, le=1000, max_digits=12, decimal_places=6)


def request_view(request: AccessRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "state": request.state.value,
        "applicant": request.applicant,
        "project_id": request.project_id,
        "amends_project_id": request.amends_project_id,
        "created_at": request.created_at.isoformat(),
        "updated_at": request.updated_at.isoformat(),
        "form": request.form.model_dump(mode="json"),
        "parts": [p.as_json() for p in request.parts],
    }


def project_view(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "request_id": project.request_id,
        "title": project.title,
        "organisation": project.organisation,
        "state": project.state.value,
        "start_date": project.start_date.isoformat(),
        "end_date": project.end_date.isoformat(),
        "epsilon": str(project.epsilon),
        "delta": str(project.delta) if project.delta is not None else None,
        "scope": project.scope,
        "conditions": project.conditions,
        "members": project.members,
    }


@router.post(
    "",
    summary="Create an access request (researcher); submit at once with ?submit=true",
    status_code=status.HTTP_201_CREATED,
)
def create_request(
    form: AccessRequestForm, actor: Researcher, services: ServicesDep, submit: bool = False
) -> dict[str, Any]:
    return request_view(services.access.create(actor, form, submit=submit))


@router.get(
    "",
    summary="Requests you can see (your own; custodians: those touching your datasets)",
    description=(
        "Oldest first unless `newest_first`; `deciding=true` keeps only the requests with a part on one"
        " of your datasets (the custodian's queue). Without `limit`, every request; the"
        " `X-Total-Count` header says how many match, whatever the page."
    ),
)
def list_requests(
    actor: AnyUser,
    services: ServicesDep,
    response: Response,
    state: RequestState | None = None,
    deciding: bool = False,
    newest_first: bool = False,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> list[dict[str, Any]]:
    found = services.access.list_requests(
        actor, state=state, deciding=deciding, newest_first=newest_first, offset=offset, limit=limit
    )
    total = len(found) if limit is None and offset == 0 else None
    if total is None:
        total = services.access.count_requests(actor, state=state, deciding=deciding)
    response.headers["X-Total-Count"] = str(total)
    return [request_view(r) for r in found]


@router.get("/{request_id}", summary="One request with each dataset's decision")
def get_request(request_id: Id, actor: AnyUser, services: ServicesDep) -> dict[str, Any]:
    return request_view(services.access.get(actor, request_id))


@router.put("/{request_id}", summary="Edit a draft or a request sent back for changes (applicant)")
def edit_request(
    request_id: Id, form: AccessRequestForm, actor: Researcher, services: ServicesDep
) -> dict[str, Any]:
    return request_view(services.access.edit(actor, request_id, form))


@router.post("/{request_id}/submit", summary="Submit, or resubmit after changes (applicant)")
def submit_request(request_id: Id, actor: Researcher, services: ServicesDep) -> dict[str, Any]:
    return request_view(services.access.submit(actor, request_id))


@router.post("/{request_id}/withdraw", summary="Withdraw (applicant)")
def withdraw_request(
    request_id: Id,
    actor: Researcher,
    services: ServicesDep,
    body: Annotated[ReasonBody, Body()] = ReasonBody(),
) -> dict[str, Any]:
    return request_view(services.access.withdraw(actor, request_id, body.reason))


@router.post("/{request_id}/review", summary="Start reviewing a submitted request (custodian)")
def start_review(request_id: Id, actor: Custodian, services: ServicesDep) -> dict[str, Any]:
    return request_view(services.access.start_review(actor, request_id))


@router.post("/{request_id}/decisions", summary="Decide on your dataset's part (custodian)")
def decide(request_id: Id, body: DecisionBody, actor: Custodian, services: ServicesDep) -> dict[str, Any]:
    conditions: dict[str, Any] = {}
    if body.min_count is not None:
        conditions["min_count"] = body.min_count
    if body.note:
        conditions["note"] = body.note
    return request_view(
        services.access.decide(
            actor,
            request_id,
            body.dataset,
            body.decision,
            body.reason,
            columns=body.columns,
            epsilon=body.epsilon,
            end_date=body.end_date,
            conditions=conditions,
        )
    )


@projects_router.get("", summary="Projects you are a member, custodian or admin of")
def list_projects(actor: AnyUser, services: ServicesDep) -> list[dict[str, Any]]:
    return [project_view(p) for p in services.access.projects(actor)]


@projects_router.get(
    "/{project_id}", summary="One project: scope, budget, members, conditions (workspace too)"
)
def get_project(
    project_id: Id, actor: Annotated[Actor, Depends(requires(workspace=True))], services: ServicesDep
) -> dict[str, Any]:
    return project_view(services.access.project(actor, project_id))


@projects_router.post("/{project_id}/state", summary="Suspend, reinstate, revoke or close a project")
def set_project_state(
    project_id: Id, body: ProjectStateBody, actor: AnyUser, services: ServicesDep
) -> dict[str, Any]:
    return project_view(services.access.set_project_state(actor, project_id, body.state, body.reason))


@projects_router.post(
    "/{project_id}/amendments",
    summary="Ask to amend a project: members, end date, budget, scope (its lead); custodians decide",
    status_code=status.HTTP_201_CREATED,
)
def amend_project(
    project_id: Id, form: AccessRequestForm, actor: Researcher, services: ServicesDep
) -> dict[str, Any]:
    return request_view(services.access.amend(actor, project_id, form))


WorkspaceOrUser = Annotated[Actor, Depends(requires(workspace=True))]


@projects_router.get(
    "/{project_id}/budget", summary="The project's privacy budget: granted, spent, reserved, left"
)
def get_budget(project_id: Id, actor: WorkspaceOrUser, services: ServicesDep) -> dict[str, Any]:
    account = services.budgets.account(actor, project_id)
    return {
        "project_id": project_id,
        "granted": {"epsilon": str(account.granted.epsilon), "delta": str(account.granted.delta)},
        "spent": {"epsilon": str(account.spent.epsilon), "delta": str(account.spent.delta)},
        "reserved": {"epsilon": str(account.reserved.epsilon), "delta": str(account.reserved.delta)},
        "remaining": {"epsilon": str(account.remaining.epsilon), "delta": str(account.remaining.delta)},
    }


@register_router.get("/register", summary="The public register of approved projects (no login)")
def public_register(
    services: ServicesDep,
    response: Response,
    status_filter: Annotated[ProjectState | None, Query(alias="status")] = None,
    newest_first: bool = False,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> list[dict[str, Any]]:
    if status_filter is None:
        response.headers["X-Total-Count"] = str(services.access.register_size())
        return services.access.register(newest_first=newest_first, offset=offset, limit=limit)
    # A project's status counts its end date as of today, so the filter is applied here.
    entries = services.access.register(newest_first=newest_first)
    matching = [e for e in entries if e["status"] == status_filter.value]
    response.headers["X-Total-Count"] = str(len(matching))
    return matching[offset : offset + limit if limit is not None else None]


@register_router.put(
    "/catalog/datasets/{name}/policy",
    summary="Cap the epsilon a request may ask of your dataset (custodian)",
    status_code=status.HTTP_204_NO_CONTENT,
)
def set_policy(
    name: Annotated[str, PathParam(pattern=NAME_PATTERN)],
    body: PolicyBody,
    actor: Custodian,
    services: ServicesDep,
) -> None:
    services.access.set_dataset_policy(actor, name, body.max_epsilon)
