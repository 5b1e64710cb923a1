"""The applicant's pages in headless Chromium, over real HTTP: the Five Safes form a page at a time
(task list, question pages with their errors, save and come back later, check your answers,
submit), the custodians' decisions and reasons, change and resubmit, an amendment of an active
project, withdrawal, and that an application in progress is its owner's alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from enclave.domain.access.requests import Decision
from enclave.domain.access.states import RequestState
from enclave.wiring import Services
from tests.conftest import OPERATOR, Account, LiveServer
from tests.helpers.applications import apply_through_the_form, fill_date, save
from tests.helpers.portal import HOSTILE, check_page, new_page, sign_in, sign_in_http
from tests.integration.test_access import actor, population, world  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow

LONG = "This answer is long enough for the form's twenty characters."


def account(username: str) -> Account:
    return Account(username, f"pw-{username}-long-enough", "")


@pytest.fixture
def live(world: Services) -> Iterator[LiveServer]:  # noqa: F811
    with LiveServer(world) as server:
        yield server


ANSWERS = {
    "title": "Regional births",
    "lay_summary": LONG,
    "organisation": "University of Example",
    "purpose": LONG,
    "public_benefit": LONG,
    "legal_basis": "gdpr_6_1_e_and_9_2_j",
    "ethics_reference": "REC-26/EX/0042",
    "team": [{"username": "researcher", "role": "lead"}],
    "datasets": [{"dataset": "demographics", "columns": ["sex", "region"], "justification": LONG}],
    "start_date": "2026-02-01",
    "end_date": "2027-06-30",
    "budget": {"epsilon": "2"},
    "analysis_plan": LONG,
    "output_plan": LONG,
}


def shot(page: Any, step: str) -> None:
    check_page(page, f"applications-{step}")


def test_an_application_page_by_page_then_changes_and_an_amendment(
    world: Services,  # noqa: F811
    live: LiveServer,
    browser: Any,
) -> None:
    page = new_page(browser)
    sign_in(page, live.url, account("researcher"))
    assert page.get_by_role("link", name="My access requests").count() == 1

    # The form refuses what the domain refuses, page by page, with the design system's summary.
    page.goto(f"{live.url}/portal/applications")
    save(page, "Start a new application")
    draft_url = page.url
    page.get_by_role("link", name="Describe your project").click()
    page.get_by_label("Project title").fill("abc")
    save(page)
    summary = page.locator(".govuk-error-summary")
    assert "Project title must be 5 characters or more" in summary.inner_text()
    assert "Enter a lay summary" in summary.inner_text()
    assert page.locator("#title").input_value() == "abc"  # as typed
    check_page(page, "applications-errors")
    page.get_by_role("link", name="Enter a lay summary").click()
    assert page.evaluate("document.activeElement.id") == "lay_summary"
    # Save and come back later, with markup in the title: shown as text on every page.
    page.get_by_label("Project title").fill(f"Markup {HOSTILE}")
    for label in ("Lay summary", "Purpose", "Public benefit"):
        page.get_by_label(label).fill(LONG)
    page.get_by_label("Organisation").fill("University of Example")
    save(page, "Save and come back later")
    assert page.url == draft_url + "?done=saved"
    assert "Your answers were saved" in page.inner_text("main")
    assert page.title() != "owned"
    assert HOSTILE in page.locator("h1").inner_text()
    assert page.locator("#task-project-status").inner_text().strip() == "Completed"
    assert page.locator("#task-check-status").inner_text().strip() == "Cannot start yet"
    # The team: an analyst added in a blank row, then the lead removed: refused, one lead needed.
    page.get_by_role("link", name="Your team").click()
    page.locator("#team-0-role").select_option("analyst")
    save(page)
    assert "The team needs exactly one lead" in page.locator(".govuk-error-summary").inner_text()
    check_page(page, "applications-team-error")
    # A date that is not a date.
    page.goto(draft_url + "/dates")
    fill_date(page, "Start date", date(2026, 2, 1))
    page.get_by_role("group", name="End date").get_by_label("Day").fill("31")
    page.get_by_role("group", name="End date").get_by_label("Month").fill("2")
    page.get_by_role("group", name="End date").get_by_label("Year").fill("2027")
    page.get_by_label("Epsilon for the whole project").fill("lots")
    save(page)
    text = page.locator(".govuk-error-summary").inner_text()
    assert "The end date must be a real date" in text
    page.goto(f"{live.url}/portal/applications")
    assert "2 of 6" in page.inner_text("main")  # the draft in progress: its project and its team

    # The whole form, page by page.
    rid = apply_through_the_form(page, live.url, ANSWERS, shot)
    found = world.access.get(OPERATOR, rid)
    assert found.state is RequestState.SUBMITTED
    assert found.form.datasets[0].columns == ["sex", "region"]
    assert found.form.start_date == date(2026, 2, 1)
    assert str(found.form.budget.epsilon) == "2"

    # The custodian asks for changes; the applicant reads why, changes the data section, resubmits.
    world.access.decide(
        actor(world, "carl"), rid, "demographics", Decision.CHANGES_REQUESTED, f"Region is too fine {HOSTILE}"
    )
    page.reload()
    assert "Region is too fine" in page.locator("[data-part='demographics']").inner_text()
    assert page.title() != "owned"
    check_page(page, "applications-06-changes-requested")
    save(page, "Change and resubmit")
    page.get_by_role("link", name="Datasets and columns").click()
    page.locator("input[name='columns-demographics'][value='region']").uncheck()
    save(page)
    assert page.locator("h1").inner_text() == "Check your answers before you submit"
    save(page, "Resubmit the request")
    found = world.access.get(OPERATOR, rid)
    assert found.state is RequestState.SUBMITTED
    assert found.form.datasets[0].columns == ["sex"]
    assert {p.decision for p in found.parts} == {Decision.PENDING}

    # Approved: the lead asks for an amendment from the project's page.
    world.access.decide(actor(world, "carl"), rid, "demographics", Decision.APPROVED, "Fine now")
    pid = world.access.get(OPERATOR, rid).project_id
    assert pid is not None
    page.goto(f"{live.url}/portal/projects/{pid}")
    save(page, "Ask to change this project")
    assert page.locator(".govuk-caption-l").inner_text() == f"Amendment of project {pid}"
    page.get_by_role("link", name="Dates and privacy budget").click()
    fill_date(page, "End date", date(2027, 12, 31))
    page.get_by_label("Epsilon for the whole project").fill("3")
    save(page)
    assert page.locator("h1").inner_text() == "Check your answers before you submit"
    check_page(page, "applications-07-amendment-check")
    save(page, "Submit the amendment")
    amendment = int(re.search(r"/applications/(\d+)", page.url).group(1))  # type: ignore[union-attr]
    found = world.access.get(OPERATOR, amendment)
    assert found.amends_project_id == pid
    assert found.form.end_date == date(2027, 12, 31)

    # Withdrawing it, with a reason.
    page.get_by_role("link", name="Withdraw the request").click()
    page.get_by_label("Why you withdraw it (optional)").fill("Not needed after all")
    save(page, "Withdraw the request")
    assert world.access.get(OPERATOR, amendment).state is RequestState.WITHDRAWN
    assert "You withdrew this access request" in page.inner_text("main")

    # The abandoned draft from the start is deleted through its confirmation page.
    page.goto(draft_url + "/delete")
    check_page(page, "applications-delete")
    save(page, "Delete the application")
    assert "The application was deleted" in page.inner_text("main")
    researcher = actor(world, "researcher")
    assert world.access.drafts(researcher) == []


def test_an_application_in_progress_is_its_owners_alone(
    world: Services,  # noqa: F811
    live: LiveServer,
) -> None:
    researcher = actor(world, "researcher")
    draft = world.access.start_draft(researcher)
    with httpx.Client(base_url=live.url) as owner, httpx.Client(base_url=live.url) as rival:
        sign_in_http(owner, account("researcher"))
        assert owner.get(f"/portal/applications/drafts/{draft.id}").status_code == 200
        sign_in_http(rival, account("rival"))
        for address in ("", "/project", "/check", "/delete"):
            response = rival.get(f"/portal/applications/drafts/{draft.id}{address}")
            assert response.status_code == 404, (address, response.status_code)
        assert rival.get("/portal/applications/drafts/1/secrets").status_code == 404
        page = rival.get("/portal/applications")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        posted = rival.post(
            f"/portal/applications/drafts/{draft.id}/project",
            data={"csrf_token": token.group(1), "title": "Taken over"},
        )
        assert posted.status_code == 404
        deleted = rival.post(
            f"/portal/applications/drafts/{draft.id}/delete", data={"csrf_token": token.group(1)}
        )
        assert deleted.status_code == 404
        # Without the CSRF token even the owner's post is refused.
        assert owner.post(f"/portal/applications/drafts/{draft.id}/delete").status_code == 403
    assert world.access.draft(researcher, draft.id).answers == draft.answers
    # A custodian without the researcher role has no application pages.
    with httpx.Client(base_url=live.url) as custodian:
        sign_in_http(custodian, account("carl"))
        assert custodian.get("/portal/applications").status_code == 403
