"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from enclave import __version__
from enclave.api.errors import install_error_handlers
from enclave.api.routes import (
    access,
    audit,
    auth,
    catalog,
    health,
    outputs,
    queries,
    tokens,
    users,
    workspaces,
)
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
    outputs.router,
)

DESCRIPTION = """\
The Enclave API. Authenticate with `Authorization: Bearer <token>`: a session token from
`POST /auth/login`, or a personal token from `enclave users token` / `POST /users/{username}/tokens`.
Every 4xx answer has the body `{"error": code, "detail": sentence}`.
"""


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
    return app
