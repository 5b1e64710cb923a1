"""The API over real HTTP: login, tokens, expiry and revocation, the error model, audit of failures."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from enclave.domain.access.states import ProjectState
from enclave.domain.identity.accounts import Role, TokenKind
from enclave.wiring import Services
from tests.conftest import OPERATOR, FakeClock, LiveServer, make_account
from tests.factories import make_project


def audit_actions(services: Services) -> list[str]:
    with services.db.unit_of_work(write=False) as uow:
        return [e.action for e in uow.audit.iter_events()]


def assert_error(response: httpx.Response, status: int, code: str, contains: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert contains in body["detail"]


def test_healthz_and_openapi_are_public(api: LiveServer) -> None:
    """/healthz answers without a token and reports the database; /openapi.json describes the API."""
    with api.client() as c:
        health = c.get("/healthz").json()
        assert health["status"] == "ok"
        assert health["database"] in {"sqlite", "postgresql"}
        spec = c.get("/openapi.json").json()
    assert "/auth/login" in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_login_me_logout(api: LiveServer, services: Services) -> None:
    """A password login gives a session token that works until logout revokes it."""
    alice = make_account(services, "alice", Role.RESEARCHER)
    with api.client() as c:
        r = c.post("/auth/login", json={"username": "alice", "password": alice.password})
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        assert r.json()["kind"] == "session"
        auth = {"Authorization": f"Bearer {token}"}
        me = c.get("/me", headers=auth).json()
        assert me["username"] == "alice"
        assert me["roles"] == ["researcher"]
        assert c.post("/auth/logout", headers=auth).status_code == 204
        assert_error(c.get("/me", headers=auth), 401, "authentication_failed", "revoked")
    assert "auth.login" in audit_actions(services)


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong password!"), ("nobody", "whatever it is"), ("", "x")],
)
def test_failed_logins_are_401_alike_and_audited(
    api: LiveServer, services: Services, username: str, password: str
) -> None:
    """Unknown user and wrong password get the same 401, and each failure is in the audit log."""
    make_account(services, "alice")
    with api.client() as c:
        r = c.post("/auth/login", json={"username": username, "password": password})
    if username:
        assert_error(r, 401, "authentication_failed", "unknown user or wrong password")
        assert r.headers["www-authenticate"] == "Bearer"
        assert audit_actions(services)[-1] == "auth.login_failed"
    else:
        assert_error(r, 422, "validation_error", "username")


def test_token_expiry_takes_effect_at_once(api: LiveServer, services: Services, clock: FakeClock) -> None:
    """A token works until the instant it expires, then 401 with a sentence saying what to do."""
    alice = make_account(services, "alice")
    issued = services.identity.issue_token(OPERATOR, "alice", ttl=timedelta(hours=1))
    headers = {"Authorization": f"Bearer {issued.secret}"}
    with api.client() as c:
        assert c.get("/me", headers=headers).status_code == 200
        clock.advance(timedelta(minutes=59))
        assert c.get("/me", headers=headers).status_code == 200
        clock.advance(timedelta(minutes=1))
        assert_error(c.get("/me", headers=headers), 401, "authentication_failed", "expired")
        assert c.get("/me", headers=alice.headers).status_code == 200
    assert audit_actions(services)[-1] == "auth.token_rejected"


def test_token_revocation_takes_effect_at_once(api: LiveServer, services: Services) -> None:
    """Revoking a token through the API refuses it on the very next request."""
    alice = make_account(services, "alice")
    with api.client(alice) as c:
        created = c.post("/users/alice/tokens", json={"name": "script", "expires_in_days": 7})
        assert created.status_code == 201, created.text
        secret, token_id = created.json()["token"], created.json()["id"]
        other = {"Authorization": f"Bearer {secret}"}
        assert c.get("/me", headers=other).status_code == 200
        listed = c.get("/users/alice/tokens").json()
        assert all("token" not in t for t in listed)
        assert c.delete(f"/tokens/{token_id}").status_code == 200
        assert_error(c.get("/me", headers=other), 401, "authentication_failed", "revoked")
        assert_error(c.delete(f"/tokens/{token_id}"), 409, "invalid_state", "already revoked")


def test_deactivating_an_account_revokes_its_tokens(api: LiveServer, services: Services) -> None:
    """An admin deactivates a user; the user's tokens stop working at once."""
    admin = make_account(services, "admin", Role.ADMIN)
    bob = make_account(services, "bob", Role.RESEARCHER)
    with api.client(admin) as c:
        assert c.put("/users/bob/active", json={"active": False}).json()["active"] is False
        assert_error(c.put("/users/admin/active", json={"active": False}), 400, "invalid_input", "your own")
    with api.client(bob) as c:
        assert_error(c.get("/me"), 401, "authentication_failed")


