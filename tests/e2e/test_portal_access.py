"""Every page route declares who may open it, and keeps to it: walk every route of the portal as
nobody and as each role, as ``tests/integration/test_api_access.py`` walks the API's."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute

from enclave.domain.identity.accounts import Actor, Role
from enclave.domain.queries.plans import QueryPlan
from enclave.portal.app import ROUTERS
from enclave.portal.sessions import PageAccess, public_page
from enclave.portal.web import page_access
from enclave.wiring import Services
from tests.conftest import OPERATOR, Account, LiveServer, make_account
from tests.factories import make_project
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


MARKER = "held-only-7f3a9c"


def test_no_page_but_the_workbench_shows_a_released_value_or_a_held_file(
    api: LiveServer, services: Services
) -> None:
    """The portal is reachable from outside the enclave: walk every page, with real objects, as every
    kind of user (a member, the custodian, a reviewer, an admin, nobody); only the reviewer's
    workbench may show a held file's content or a released value (and does: the control)."""
    pid = make_project(services, "walk-lead", columns=["sex", "region", "year_of_birth"])
    lead = Actor.for_user(services.identity.get_user(OPERATOR, "walk-lead"))
    plan = QueryPlan.model_validate(
        {
            "dataset": "demographics",
            "aggregates": [{"kind": "mean", "column": "year_of_birth"}],
            "group_by": ["sex"],
            "epsilon": "0.5",
        }
    )
    release, _ = services.queries.run(lead, pid, plan)
    numbers = {f"{v:.3f}" for row in release.values for v in row.values() if isinstance(v, float)}
    assert numbers
    held = "sex,mean_year,note\n" + "".join(
        f"{row['sex']},{row['mean_year_of_birth']:.3f},{MARKER}\n" for row in release.values
    )
    output = services.outputs.create(lead, pid, context="The mean year of birth by sex.")
    file = services.outputs.add_file(lead, output.id, "means.csv", held.encode(), derived_from=[release.id])
    services.outputs.submit(lead, output.id)
    request_id = services.access.project(OPERATOR, pid).request_id

    custodian = Account("factory-custodian", "factory-custodian-password", "")
    services.identity.set_password(OPERATOR, custodian.username, custodian.password)
    services.identity.set_password(OPERATOR, "walk-lead", "walk-lead-password-long")
    people = {
        "member": Account("walk-lead", "walk-lead-password-long", ""),
        "custodian": custodian,
        "reviewer": make_account(services, "walk-reviewer", Role.REVIEWER),
        "admin": make_account(services, "walk-admin", Role.ADMIN),
    }
    values = {
        "project_id": str(pid),
        "request_id": str(request_id),
        "output_id": str(output.id),
        "file_id": str(file.id),
        "name": "demographics",
        "version": "1",
        "username": "walk-lead",
    }
    clients = {"nobody": httpx.Client(base_url=api.url)}
    for who, account in people.items():
        clients[who] = httpx.Client(base_url=api.url)
        assert sign_in_http(clients[who], account).status_code == 303
    seen_on_workbench = False
    try:
        for method, path, _ in page_routes():
            if method != "GET":
                continue
            url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "1"), path)
            for who, client in clients.items():
                text = client.get(url).text
                shown = [n for n in (MARKER, *numbers) if n in text]
                if path.startswith("/portal/reviewer/"):
                    seen_on_workbench |= who == "reviewer" and MARKER in text
                    continue
                assert shown == [], f"GET {url} as {who} shows {shown}"
    finally:
        for client in clients.values():
            client.close()
    assert seen_on_workbench, "the reviewer's workbench shows the held file (the test can see a leak)"
