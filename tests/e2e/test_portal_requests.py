"""The custodian's access-request pages in headless Chromium, over real HTTP: the queue, a request,
the decision form (approve with narrowing, reject, ask for changes, refusals, a stale form), and the
projects on their datasets (suspend through a confirmation page).

Every request is reached through the real services (submitted by the example's researcher); every
decision goes through the pages, and what changed is read back from the services.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from enclave.domain.access.requests import Decision
from enclave.domain.access.states import ProjectState, RequestState
from enclave.domain.identity.accounts import TokenKind
from enclave.wiring import Services
from tests.conftest import OPERATOR, Account, LiveServer
from tests.helpers.portal import HOSTILE, check_page, new_page, sign_in, sign_in_http
from tests.integration.test_access import actor, population, submitted, world  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow

DEMOGRAPHICS = {
    "dataset": "demographics",
    "columns": ["year_of_birth", "sex", "region", "deprivation_quintile"],
    "justification": "Age, sex, region and deprivation are the stratifiers of every estimate.",
}


def account(username: str) -> Account:
    """The account ``world`` made (tests.conftest.make_account's password)."""
    return Account(username, f"pw-{username}-long-enough", "")


def state_of(services: Services, request_id: int) -> tuple[RequestState, dict[str, Decision]]:
    found = services.access.get(OPERATOR, request_id)
    return found.state, {p.dataset: p.decision for p in found.parts}


@pytest.fixture
def portal(world: Services) -> Iterator[tuple[LiveServer, dict[str, int]]]:  # noqa: F811
    """Four submitted requests: one on demographics alone whose title and summary carry markup (to
    approve with narrowing), one on demographics alone (to reject), and two on all three datasets
    (one to send back for changes, one to be decided while the form is open)."""
    ids = {
        "narrow": submitted(
            world,
            title=f"Narrowed study {HOSTILE}",
            lay_summary=f"A lay summary that carries markup: {HOSTILE}",
            datasets=[DEMOGRAPHICS],
        ),
        "changes": submitted(world, title="A study sent back for changes"),
        "reject": submitted(world, title="A study to be rejected", datasets=[DEMOGRAPHICS]),
        "stale": submitted(world, title="A study decided while the form was open"),
    }
    with LiveServer(world) as server:
        yield server, ids


def submit_form(page: Any) -> Any:
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Send your decision").click()
    return navigation.value


def test_a_custodian_decides_on_requests_and_suspends_a_project(
    world: Services,  # noqa: F811
    portal: tuple[LiveServer, dict[str, int]],
    browser: Any,
) -> None:
    server, ids = portal
    page = new_page(browser)
    sign_in(page, server.url, account("carl"))

    # The queue: every request touching demographics, the newest first, with state tags.
    page.goto(f"{server.url}/portal/custodian/requests")
    check_page(page, "requests-queue")
    rows = page.locator("tbody tr")
    assert rows.count() == 4
    assert [rows.nth(i).get_attribute("data-request") for i in range(4)] == [
        str(ids[k]) for k in ("stale", "reject", "changes", "narrow")
    ]
    narrow_row = page.locator(f'tr[data-request="{ids["narrow"]}"]').inner_text()
    assert HOSTILE in narrow_row
    assert "Submitted" in narrow_row
    assert "Pending" in narrow_row
    assert "researcher" in narrow_row
    assert page.title() != "owned"
    assert page.locator("main img").count() == 0
    page.get_by_label("Show requests that are").select_option("approved")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/custodian/requests?state=approved")
    assert "No request is approved" in page.inner_text("main")
    check_page(page, "requests-queue-filtered")

    # A request: the whole form, each part's decision, the history; markup shown as text.
    page.goto(f"{server.url}/portal/custodian/requests")
    page.locator(f'tr[data-request="{ids["narrow"]}"] a').click()
    page.wait_for_url(f"**/custodian/requests/{ids['narrow']}")
    check_page(page, "request")
    main = page.inner_text("main")
    assert f"Narrowed study {HOSTILE}" in main
    assert f"A lay summary that carries markup: {HOSTILE}" in main
    for text in ("REC-24/EX/0173", "deprivation_quintile", "Epsilon 3", "History", "Created by researcher"):
        assert text in main, text
    assert page.title() != "owned"
    assert page.locator("main img").count() == 0

    # The decision form; first an epsilon above what was asked: refused, nothing changed.
    page.get_by_role("link", name="Decide on demographics").click()
    page.wait_for_url("**/decision?dataset=demographics")
    check_page(page, "decision")
    assert HOSTILE in page.inner_text("main")
    page.get_by_label("Approve", exact=True).check()
    page.get_by_label("Epsilon you approve (optional)").fill("5")
    page.get_by_label("Why you approve").fill("Region and sex suffice")
    response = submit_form(page)
    assert response.status == 400, page.inner_text("main")
    summary = page.locator(".govuk-error-summary")
    assert "at most the 3.0 asked" in summary.inner_text()
    assert page.get_by_label("Epsilon you approve (optional)").input_value() == "5"  # kept as typed
    assert page.get_by_label("Why you approve").input_value() == "Region and sex suffice"
    check_page(page, "decision-error")
    assert state_of(world, ids["narrow"]) == (RequestState.SUBMITTED, {"demographics": Decision.PENDING})

    # Approve with narrowing: one column less, a smaller epsilon, a stricter small-count threshold.
    page.get_by_label("deprivation_quintile").uncheck()
    page.get_by_label("Epsilon you approve (optional)").fill("1.5")
    page.get_by_label("Smallest count allowed in outputs (optional)").fill("20")
    response = submit_form(page)
    assert response.status == 200
    page.wait_for_url(f"**/custodian/requests/{ids['narrow']}?done=approved")
    assert "You approved your part of this request." in page.inner_text(".govuk-notification-banner")
    check_page(page, "request-approved")
    found = world.access.get(OPERATOR, ids["narrow"])
    assert found.state is RequestState.APPROVED
    assert found.project_id is not None
    project = world.access.project(OPERATOR, found.project_id)
    assert project.scope == {"demographics": ["year_of_birth", "sex", "region"]}
    assert project.epsilon == Decimal("1.5")
    assert project.conditions == {"min_count": 20}

    # Reject: first without a reason (the service refuses), then with one.
    page.goto(f"{server.url}/portal/custodian/requests/{ids['reject']}/decision")
    page.get_by_label("Reject", exact=True).check()
    response = submit_form(page)
    assert response.status == 400
    assert "needs a reason" in page.locator(".govuk-error-summary").inner_text()
    assert page.get_by_label("Reject", exact=True).is_checked()
    check_page(page, "decision-no-reason")
    assert state_of(world, ids["reject"]) == (RequestState.SUBMITTED, {"demographics": Decision.PENDING})
    page.get_by_label("Reasons for rejecting").fill("The ethics approval does not cover this dataset.")
    submit_form(page)
    page.wait_for_url(f"**/custodian/requests/{ids['reject']}?done=rejected")
    assert "You rejected this request" in page.inner_text(".govuk-notification-banner")
    assert state_of(world, ids["reject"])[0] is RequestState.REJECTED
    assert "The ethics approval does not cover this dataset." in page.inner_text("main")

    # A stale form: another custodian decides while this one is open; refused, nothing changed.
    page.goto(f"{server.url}/portal/custodian/requests/{ids['stale']}/decision?dataset=demographics")
    world.access.decide(actor(world, "cora"), ids["stale"], "lab_results", Decision.APPROVED, "fine")
    page.get_by_label("Approve", exact=True).check()
    page.get_by_label("Why you approve").fill("Fine by me")
    response = submit_form(page)
    assert response.status == 409
    assert "This request changed while you were deciding" in page.locator(".govuk-error-summary").inner_text()
    check_page(page, "decision-stale")
    assert state_of(world, ids["stale"])[1]["demographics"] is Decision.PENDING

    # The project on my dataset: suspend it through the confirmation page.
    page.goto(f"{server.url}/portal/custodian/projects")
    check_page(page, "custodian-projects")
    assert HOSTILE in page.inner_text("main")
    assert page.locator("main img").count() == 0
    page.locator(f'tr[data-project="{project.id}"] a').click()
    page.wait_for_url(f"**/custodian/projects/{project.id}")
    check_page(page, "custodian-project")
    assert "Active" in page.inner_text("main")
    assert "year_of_birth, sex, region" in page.inner_text("main")

    # The code run in its workspaces: recorded by a workspace's server, shown here as text
    assert "No code has been run in this project's workspaces yet" in page.inner_text("main")
    member = next(iter(project.members))
    issued = world.identity.issue_token(OPERATOR, member, kind=TokenKind.WORKSPACE, project_id=project.id)
    workspace = world.identity.authenticate(issued.secret)
    hostile_code = f"print('{HOSTILE}')\n# </pre><a href=x>a link</a>"
    for code in ("import enclave.client\nws = enclave.client.connect()", hostile_code):
        world.executions.record(workspace, "k-1", "cell", code)
    page.reload()
    check_page(page, "custodian-project-code")
    assert page.locator(".enclave-execution").count() == 2
    assert page.locator('.enclave-execution[data-seq="2"] pre').inner_text() == hostile_code
    assert page.locator(".enclave-execution a").count() == 0  # the code's markup is text
    assert page.locator("main img").count() == 0
    assert page.title() != "owned"
    assert f"Run by {member}" in page.inner_text(".enclave-execution >> nth=0")
    page.get_by_role("link", name="See all the code run in this project").click()
    page.wait_for_url(f"**/custodian/projects/{project.id}/executions")
    check_page(page, "custodian-project-code-all")
    assert page.locator('[data-check="intact"]').count() == 1
    assert "2 records checked" in page.inner_text("main")
    assert [
        int(n) for n in page.locator(".enclave-execution").evaluate_all("es => es.map(e => e.dataset.seq)")
    ] == [1, 2]
    page.goto(f"{server.url}/portal/custodian/projects/{project.id}")
    page.get_by_role("link", name="Suspend the project").click()
    page.wait_for_url(f"**/custodian/projects/{project.id}/suspend")
    check_page(page, "custodian-project-suspend")
    assert "can be undone" in page.inner_text("main")
    assert HOSTILE in page.inner_text("main")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Suspend the project").click()
    assert navigation.value.status == 400  # no reason: the service's sentence
    assert "Say why" in page.locator(".govuk-error-summary").inner_text()
    check_page(page, "custodian-project-suspend-error")
    assert world.access.project(OPERATOR, project.id).state is ProjectState.ACTIVE
    page.get_by_label("Why", exact=True).fill("A data incident is being investigated")
    page.get_by_role("button", name="Suspend the project").click()
    page.wait_for_url(f"**/custodian/projects/{project.id}?done=suspended")
    assert "The project was suspended." in page.inner_text(".govuk-notification-banner")
    assert "Suspended" in page.inner_text("main h1 + p")
    check_page(page, "custodian-project-suspended")
    assert world.access.project(OPERATOR, project.id).state is ProjectState.SUSPENDED
    page.goto(f"{server.url}/portal/register")
    assert "Suspended" in page.locator(f'tr[data-project="{project.id}"]').inner_text()
    assert page.title() != "owned"

    # Reinstate it, then revoke it: permanent, and no action is offered afterwards.
    page.goto(f"{server.url}/portal/custodian/projects/{project.id}")
    page.get_by_role("link", name="Reinstate the project").click()
    page.wait_for_url(f"**/custodian/projects/{project.id}/reinstate")
    check_page(page, "custodian-project-reinstate")
    page.get_by_label("Why", exact=True).fill("The investigation found no breach")
    page.get_by_role("button", name="Reinstate the project").click()
    page.wait_for_url(f"**/custodian/projects/{project.id}?done=reinstated")
    assert "Active" in page.inner_text("main h1 + p")
    page.get_by_role("link", name="Revoke the project").click()
    page.wait_for_url(f"**/custodian/projects/{project.id}/revoke")
    check_page(page, "custodian-project-revoke")
    assert "This is permanent" in page.inner_text("main")
    page.get_by_label("Why", exact=True).fill("The data sharing agreement ended")
    page.get_by_role("button", name="Revoke the project").click()
    page.wait_for_url(f"**/custodian/projects/{project.id}?done=revoked")
    assert "Revoked" in page.inner_text("main h1 + p")
    assert page.get_by_role("link", name="Reinstate the project").count() == 0
    check_page(page, "custodian-project-revoked")
    assert world.access.project(OPERATOR, project.id).state is ProjectState.REVOKED
    response = page.goto(f"{server.url}/portal/custodian/projects/{project.id}/reinstate")
    assert response is not None
    assert response.status == 200
    page.get_by_label("Why", exact=True).fill("Trying to undo a revocation")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Reinstate the project").click()
    assert navigation.value.status == 400  # the state machine's refusal, shown on the form
    assert "from revoked" in page.locator(".govuk-error-summary").inner_text()
    assert world.access.project(OPERATOR, project.id).state is ProjectState.REVOKED

    # Another custodian (lab results and prescriptions): asks for changes on a request of hers, and
    # cannot open a request on demographics alone.
    other = new_page(browser)
    sign_in(other, server.url, account("cora"))
    other.goto(f"{server.url}/portal/custodian/requests/{ids['changes']}")
    assert other.get_by_role("link", name="Decide on lab_results").is_visible()
    assert other.get_by_role("link", name="Decide on prescriptions").is_visible()
    other.get_by_role("link", name="Decide on lab_results").click()
    other.wait_for_url("**/decision?dataset=lab_results")
    other.get_by_label("Ask for changes", exact=True).check()
    other.get_by_label("What needs to change").fill("Say which HbA1c test codes you need.")
    submit_form(other)
    other.wait_for_url(f"**/custodian/requests/{ids['changes']}?done=changes_requested")
    assert "You asked for changes" in other.inner_text(".govuk-notification-banner")
    check_page(other, "request-changes-requested")
    state, parts = state_of(world, ids["changes"])
    assert state is RequestState.CHANGES_REQUESTED
    assert parts["lab_results"] is Decision.CHANGES_REQUESTED
    for address in (f"/custodian/requests/{ids['narrow']}", f"/custodian/requests/{ids['narrow']}/decision"):
        response = other.goto(f"{server.url}/portal{address}")
        assert response is not None
        assert response.status in (403, 404), address
        assert HOSTILE not in other.inner_text("body")
    check_page(other, "request-not-yours")
    response = other.goto(f"{server.url}/portal/custodian/projects/{project.id}")
    assert response is not None
    assert response.status == 404


def test_forms_without_the_token_are_refused_and_markup_is_escaped(
    world: Services,  # noqa: F811
    portal: tuple[LiveServer, dict[str, int]],
) -> None:
    """A decision or a state change without the session's CSRF token is refused and changes nothing;
    the request's markup is escaped in the HTML itself; someone without the custodian role is
    refused the pages."""
    server, ids = portal
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert sign_in_http(c, account("carl")).status_code == 303
        page = c.get(f"/portal/custodian/requests/{ids['narrow']}/decision")
        assert page.status_code == 200
        assert "<script>document.title" not in page.text
        assert "&lt;script&gt;" in page.text
        version = re.search(r'name="version" value="([^"]+)"', page.text)
        assert version is not None
        fields = {
            "dataset": "demographics",
            "decision": "approved",
            "approve_reason": "fine",
            "version": version.group(1),
        }
        refused = c.post(f"/portal/custodian/requests/{ids['narrow']}/decision", data=fields)
        assert refused.status_code == 403
        assert "This form has expired" in refused.text
        refused = c.post(
            f"/portal/custodian/requests/{ids['narrow']}/decision", data={**fields, "csrf_token": "forged"}
        )
        assert refused.status_code == 403
        assert state_of(world, ids["narrow"]) == (RequestState.SUBMITTED, {"demographics": Decision.PENDING})
        unknown = c.get(f"/portal/custodian/requests/{ids['narrow']}/decision?dataset=genomes")
        assert unknown.status_code == 400
        assert c.get("/portal/custodian/projects/1/explode").status_code == 404
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert sign_in_http(c, account("researcher")).status_code == 303
        assert c.get("/portal/custodian/requests").status_code == 403
        assert c.get(f"/portal/custodian/requests/{ids['narrow']}").status_code == 403


def test_the_queue_refreshes_itself_with_javascript(
    world: Services,  # noqa: F811
    portal: tuple[LiveServer, dict[str, int]],
    browser: Any,
) -> None:
    """htmx reloads the queue's table in place (every minute; here on its "refresh" event), under the
    page's Content-Security-Policy, and a request submitted meanwhile appears without a page load."""
    server, _ = portal
    page = new_page(browser)
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    sign_in(page, server.url, account("carl"))
    page.goto(f"{server.url}/portal/custodian/requests")
    page.wait_for_function("() => window.htmx !== undefined")
    assert page.locator("tbody tr").count() == 4
    page.evaluate("window.marker = 'same page'")
    new = submitted(world, title="A request that arrived while the queue was open", datasets=[DEMOGRAPHICS])
    page.evaluate("htmx.trigger('#queue', 'refresh')")
    page.locator(f'tr[data-request="{new}"]').wait_for()
    assert page.locator("tbody tr").count() == 5
    assert page.evaluate("window.marker") == "same page"  # swapped in place, not reloaded
    assert page.locator("#queue").count() == 1
    check_page(page, "requests-queue-refreshed")
    assert refused == []
