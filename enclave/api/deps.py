"""Dependencies: services, the bearer token, and role checks.

Every route declares who may call it with one of :func:`requires` (roles), :data:`Authenticated`
(any valid personal token) or :data:`Public`; ``tests/integration/test_api_access.py`` walks every
route and checks it refuses callers without what it declares.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from enclave.domain.errors import AuthenticationFailed, PermissionDenied
from enclave.domain.identity.accounts import Actor, Role
from enclave.wiring import Services

bearer = HTTPBearer(
    auto_error=False, description="an Enclave API token (`enclave users token`, or POST /auth/login)"
)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def authenticate(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationFailed("this endpoint needs an API token: send 'Authorization: Bearer <token>'")
    actor = services.identity.authenticate(credentials.credentials)
    request.state.actor = actor
    return actor


class Access:
    """Who may call a route. An instance is a FastAPI dependency that returns the actor."""

    def __init__(self, *roles: Role, workspace: bool = False) -> None:
        self.roles = frozenset(roles)
        self.workspace = workspace

    def describe(self) -> str:
        if not self.roles:
            return "any authenticated user"
        return "role " + " or ".join(sorted(self.roles))

    def __call__(
        self, request: Request, services: ServicesDep, actor: Annotated[Actor, Depends(authenticate)]
    ) -> Actor:
        what = f"{request.method} {request.url.path}"
        if actor.project_scope is not None and not self.workspace:
            services.identity.record_access_denied(actor, what, "workspace token on a non-workspace route")
            raise PermissionDenied(
                "a workspace token works only for its project's queries and outputs;"
                " use your personal token for this"
            )
        if self.roles and not any(actor.has_role(r) for r in self.roles):
            services.identity.record_access_denied(actor, what, f"needs {self.describe()}")
            raise PermissionDenied(f"this needs the {' or '.join(sorted(self.roles))} role")
        return actor


def requires(*roles: Role, workspace: bool = False) -> Access:
    return Access(*roles, workspace=workspace)


CurrentActor = Annotated[Actor, Depends(Access())]
AdminActor = Annotated[Actor, Depends(requires(Role.ADMIN))]
