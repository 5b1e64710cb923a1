"""No route is reachable without the access it declares: walk every route of the real app."""

from __future__ import annotations

import re

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from enclave.api.app import ROUTERS, create_app
from enclave.api.deps import Access
from enclave.domain.identity.accounts import Role, TokenKind
from enclave.wiring import Services
from tests.conftest import OPERATOR, Account, LiveServer, make_account
from tests.factories import make_project

PUBLIC = {
    ("GET", "/healthz"),
    ("POST", "/auth/login"),
    ("GET", "/catalog/dcat"),
    ("GET", "/register"),
    # the proxy's deny target: answers 404 without the hub's secret, 403 with it
    ("GET", "/workspaces/guard/{secret}/{path}"),
    ("POST", "/workspaces/guard/{secret}/{path}"),
}
# The access policy, written out: (method, path) -> roles needed (empty: any authenticated user,
# with object-level checks in the service). A route missing here, or declaring something else, fails.
POLICY: dict[tuple[str, str], frozenset[Role]] = {
    ("POST", "/auth/logout"): frozenset(),
    ("GET", "/me"): frozenset(),
    ("GET", "/users"): frozenset({Role.ADMIN}),
    ("POST", "/users"): frozenset({Role.ADMIN}),
    ("GET", "/users/{username}"): frozenset(),
    ("POST", "/users/{username}/roles"): frozenset({Role.ADMIN}),
    ("DELETE", "/users/{username}/roles/{role}"): frozenset({Role.ADMIN}),
    ("PUT", "/users/{username}/accreditation"): frozenset({Role.ADMIN}),
    ("PUT", "/users/{username}/active"): frozenset({Role.ADMIN}),
    ("PUT", "/users/{username}/password"): frozenset(),
    ("GET", "/users/{username}/tokens"): frozenset(),
    ("POST", "/users/{username}/tokens"): frozenset(),
    ("DELETE", "/tokens/{token_id}"): frozenset(),
    ("GET", "/audit/events"): frozenset({Role.ADMIN}),
    ("GET", "/audit/verify"): frozenset({Role.ADMIN}),
    ("GET", "/catalog/datasets"): frozenset(),
    ("GET", "/catalog/datasets/{name}"): frozenset(),
    ("GET", "/catalog/datasets/{name}/versions"): frozenset({Role.CUSTODIAN, Role.ADMIN}),
    ("POST", "/catalog/ingest"): frozenset({Role.CUSTODIAN}),
    ("GET", "/catalog/linkage"): frozenset({Role.CUSTODIAN, Role.ADMIN}),
    ("PUT", "/optouts"): frozenset({Role.CUSTODIAN, Role.ADMIN}),
    ("POST", "/requests"): frozenset({Role.RESEARCHER}),
    ("GET", "/requests"): frozenset(),
    ("GET", "/requests/{request_id}"): frozenset(),
    ("PUT", "/requests/{request_id}"): frozenset({Role.RESEARCHER}),
    ("POST", "/requests/{request_id}/submit"): frozenset({Role.RESEARCHER}),
    ("POST", "/requests/{request_id}/withdraw"): frozenset({Role.RESEARCHER}),
    ("POST", "/requests/{request_id}/review"): frozenset({Role.CUSTODIAN}),
    ("POST", "/requests/{request_id}/decisions"): frozenset({Role.CUSTODIAN}),
    ("GET", "/projects"): frozenset(),
    ("GET", "/projects/{project_id}"): frozenset(),
    ("POST", "/projects/{project_id}/state"): frozenset(),
    ("POST", "/projects/{project_id}/amendments"): frozenset({Role.RESEARCHER}),
    ("GET", "/projects/{project_id}/budget"): frozenset(),
    ("POST", "/projects/{project_id}/queries/preview"): frozenset({Role.RESEARCHER}),
    ("POST", "/projects/{project_id}/queries"): frozenset({Role.RESEARCHER}),
    ("GET", "/projects/{project_id}/releases"): frozenset({Role.RESEARCHER}),
    ("POST", "/projects/{project_id}/queries/sql"): frozenset({Role.RESEARCHER}),
    ("POST", "/projects/{project_id}/queries/sql/preview"): frozenset({Role.RESEARCHER}),
    ("GET", "/projects/{project_id}/dummy/{dataset}"): frozenset({Role.RESEARCHER}),
    ("POST", "/projects/{project_id}/cohorts/dummy"): frozenset({Role.RESEARCHER}),
    ("POST", "/projects/{project_id}/cohorts/schema"): frozenset({Role.RESEARCHER}),
    ("PUT", "/catalog/datasets/{name}/policy"): frozenset({Role.CUSTODIAN}),
    ("POST", "/workspaces/refusals"): frozenset(),
    ("POST", "/workspaces/executions"): frozenset(),
    ("GET", "/projects/{project_id}/executions"): frozenset(),
    ("GET", "/projects/{project_id}/executions/verify"): frozenset(),
    ("POST", "/projects/{project_id}/outputs"): frozenset({Role.RESEARCHER}),
    ("POST", "/projects/{project_id}/outputs/acro"): frozenset({Role.RESEARCHER}),
    ("POST", "/outputs/{output_id}/files"): frozenset({Role.RESEARCHER}),
    ("DELETE", "/outputs/{output_id}/files/{file_id}"): frozenset({Role.RESEARCHER}),
    ("POST", "/outputs/{output_id}/submit"): frozenset({Role.RESEARCHER}),
    ("POST", "/outputs/{output_id}/withdraw"): frozenset(),
    ("POST", "/outputs/{output_id}/reviews"): frozenset({Role.REVIEWER}),
    ("POST", "/outputs/{output_id}/release"): frozenset({Role.REVIEWER, Role.ADMIN}),
    ("GET", "/outputs/review-queue"): frozenset({Role.REVIEWER}),
    ("GET", "/outputs"): frozenset(),
    ("GET", "/outputs/{output_id}"): frozenset(),
    ("GET", "/outputs/{output_id}/files/{file_id}/held"): frozenset({Role.REVIEWER}),
    ("GET", "/outputs/{output_id}/files/{file_id}/download"): frozenset({Role.RESEARCHER}),
    ("POST", "/outputs/{output_id}/files/{file_id}/withdraw-release"): frozenset(
        {Role.RESEARCHER, Role.REVIEWER, Role.ADMIN}
    ),
}
SAMPLE_PATH_VALUES = {
    "username": "target",
    "token_id": "1",
    "role": "reviewer",
    "name": "admissions",
    "request_id": "1",
    "project_id": "1",
    "dataset": "demographics",
    "output_id": "1",
    "file_id": "1",
}