def test_object_level_checks_on_users_and_tokens(api: LiveServer, services: Services) -> None:
    """Users see and manage only their own account and tokens; admins everyone's."""
    admin = make_account(services, "admin", Role.ADMIN)
    alice = make_account(services, "alice", Role.RESEARCHER)
    make_account(services, "bob", Role.CUSTODIAN)
    bob_token = services.identity.issue_token(OPERATOR, "bob").token.id
    with api.client(alice) as c:
        assert c.get("/users/alice").status_code == 200
        assert_error(c.get("/users/bob"), 403, "permission_denied")
        assert_error(c.get("/users/ghost"), 403, "permission_denied")  # existence not revealed
        assert_error(c.get("/users/bob/tokens"), 403, "permission_denied")
        assert_error(c.post("/users/bob/tokens", json={}), 403, "permission_denied")
        assert_error(c.delete(f"/tokens/{bob_token}"), 404, "not_found")
        assert_error(c.put("/users/bob/password", json={"password": "x" * 20}), 403, "permission_denied")
    with api.client(admin) as c:
        assert c.get("/users/bob").status_code == 200
        assert_error(c.get("/users/ghost"), 404, "not_found")
        assert c.delete(f"/tokens/{bob_token}").status_code == 200


def test_admin_manages_users_over_http(api: LiveServer, services: Services) -> None:
    """Create, grant, revoke, accredit: each answers with the new state; mistakes are 4xx sentences."""
    admin = make_account(services, "admin", Role.ADMIN)
    with api.client(admin) as c:
        r = c.post(
            "/users",
            json={
                "username": "dora",
                "password": "a long password!",
                "roles": ["researcher"],
                "organisation": "Uni",
            },
        )
        assert r.status_code == 201, r.text
        assert c.post("/users/dora/roles", json={"role": "reviewer"}).json()["roles"] == [
            "researcher",
            "reviewer",
        ]
        assert_error(
            c.post("/users/dora/roles", json={"role": "reviewer"}), 409, "invalid_state", "already holds"
        )
        assert c.delete("/users/dora/roles/reviewer").json()["roles"] == ["researcher"]
        assert (
            c.put("/users/dora/accreditation", json={"expires": "2031-03-31"}).json()["accreditation_expires"]
            == "2031-03-31"
        )
        assert_error(c.post("/users", json={"username": "dora"}), 409, "already_exists")
        assert_error(c.delete("/users/admin/roles/admin"), 400, "invalid_input", "another admin")
        assert [u["username"] for u in c.get("/users").json()] == ["admin", "dora"]
    with api.client() as c:
        login = c.post("/auth/login", json={"username": "dora", "password": "a long password!"})
        assert login.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"username": "x", ', "not valid JSON"),
        (b'{"username": 5, "password": "abc"}', "username"),
        (b'{"username": "abc"}', "password"),
        (b'{"username": "abc", "password": "p", "extra": 1}', "extra"),
        (b'{"username": "a\\u0000b", "password": "p"}', "username"),
        (b"[]", "body"),
    ],
)
def test_malformed_bodies_are_422_naming_the_field(api: LiveServer, body: bytes, field: str) -> None:
    """Broken JSON and wrong types get 422 with the error model and the field named."""
    with api.client() as c:
        r = c.post("/auth/login", content=body, headers={"content-type": "application/json"})
    assert_error(r, 422, "validation_error", field)


