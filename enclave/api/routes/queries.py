from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from enclave.api.deps import ClientAddress, ServicesDep, requires
from enclave.api.schemas import MAX_INT
from enclave.domain.identity.accounts import Actor, Role
from enclave.domain.queries.cohorts import Definition
from enclave.domain.queries.plans import MAX_DELTA, QueryPlan, Release
from enclave.dp.dummy import MAX_DUMMY_ROWS
from enclave.dp.sql import MAX_SQL_CHARS, parse_sql

router = APIRouter(prefix="/projects/{project_id}", tags=["queries"])

Member = Annotated[Actor, Depends(requires(Role.RESEARCHER, workspace=True))]
#: A member running a DP query: inside the workspace, or outside it where the deployment allows.
Querier = Annotated[Actor, Depends(requires(Role.RESEARCHER, workspace=True, runs_queries=True))]
ProjectId = Annotated[int, PathParam(ge=1, le=MAX_INT)]


def release_view(release: Release, *, recorded: bool) -> dict[str, Any]:
    return {
        "id": release.id,
        "recorded": recorded,
        "dataset": release.dataset,
        "dataset_version": release.dataset_version,
        "plan": release.plan.model_dump(mode="json"),
        "epsilon": str(release.epsilon),
        "delta": str(release.delta),
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
    project_id: ProjectId,
    plan: QueryPlan,
    actor: Querier,
    services: ServicesDep,
    response: Response,
    client: ClientAddress,
) -> dict[str, Any]:
    release, recorded = services.queries.run(actor, project_id, plan, client=client)
    if recorded:
        response.status_code = status.HTTP_200_OK
    return release_view(release, recorded=recorded)


class SqlQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, description="one SELECT of the DP-SQL subset")
    epsilon: Decimal = Field(gt=0, le=10, max_digits=12, decimal_places=6)
    delta: Decimal = Field(
        Decimal(0), ge=0, le=MAX_DELTA, decimal_places=15, description="only for a DP key release"
    )


@router.post("/queries/sql/preview", summary="Cost and accuracy of a DP-SQL query, without spending")
def sql_preview(
    project_id: ProjectId, body: SqlQuery, actor: Member, services: ServicesDep
) -> dict[str, Any]:
    plan = parse_sql(body.sql, body.epsilon, body.delta)
    return {"plan": plan.model_dump(mode="json"), **services.queries.preview(actor, project_id, plan)}


@router.post(
    "/queries/sql",
    summary="Run a DP-SQL query: parsed into the same plan as /queries, charged the same way",
    status_code=status.HTTP_201_CREATED,
)
def sql_run(
    project_id: ProjectId,
    body: SqlQuery,
    actor: Querier,
    services: ServicesDep,
    response: Response,
    client: ClientAddress,
) -> dict[str, Any]:
    plan = parse_sql(body.sql, body.epsilon, body.delta)
    release, recorded = services.queries.run(actor, project_id, plan, client=client)
    if recorded:
        response.status_code = status.HTTP_200_OK
    return release_view(release, recorded=recorded)


@router.get(
    "/dummy/{dataset}",
    summary="Synthetic rows of a dataset in scope, from the catalog alone (free; members)",
)
def dummy(
    project_id: ProjectId,
    dataset: Annotated[str, PathParam(pattern=r"^[a-z][a-z0-9_]{0,62}$")],
    actor: Member,
    services: ServicesDep,
    n: Annotated[int, Query(ge=1, le=MAX_DUMMY_ROWS)] = 100,
    seed: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,
) -> dict[str, Any]:
    frame = services.queries.dummy(actor, project_id, dataset, n, seed=seed)
    return {"dataset": dataset, **_frame_body(frame)}


class CohortDummy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cohort: Definition
    n: int = Field(100, ge=1, le=MAX_DUMMY_ROWS, description="rows (one per dummy person)")
    seed: int | None = Field(None, ge=0, le=MAX_INT)


def _frame_body(frame: Any) -> dict[str, Any]:
    return {
        "columns": list(frame.columns),
        "rows": json.loads(frame.to_json(orient="values", date_format="iso")),
        "note": "dummy data: generated from the catalog, never from real records",
    }


@router.post(
    "/cohorts/dummy",
    summary="Synthetic rows of a cohort's per-person frame, from the definition and catalog alone (free)",
)
def cohort_dummy(
    project_id: ProjectId, body: CohortDummy, actor: Member, services: ServicesDep
) -> dict[str, Any]:
    frame = services.queries.dummy_cohort(actor, project_id, body.cohort, body.n, seed=body.seed)
    return {"cohort": body.cohort.tables(), **_frame_body(frame)}


@router.post(
    "/cohorts/schema",
    summary="The columns of a cohort's per-person frame: types, public domains and bounds (free)",
)
def cohort_schema(
    project_id: ProjectId, cohort: Definition, actor: Member, services: ServicesDep
) -> list[dict[str, Any]]:
    return services.queries.cohort_schema(actor, project_id, cohort)


@router.get("/releases", summary="The project's releases, with plans, noise and values (members)")
def releases(project_id: ProjectId, actor: Member, services: ServicesDep) -> list[dict[str, Any]]:
    return [release_view(r, recorded=True) for r in services.queries.releases(actor, project_id)]
