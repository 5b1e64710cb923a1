"""The researcher's pages in Chromium over real HTTP: my projects with the way into each workspace,
and a project's page (scope, budget gauge, spending by member, release history) that never shows a
released value."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from enclave.domain.identity.accounts import Actor, Role
from enclave.domain.outputs.review import Decision, FileDecision
from enclave.domain.queries.plans import QueryPlan, Release
from enclave.wiring import Services
from tests.conftest import OPERATOR, Account, LiveServer, make_account
from tests.factories import make_project
from tests.helpers.portal import HOSTILE, check_page, new_page, sign_in, sign_in_http

pytestmark = pytest.mark.slow


def account(username: str) -> Account:
    return Account(username, f"pw-{username}-long-enough", "")


def run(services: Services, project: int, plan: dict[str, Any]) -> Release:
    lead = Actor.for_user(services.identity.get_user(OPERATOR, "lead"))
    release, _ = services.queries.run(lead, project, QueryPlan.model_validate(plan))
    return release


@pytest.fixture
def project(services: Services) -> Iterator[tuple[LiveServer, int, list[Release]]]:
    pid = make_project(services, "lead", title="Births by region", columns=["sex", "region", "year_of_birth"])
    releases = [
        run(
            services,
            pid,
            {
                "dataset": "demographics",
                "aggregates": [{"kind": "count_rows"}],
                "group_by": ["sex"],
                "epsilon": "0.25",
            },
        ),
        run(
            services,
            pid,
            {
                "dataset": "demographics",
                "aggregates": [{"kind": "mean", "column": "year_of_birth"}],
                "group_by": ["region"],
                "filters": [{"column": "sex", "op": "==", "value": "F"}],
                "epsilon": "0.5",
            },
        ),
    ]
    with LiveServer(services) as server:
        yield server, pid, releases


def released_numbers(releases: list[Release]) -> set[str]:
    """Every released number as the page could print it (long enough not to occur by chance)."""
    found = set()
    for release in releases:
        for row in release.values:
            for value in row.values():
                if isinstance(value, float):
                    for text in (repr(value), f"{value:.2f}", f"{value:,.2f}", f"{value:.1f}"):
                        if len(text.replace(",", "").replace(".", "").lstrip("-0")) >= 4:
                            found.add(text)
    return found


def test_a_researcher_sees_their_projects_budget_and_releases_but_no_released_value(
    services: Services, project: tuple[LiveServer, int, list[Release]], browser: Any
) -> None:
    server, pid, releases = project
    page = new_page(browser)
    sign_in(page, server.url, account("lead"))
    page.get_by_role("link", name="My projects").click()
    page.wait_for_url("**/portal/projects")
    check_page(page, "researcher-projects")
    row = page.locator(f'tr[data-project="{pid}"]')
    assert "Births by region" in row.inner_text()
    assert "Active" in row.inner_text()
    workspace = row.get_by_role("link", name="Open the workspace of Births by region")
    assert workspace.get_attribute("href") == f"{services.settings.hub_url}/hub/spawn/lead/p{pid}"

    row.get_by_role("link", name="Births by region", exact=True).click()
    page.wait_for_url(f"**/portal/projects/{pid}")
    check_page(page, "researcher-project")
    main = page.inner_text("main")
    account_now = services.budgets.account(OPERATOR, pid)
    assert account_now.spent.epsilon == Decimal("0.75")
    assert "75.0% spent" in main
    assert "sex, region, year_of_birth" in main
    assert page.locator("tr[data-release]").count() == 2
    newest = page.locator(f'tr[data-release="{releases[1].id}"]').inner_text()
    assert "Mean of year_of_birth in demographics, by region, where sex == 'F'" in newest
    assert "0.5" in newest
    assert "lead" in newest
    assert page.locator("svg.enclave-chart polyline").count() == 1  # one member has spent
    html = page.content()
    assert released_numbers(releases), "the releases have values to look for"
    leaked = [n for n in released_numbers(releases) if n in html]
    assert leaked == [], f"released values on the page: {leaked}"


def test_only_members_open_a_project_page(
    services: Services, project: tuple[LiveServer, int, list[Release]]
) -> None:
    server, pid, _ = project
    outsider = make_account(services, "outsider", Role.RESEARCHER)
    custodian = Account("factory-custodian", "factory-custodian-password", "")
    services.identity.set_password(OPERATOR, custodian.username, custodian.password)
    with httpx.Client(base_url=server.url) as c:
        sign_in_http(c, outsider)
        assert c.get("/portal/projects").status_code == 200
        assert "not a member of any project" in c.get("/portal/projects").text
        refused = c.get(f"/portal/projects/{pid}")
        assert refused.status_code == 404
        assert "Births by region" not in refused.text
    with httpx.Client(base_url=server.url) as c:
        sign_in_http(c, custodian)  # the custodian of its dataset, without the researcher role
        assert c.get(f"/portal/projects/{pid}").status_code == 403


def test_a_researcher_follows_an_output_request_and_downloads_the_released_file(
    services: Services, project: tuple[LiveServer, int, list[Release]], browser: Any
) -> None:
    """While the request is in review the page shows its checks and no review; once two reviewers
    approve, their comments and the released file with its SHA-256, which the download matches."""
    server, pid, releases = project
    lead = Actor.for_user(services.identity.get_user(OPERATOR, "lead"))
    by_sex = releases[0]
    table = ("sex,count\n" + "".join(f"{r['sex']},{r['count']}\n" for r in by_sex.values)).encode()
    request = services.outputs.create(lead, pid, context="Table 1 of the paper: people by sex.")
    services.outputs.add_file(lead, request.id, "by_sex.csv", table, derived_from=[by_sex.id])
    services.outputs.submit(lead, request.id)
    reviewers = [make_account(services, name, Role.REVIEWER) for name in ("rev1", "rev2")]

    page = new_page(browser)
    sign_in(page, server.url, account("lead"))
    page.goto(f"{server.url}/portal/projects/{pid}")
    page.locator(f'tr[data-output="{request.id}"] a').click()
    page.wait_for_url(f"**/portal/outputs/{request.id}")
    check_page(page, "researcher-output-in-review")
    main = page.inner_text("main")
    assert "In review" in main
    assert "provenance" in main  # the checks, as sentences
    assert "once review is over" in main

    comments = ("Counts trace to release; fine.", "Agreed, releasable.")
    for reviewer, comment in zip(reviewers, comments, strict=True):
        who = Actor.for_user(services.identity.get_user(OPERATOR, reviewer.username))
        services.outputs.review(who, request.id, [FileDecision("by_sex.csv", Decision.APPROVE, comment)])
    page.reload()
    check_page(page, "researcher-output-released")
    main = page.inner_text("main")
    assert "Released" in main
    for comment in comments:
        assert comment in main
    released = services.outputs.show(OPERATOR, request.id).released[0]
    assert released.sha256 in main
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download by_sex.csv").click()
    saved = downloading.value.path()
    assert saved is not None
    assert hashlib.sha256(Path(saved).read_bytes()).hexdigest() == released.sha256
    with services.db.unit_of_work(write=False) as uow:
        actions = [e.action for e in uow.audit.iter_events()]
    assert actions.count("output.downloaded") == 1  # audited, as the API's download is

    # Someone outside the project: neither the page nor the file.
    outsider = make_account(services, "stranger", Role.RESEARCHER)
    with httpx.Client(base_url=server.url) as c:
        sign_in_http(c, outsider)
        assert c.get(f"/portal/outputs/{request.id}").status_code == 404
        assert c.get(f"/portal/outputs/{request.id}/files/{released.file_id}/download").status_code == 404


def test_markup_in_a_project_title_is_shown_as_text(services: Services, browser: Any) -> None:
    pid = make_project(services, "lead", title=f"Study {HOSTILE}")
    with LiveServer(services) as server:
        page = new_page(browser)
        sign_in(page, server.url, account("lead"))
        for address in ("/portal/projects", f"/portal/projects/{pid}"):
            page.goto(f"{server.url}{address}")
            check_page(page, "researcher-hostile" + address.replace("/", "-"))
            assert f"Study {HOSTILE}" in page.inner_text("main")
            assert page.title() != "owned"
            assert page.locator("main img").count() == 0
