"""Every page route declares who may open it, and keeps to it: walk every route of the portal as
nobody and as each role, as ``tests/integration/test_api_access.py`` walks the API's."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute

from enclave.domain.identity.accounts import Role
from enclave.portal.app import ROUTERS
from enclave.portal.sessions import PageAccess, public_page
from enclave.portal.web import page_access
from enclave.wiring import Services
from tests.conftest import LiveServer, make_account
from tests.helpers.portal import sign_in_http

pytestmark = pytest.mark.slow

#: A value for each path parameter: the objects need not exist (an admitted role may get 404).
SAMPLE = {"name": "admissions", "version": "1", "username": "nobody", "project_id": "1", "request_id": "1"}


def page_routes() -> list[tuple[str, str, object]]:
    routes = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            for method in sorted(route.methods or ()):
                routes.append((method, route.path_format, page_access(route)))
    return routes


def address(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLE.get(m.group(1), "1"), path)


def test_every_page_declares_its_access() -> None:
    routes = page_routes()
    assert len(routes) >= 20
    undeclared = [(m, p) for m, p, access in routes if access is None]
    assert not undeclared, f"pages without a PageAccess or Public declaration: {undeclared}"
    for _, _, access in routes:
        assert isinstance(access, PageAccess) or access is public_page


def test_every_page_keeps_to_its_declaration(api: LiveServer, services: Services) -> None:
    accounts = {role: make_account(services, f"walk-{role.value}", role) for role in Role}
    clients = {None: httpx.Client(base_url=api.url)}
    for role, account in accounts.items():
        clients[role] = httpx.Client(base_url=api.url)
        assert sign_in_http(clients[role], account).status_code == 303
    try:
        for method, path, access in page_routes():
            url = address(path)
            for role, client in clients.items():
                answer = client.request(method, url, data={} if method == "POST" else None)
                where = f"{method} {url} as {role or 'nobody'}"
                assert answer.status_code < 500, where
                if answer.status_code not in (303, 204):
                    assert answer.headers.get("content-type", "").startswith("text/html"), where
                if access is public_page:
                    continue
                assert isinstance(access, PageAccess)
                if role is None:
                    assert answer.status_code == 303, where
                    assert answer.headers["location"].startswith("/portal/sign-in?next="), where
                elif not access.admits_role(role):
                    assert answer.status_code == 403, where
                elif method == "POST":
                    assert answer.status_code == 403, where  # admitted, but no CSRF token: refused
                    assert "This form has expired" in answer.text, where
                else:
                    assert answer.status_code in (200, 303, 404), where
    finally:
        for client in clients.values():
            client.close()
