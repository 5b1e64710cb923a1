"""Dependencies: services, the bearer token, and role checks.

Every route declares who may call it with one of :func:`requires` (roles), :data:`Authenticated`
(any valid personal token) or :data:`Public`; ``tests/integration/test_api_access.py`` walks every
route and checks it refuses callers without what it declares.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from enclave.domain.errors import AuthenticationFailed, PermissionDenied
from enclave.domain.identity.accounts import Actor, Role
from enclave.domain.policy import Place, check_place
from enclave.wiring import Services

bearer = HTTPBearer(
    auto_error=False, description="an Enclave API token (`enclave users token`, or POST /auth/login)"
)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def client_address(request: Request) -> str | None:
    """The caller's address, for the audit log (none over the Unix socket). Behind a reverse proxy
    listed in ``ENCLAVE_TRUSTED_PROXIES`` it is the last address of ``X-Forwarded-For`` that is not
    itself a trusted proxy (the addresses before it are the client's own claim); from anyone else
    the header is ignored, so a client cannot choose the address it is recorded under."""
    peer = request.client.host if request.client is not None and request.client.host else None
    services: Services = request.app.state.services
    trusted = services.settings.trusted_proxy_networks
    if peer is None or not trusted or not _within(peer, trusted):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop if _is_address(hop) else peer
    return peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _within(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


ClientAddress = Annotated[str | None, Depends(client_address)]


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


def place_of(request: Request) -> Place:
    """Which listener the request came in on: the app built for the workspace socket says so."""
    place: Place = getattr(request.app.state, "place", Place.NETWORK)
    return place


class Access:
    """Who may call a route, and from where. An instance is a FastAPI dependency that returns the
    actor. ``workspace``: a workspace token may call it (the workspace socket serves exactly those
    routes); ``runs_queries``: it runs a DP query, which a personal token over the network may do
    only where ``queries_outside_workspace`` allows."""

    def __init__(self, *roles: Role, workspace: bool = False, runs_queries: bool = False) -> None:
        self.roles = frozenset(roles)
        self.workspace = workspace
        self.runs_queries = runs_queries

    def describe(self) -> str:
        if not self.roles:
            return "any authenticated user"
        return "role " + " or ".join(sorted(self.roles))

    def __call__(
        self, request: Request, services: ServicesDep, actor: Annotated[Actor, Depends(authenticate)]
    ) -> Actor:
        what = f"{request.method} {request.url.path}"
        place = place_of(request)
        try:
            check_place(
                actor,
                place,
                runs_queries=self.runs_queries,
                queries_outside_workspace=services.settings.allows_queries_outside_workspace,
            )
        except PermissionDenied as exc:
            services.identity.record_access_denied(actor, what, f"{place} listener: {exc.detail}")
            raise
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


def requires(*roles: Role, workspace: bool = False, runs_queries: bool = False) -> Access:
    return Access(*roles, workspace=workspace, runs_queries=runs_queries)


CurrentActor = Annotated[Actor, Depends(Access())]
AdminActor = Annotated[Actor, Depends(requires(Role.ADMIN))]


#: The header a workspace's Jupyter server sends its own credential in (see ``Keys.workspace_server_key``).
SERVER_KEY_HEADER = "X-Enclave-Server-Key"


def workspace_server(
    request: Request,
    services: ServicesDep,
    actor: Annotated[Actor, Depends(requires(workspace=True))],
    server_key: Annotated[str | None, Header(alias=SERVER_KEY_HEADER, include_in_schema=False)] = None,
) -> Actor:
    """A workspace's Jupyter server itself, not code in its kernels: the workspace token and the
    server's key derived from that token. A notebook holds the token but never the key."""
    if actor.token is None or actor.project_scope is None:
        raise PermissionDenied("only a workspace's server reports this; it needs the workspace token")
    expected = services.keys.workspace_server_key(actor.token.id)
    if server_key is None or not hmac.compare_digest(server_key.encode(), expected.encode()):
        services.identity.record_access_denied(
            actor, f"{request.method} {request.url.path}", "not the workspace's server (no server key)"
        )
        raise PermissionDenied(
            "only the workspace's server reports this: code in a notebook cannot write these records"
        )
    return actor


WorkspaceServerActor = Annotated[Actor, Depends(workspace_server)]
