"""What notebook workspaces report to the enclave: refused downloads and exports.

Two ways in, neither open to code in a notebook: the workspace server's guard reports what it
refused or removed with the workspace's token *and* the server's own key, which the kernel never
holds (``WorkspaceServerActor``); the proxy routes every workspace's export paths to
``/workspaces/guard/{secret}/...``, which refuses them outside the sandbox and records who tried.
The secret (derived from the key store) is known only to the hub, so nobody else can make this
route write to the audit log. JupyterLab's fetch of the exporter list at every page load is
answered with no exporters and is not recorded: it is no attempt.
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from enclave.api.deps import ServicesDep, WorkspaceServerActor, requires
from enclave.domain.errors import NotFound, PermissionDenied
from enclave.domain.identity.accounts import Actor

router = APIRouter(prefix="/workspaces", tags=["workspaces"])

REFUSAL = "downloads and exports are disabled in workspaces: request outputs through the airlock"
_WORKSPACE_PATH = re.compile(r"^user/([^/]{1,255})/p([1-9][0-9]{0,9})(/.*)?$")
_EXPORTER_LIST = re.compile(r"/api/nbconvert/?$")

WorkspaceActor = Annotated[Actor, Depends(requires(workspace=True))]


class Refusal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=1000)
    reason: str = Field(min_length=1, max_length=200)


@router.post(
    "/refusals",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Record a download or export a workspace's server refused (its token and its server key)",
)
def record_refusal(body: Refusal, actor: WorkspaceServerActor, services: ServicesDep) -> None:
    if actor.project_scope is None or actor.user is None:
        raise PermissionDenied("only a workspace reports its refusals; this needs its workspace token")
    services.workspaces.record_refusal(actor.user.username, actor.project_scope, body.path, body.reason)


def _guard(secret: str, path: str, request: Request, services: ServicesDep) -> JSONResponse:
    if not hmac.compare_digest(secret.encode(), services.keys.workspace_guard_secret().encode()):
        raise NotFound("not found")
    if request.method == "GET" and _EXPORTER_LIST.search(path):
        return JSONResponse({})
    match = _WORKSPACE_PATH.match(path)
    if match is not None:
        services.workspaces.record_refusal(
            match.group(1), int(match.group(2)), "/" + path, f"{request.method} export route"
        )
    raise PermissionDenied(REFUSAL)


@router.get("/guard/{secret}/{path:path}", summary="The proxy's deny target for workspace exports")
def guard_get(secret: str, path: str, request: Request, services: ServicesDep) -> JSONResponse:
    return _guard(secret, path, request, services)


@router.post("/guard/{secret}/{path:path}", summary="The proxy's deny target for workspace exports")
def guard_post(secret: str, path: str, request: Request, services: ServicesDep) -> JSONResponse:
    return _guard(secret, path, request, services)