def test_unknown_route_and_method_use_the_error_model(api: LiveServer) -> None:
    """Even the framework's own 404 and 405 answer with {error, detail}."""
    with api.client() as c:
        assert_error(c.get("/nowhere"), 404, "not_found", "openapi.json")
        assert_error(c.put("/healthz"), 405, "method_not_allowed")


def test_workspace_token_is_refused_outside_its_routes(api: LiveServer, services: Services) -> None:
    """A token scoped to a project cannot manage accounts or tokens, even for an admin, and the
    refusal is audited."""
    make_account(services, "alice", Role.ADMIN, Role.RESEARCHER)
    project = make_project(services, "alice")
    ws = services.identity.issue_token(OPERATOR, "alice", kind=TokenKind.WORKSPACE, project_id=project)
    headers = {"Authorization": f"Bearer {ws.secret}"}
    with api.client() as c:
        assert_error(c.get("/users", headers=headers), 403, "permission_denied", "workspace token")
        assert_error(c.post("/users/alice/tokens", json={}, headers=headers), 403, "permission_denied")
        assert_error(c.get("/audit/verify", headers=headers), 403, "permission_denied")
    assert audit_actions(services)[-1] == "auth.access_denied"


def test_bad_bearer_headers_are_401(api: LiveServer, services: Services) -> None:
    """Missing, malformed and unknown tokens all get 401 with the error model; unknown ones are audited."""
    with api.client() as c:
        assert_error(c.get("/me"), 401, "authentication_failed", "Authorization: Bearer")
        assert_error(c.get("/me", headers={"Authorization": "Basic abc"}), 401, "authentication_failed")
        assert_error(c.get("/me", headers={"Authorization": "Bearer enc_nope"}), 401, "authentication_failed")
    assert audit_actions(services)[-1] == "auth.token_rejected"


def test_audit_endpoints_verify_and_page(api: LiveServer, services: Services) -> None:
    """Admins read the chain in pages and verify it over HTTP."""
    admin = make_account(services, "admin", Role.ADMIN)
    with api.client(admin) as c:
        verification = c.get("/audit/verify").json()
        assert verification["ok"] is True
        assert verification["verified"] == 2
        page = c.get("/audit/events", params={"after": 1, "limit": 1}).json()
        assert [e["seq"] for e in page] == [2]
        assert page[0]["action"] == "token.issued"


def test_workspace_token_dies_with_its_project(api: LiveServer, services: Services) -> None:
    """A workspace token stops authenticating the moment its project is suspended, and again works
    when reinstated; a token for a project that does not exist never works."""
    make_account(services, "wendy", Role.RESEARCHER)
    project = make_project(services, "wendy")
    ws = services.identity.issue_token(OPERATOR, "wendy", kind=TokenKind.WORKSPACE, project_id=project)
    ghost = services.identity.issue_token(OPERATOR, "wendy", kind=TokenKind.WORKSPACE, project_id=999)
    headers = {"Authorization": f"Bearer {ws.secret}"}
    with api.workspace_client(ws.secret) as c:
        assert c.get("/me", headers=headers).status_code == 200
        services.access.set_project_state(OPERATOR, project, ProjectState.SUSPENDED, "test")
        assert_error(c.get("/me", headers=headers), 401, "authentication_failed", "is suspended")
        services.access.set_project_state(OPERATOR, project, ProjectState.ACTIVE, "test")
        assert c.get("/me", headers=headers).status_code == 200
        assert_error(
            c.get("/me", headers={"Authorization": f"Bearer {ghost.secret}"}), 401, "authentication_failed"
        )
