"""The execution record of workspaces: written by a workspace's server, read by custodians and admins.

``POST /workspaces/executions`` is the workspace server's alone (its token and its key: code in a
notebook holds the token, never the key); it answers before the server hands the code on, and a
refused record means the code does not run. The reads follow ``check_view_executions``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from enclave.api.deps import CurrentActor, ServicesDep, WorkspaceServerActor
from enclave.api.schemas import AuditVerification

router = APIRouter(tags=["workspaces"])
ProjectId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class Execution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kernel_id: str = Field(min_length=1, max_length=200, description="the kernel, or `terminal <name>`")
    kind: Literal["cell", "terminal"]
    code: str = Field(max_length=1_000_000, description="the cell's code, or the terminal line as typed")


class Recorded(BaseModel):
    seq: int
    hash: str


class ExecutionView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    username: str
    kernel_id: str
    kind: str
    code: str
    truncated: bool
    prev_hash: str
    hash: str


@router.post(
    "/workspaces/executions",
    status_code=status.HTTP_201_CREATED,
    summary="Record code about to run in a workspace (the workspace's server only: its token and key)",
)
def record_execution(body: Execution, actor: WorkspaceServerActor, services: ServicesDep) -> Recorded:
    record = services.executions.record(actor, body.kernel_id, body.kind, body.code)
    return Recorded(seq=record.seq, hash=record.hash)


@router.get(
    "/projects/{project_id}/executions",
    summary="The code run in a project's workspaces, oldest first (its datasets' custodians, admins)",
)
def list_executions(
    project_id: ProjectId,
    actor: CurrentActor,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ExecutionView]:
    records = services.executions.page(actor, project_id, after_seq=after, limit=limit)
    return [ExecutionView.model_validate(r) for r in records]


@router.get(
    "/projects/{project_id}/executions/verify",
    summary="Check the project's execution record, link by link, against the head the audit log pins",
)
def verify_executions(project_id: ProjectId, actor: CurrentActor, services: ServicesDep) -> AuditVerification:
    return AuditVerification.of(services.executions.verify(actor, project_id))
