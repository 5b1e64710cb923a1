from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status
from fastapi import Path as PathParam

from enclave.api.deps import ServicesDep, requires
from enclave.api.schemas import MAX_INT
from enclave.domain.identity import Actor, Role
from enclave.domain.queries import QueryPlan, Release

router = APIRouter(prefix="/projects/{project_id}", tags=["queries"])

Member = Annotated[Actor, Depends(requires(Role.RESEARCHER, workspace=True))]
ProjectId = Annotated[int, PathParam(ge=1, le=MAX_INT)]


def release_view(release: Release, *, recorded: bool) -> dict[str, Any]:
    return {
        "id": release.id,
        "recorded": recorded,
        "dataset": release.dataset,
        "dataset_version": release.dataset_version,
        "plan": release.plan.model_dump(mode="json"),
        "epsilon": str(release.epsilon),
        "mechanism": release.mechanism,
        "noise_scales": release.noise_scales,
        "accuracy": release.accuracy,
        "values": release.values,
        "author": release.author,
        "created_at": release.created_at.isoformat(),
    }


@router.post("/queries/preview", summary="Cost and accuracy of a plan, without spending (members)")
def preview(project_id: ProjectId, plan: QueryPlan, actor: Member, services: ServicesDep) -> dict[str, Any]:
    return services.queries.preview(actor, project_id, plan)


@router.post(
    "/queries",
    summary="Run a plan: a DP release charged to the project's budget (an identical plan is free)",
    status_code=status.HTTP_201_CREATED,
)
def run(
    project_id: ProjectId, plan: QueryPlan, actor: Member, services: ServicesDep, response: Response
) -> dict[str, Any]:
    release, recorded = services.queries.run(actor, project_id, plan)
    if recorded:
        response.status_code = status.HTTP_200_OK
    return release_view(release, recorded=recorded)


@router.get("/releases", summary="The project's releases, with plans, noise and values (members)")
def releases(project_id: ProjectId, actor: Member, services: ServicesDep) -> list[dict[str, Any]]:
    return [release_view(r, recorded=True) for r in services.queries.releases(actor, project_id)]
