"""Credentials bound to their place, over real HTTP (tests.conftest.LiveServer serves both listeners as
`enclave serve` does): the workspace socket serves only a workspace's routes, to workspace tokens
only; the network port refuses workspace tokens; DP queries with a personal token over the network
only where ``queries_outside_workspace`` allows; what a workspace's server reports needs its key."""

from __future__ import annotations

from typing import Any

import pytest

from enclave.domain.identity.accounts import TokenKind
from enclave.wiring import Services
from tests.conftest import OPERATOR, LiveServer
from tests.factories import make_project
from tests.integration.test_api import assert_error


def plan() -> dict[str, Any]:
    return {
        "dataset": "demographics",
        "aggregates": [{"kind": "count_rows"}],
        "group_by": ["sex"],
        "epsilon": "0.1",
    }


def tokens(services: Services) -> tuple[int, str, str, int]:
    project = make_project(services, "lead")
    personal = services.identity.issue_token(OPERATOR, "lead", name="laptop").secret
    issued = services.identity.issue_token(OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project)
    return project, personal, issued.secret, issued.token.id


def denied(services: Services) -> list[dict[str, Any]]:
    return [
        e.details
        for e in services.audit.export(OPERATOR, after_seq=0, limit=10_000)
        if e.action == "auth.access_denied"
    ]


def test_a_workspace_token_copied_out_of_the_workspace_is_refused_over_the_network(
    services: Services,
) -> None:
    project, _, workspace, _ = tokens(services)
    with LiveServer(services) as api:
        with api.workspace_client(workspace) as inside:
            assert inside.get(f"/projects/{project}/budget").status_code == 200
            assert inside.post(f"/projects/{project}/queries", json=plan()).status_code == 201
        with api.client() as outside:
            outside.headers["Authorization"] = f"Bearer {workspace}"
            for method, path in (
                ("GET", f"/projects/{project}/budget"),
                ("POST", f"/projects/{project}/queries"),
                ("GET", "/me"),
            ):
                r = outside.request(method, path, json=plan() if method == "POST" else None)
                assert_error(r, 403, "permission_denied", "works only inside its workspace")
    assert any("network listener" in str(d["reason"]) for d in denied(services))


def test_the_workspace_socket_serves_a_workspace_and_nothing_else(services: Services) -> None:
    """No login, no token minting, no accounts, no released files, no audit log, no portal, no
    documentation: those routes are not there at all; a personal token is refused on the routes
    that are."""
    project, personal, workspace, _ = tokens(services)
    with LiveServer(services) as api, api.workspace_client(workspace) as inside:
        absent = [
            ("POST", "/auth/login"),
            ("GET", "/tokens"),
            ("POST", "/users/lead/tokens"),
            ("GET", "/users"),
            ("GET", "/audit/events"),
            ("GET", "/outputs/1/files/1"),
            ("GET", "/portal/"),
            ("GET", "/openapi.json"),
            ("GET", "/docs"),
            ("GET", "/catalog/linkage"),
        ]
        for method, path in absent:
            assert inside.request(method, path).status_code in (404, 405), (method, path)  # not routed at all
        assert inside.get("/healthz").status_code == 200
        inside.headers["Authorization"] = f"Bearer {personal}"
        assert_error(
            inside.get(f"/projects/{project}/budget"),
            403,
            "permission_denied",
            "only the workspace's own token",
        )
        assert_error(
            inside.get("/me"), 403, "permission_denied", "personal tokens and logins are for outside it"
        )
    assert any("workspace listener" in str(d["reason"]) for d in denied(services))


@pytest.mark.parametrize("allowed", [False, True])
def test_queries_outside_a_workspace_are_a_deployment_setting(services: Services, allowed: bool) -> None:
    """Off (production's default): a personal token previews (free, no data) but runs no query
    over the network; on (the demo's default): it does."""
    services.settings = services.settings.model_copy(update={"queries_outside_workspace": allowed})
    project, personal, _, _ = tokens(services)
    with LiveServer(services) as api, api.client() as outside:
        outside.headers["Authorization"] = f"Bearer {personal}"
        assert outside.post(f"/projects/{project}/queries/preview", json=plan()).status_code == 200
        ran = outside.post(f"/projects/{project}/queries", json=plan())
        sql = outside.post(
            f"/projects/{project}/queries/sql",
            json={"sql": "SELECT COUNT(*) FROM demographics", "epsilon": "0.1"},
        )
        if allowed:
            assert ran.status_code == 201, ran.text
            assert sql.status_code == 201, sql.text
        else:
            assert_error(ran, 403, "permission_denied", "run only inside the project's workspace")
            assert_error(sql, 403, "permission_denied", "run only inside the project's workspace")
            assert services.budgets.account(OPERATOR, project).spent.epsilon == 0


def test_production_defaults_to_queries_inside_workspaces_only(services: Services) -> None:
    assert services.settings.allows_queries_outside_workspace  # development
    production = services.settings.model_copy(update={"mode": "production"})
    assert not production.allows_queries_outside_workspace
    assert production.model_copy(update={"queries_outside_workspace": True}).allows_queries_outside_workspace


def test_refusal_reports_need_the_servers_key_which_a_notebook_does_not_hold(services: Services) -> None:
    project, _, workspace, token_id = tokens(services)
    body = {"path": "/user/lead/p1/files/secret.csv", "reason": "export route"}
    with LiveServer(services) as api, api.workspace_client(workspace) as inside:
        forged = inside.post("/workspaces/refusals", json=body)
        assert_error(forged, 403, "permission_denied", "code in a notebook cannot write these records")
        wrong = inside.post("/workspaces/refusals", json=body, headers={"X-Enclave-Server-Key": "0" * 64})
        assert wrong.status_code == 403
        key = services.keys.workspace_server_key(token_id)
        assert (
            inside.post("/workspaces/refusals", json=body, headers={"X-Enclave-Server-Key": key}).status_code
            == 204
        )
        # the key of another workspace token does not fit this one
        other = services.keys.workspace_server_key(token_id + 1)
        assert (
            inside.post(
                "/workspaces/refusals", json=body, headers={"X-Enclave-Server-Key": other}
            ).status_code
            == 403
        )
    events = [
        e
        for e in services.audit.export(OPERATOR, after_seq=0, limit=10_000)
        if e.action == "workspace.download_refused"
    ]
    assert len(events) == 1
    assert events[0].object_id == str(project)


def test_jupyterlabs_exporter_list_is_no_attempt(services: Services) -> None:
    """The proxy's guard answers JupyterLab's page-load fetch of the exporter list with no exporters
    and records nothing; an export is refused and recorded."""
    secret = services.keys.workspace_guard_secret()
    with LiveServer(services) as api, api.client() as proxy:
        listed = proxy.get(f"/workspaces/guard/{secret}/user/lead/p1/api/nbconvert")
        assert listed.status_code == 200
        assert listed.json() == {}
        exported = proxy.get(f"/workspaces/guard/{secret}/user/lead/p1/api/nbconvert/html/x.ipynb")
        assert exported.status_code == 403
        assert proxy.get(f"/workspaces/guard/{'0' * 32}/user/lead/p1/files/x").status_code == 404
    events = [
        e
        for e in services.audit.export(OPERATOR, after_seq=0, limit=10_000)
        if e.action == "workspace.download_refused"
    ]
    assert [e.details["path"] for e in events] == ["/user/lead/p1/api/nbconvert/html/x.ipynb"]