def _access_of(dependant: Dependant) -> list[Access]:
    found = [d.call for d in dependant.dependencies if isinstance(d.call, Access)]
    for sub in dependant.dependencies:
        found += _access_of(sub)
    return found


def _routes(services: Services) -> list[tuple[str, str, Access | None]]:
    """Every operation of every router the app includes; checked against the app's own OpenAPI
    so that a route added some other way cannot escape the walk."""
    routes = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            accesses = _access_of(route.dependant)
            for method in sorted(route.methods):
                routes.append((method, route.path_format, accesses[0] if accesses else None))
    spec = create_app(services).openapi()["paths"]
    published = {(m.upper(), p) for p, ops in spec.items() for m in ops}
    assert published == {(m, p) for m, p, _ in routes}
    return routes


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PATH_VALUES[m.group(1)], path)


def test_every_route_declares_its_access(services: Services) -> None:
    """A route without an Access dependency must be on the short public list."""
    routes = _routes(services)
    assert len(routes) >= 15
    undeclared = [(m, p) for m, p, a in routes if a is None and (m, p) not in PUBLIC]
    assert undeclared == []
    declared = {(m, p): a.roles for m, p, a in routes if a is not None}
    assert declared == POLICY
    for m, p, a in routes:
        if (m, p) in PUBLIC:
            assert a is None, f"{m} {p} is listed public but requires {a.describe() if a else ''}"


def test_no_route_is_reachable_without_what_it_needs(api: LiveServer, services: Services) -> None:
    """For every protected route: no token -> 401; a workspace token -> 403 (unless the route is a
    workspace route); a user holding every role except the ones needed -> 403."""
    make_account(services, "target", Role.RESEARCHER)
    accounts: dict[str, Account] = {}

    def lacking(roles: frozenset[Role]) -> Account:
        """A user holding every role except ``roles``."""
        name = "without-" + "-".join(sorted(roles))
        if name not in accounts:
            accounts[name] = make_account(services, name, *[r for r in Role if r not in roles])
        return accounts[name]

    ws = services.identity.issue_token(
        OPERATOR, "target", kind=TokenKind.WORKSPACE, project_id=make_project(services, "target")
    )
    checked = 0
    with api.client() as c:
        for method, path, access in _routes(services):
            if access is None:
                continue
            url = _url(path)
            r = c.request(method, url, json={})
            assert r.status_code == 401, f"{method} {path} without a token answered {r.status_code}"
            r = c.request(method, url, json={}, headers={"Authorization": f"Bearer {ws.secret}"})
            if not access.workspace:
                assert r.status_code == 403, (
                    f"{method} {path} with a workspace token answered {r.status_code}"
                )
            if access.roles:
                r = c.request(method, url, json={}, headers=lacking(access.roles).headers)
                assert r.status_code == 403, (
                    f"{method} {path} without {access.describe()} answered {r.status_code}"
                )
                assert r.json()["error"] == "permission_denied"
            checked += 1
    assert checked >= 12


@pytest.mark.parametrize("path", ["/users", "/audit/verify", "/audit/events"])
def test_admin_routes_refuse_every_other_role(api: LiveServer, services: Services, path: str) -> None:
    """Researchers, custodians and reviewers (even all three at once) cannot read admin routes."""
    everyone_else = make_account(services, "busy", Role.RESEARCHER, Role.CUSTODIAN, Role.REVIEWER)
    admin = make_account(services, "boss", Role.ADMIN)
    with api.client() as c:
        assert c.get(path, headers=everyone_else.headers).status_code == 403
        assert c.get(path, headers=admin.headers).status_code == 200
