"""The FastAPI application factory."""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from enclave import __version__
from enclave.api.deps import Access
from enclave.api.errors import install_error_handlers
from enclave.api.routes import (
    access,
    audit,
    auth,
    catalog,
    executions,
    health,
    outputs,
    queries,
    tokens,
    users,
    workspaces,
)
from enclave.domain.policy import Place
from enclave.portal.app import mount_portal
from enclave.wiring import Services

ROUTERS = (
    health.router,
    auth.router,
    auth.me_router,
    users.router,
    tokens.router,
    audit.router,
    catalog.router,
    catalog.optouts_router,
    access.router,
    access.projects_router,
    access.register_router,
    queries.router,
    workspaces.router,
    executions.router,
    outputs.router,
)

DESCRIPTION = """\
The Enclave API. Authenticate with `Authorization: Bearer <token>`: a session token from
`POST /auth/login`, or a personal token from `enclave users token` / `POST /users/{username}/tokens`.
Every 4xx answer has the body `{"error": code, "detail": sentence}`.
"""


# Pydantic names a schema after its class, and after its module path as well when two classes share
# a name (the access and the airlock ``Decision``). Those names are part of the published document,
# which clients generate code from, so they stay as first published whatever the code's layout.
PUBLISHED_SCHEMA_NAMES = {
    "enclave__domain__access__requests__Decision": "enclave__domain__access__Decision",
    "enclave__domain__outputs__review__Decision": "enclave__domain__airlock__Decision",
}


def _published_names(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the schema names of :data:`PUBLISHED_SCHEMA_NAMES` and their references."""
    schemas = document.get("components", {}).get("schemas", {})
    for current, published in PUBLISHED_SCHEMA_NAMES.items():
        if current in schemas:
            schemas[published] = schemas.pop(current)

    def rename(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.rpartition("/")[2] in PUBLISHED_SCHEMA_NAMES:
                node["$ref"] = "#/components/schemas/" + PUBLISHED_SCHEMA_NAMES[ref.rpartition("/")[2]]
            for value in node.values():
                rename(value)
        elif isinstance(node, list):
            for value in node:
                rename(value)
        return node

    document["components"]["schemas"] = dict(sorted(schemas.items()))
    return rename(document)  # type: ignore[no-any-return]


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="Enclave",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = services
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    mount_portal(app, services)
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _published_names(build_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.place = Place.NETWORK
    return app


def _accesses(dependant: Dependant) -> list[Access]:
    found = []
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Access):
            found.append(dependency.call)
        found += _accesses(dependency)
    return found


def workspace_route(route: BaseRoute) -> bool:
    """Whether the workspace socket serves ``route``: health, and the routes a workspace token may
    call, as each declares (``requires(..., workspace=True)``). Everything else (logins, tokens,
    accounts, other projects, released files, the portal, the documentation) is not there at all."""
    if not isinstance(route, APIRoute):
        return False
    if route.path == "/healthz":
        return True
    accesses = _accesses(route.dependant)
    return bool(accesses) and all(access.workspace for access in accesses)


def create_workspace_app(services: Services) -> FastAPI:
    """The API as the Unix socket bound into every workspace serves it: the workspace's routes only,
    for workspace tokens only (``enclave.domain.policy.check_place``)."""
    app = FastAPI(
        title="Enclave (workspace socket)",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    app.state.place = Place.WORKSPACE
    install_error_handlers(app)
    served = APIRouter()
    served.routes.extend(route for router in ROUTERS for route in router.routes if workspace_route(route))
    app.include_router(served)
    return app


def server_config(app: FastAPI, **options: Any) -> uvicorn.Config:
    """How uvicorn serves an Enclave application. Its own reading of ``X-Forwarded-For`` is off
    (it would trust any loopback peer, so a local client could choose the address the audit log
    records); the address comes from ``enclave.api.deps.client_address``, which trusts only
    ``ENCLAVE_TRUSTED_PROXIES``. No access log: the audit log records what matters."""
    return uvicorn.Config(app, proxy_headers=False, access_log=False, **options)
