"""The custodian's whole journey in Chromium with JavaScript turned off: sign in, upload an extract
and read its report, open the queue and a request, reject one request and approve another with
narrowing, sign out. The pages are plain forms and links; htmx and the upload's progress bar only
add to them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from enclave.domain.access.requests import Decision
from enclave.domain.access.states import RequestState
from enclave.domain.identity.accounts import Role
from enclave.wiring import Services
from tests.conftest import OPERATOR, LiveServer, make_account
from tests.e2e.test_portal_custodian import write_extract
from tests.e2e.test_portal_requests import DEMOGRAPHICS, account
from tests.helpers.portal import SHOTS
from tests.integration.test_access import population, submitted, world  # noqa: F401 - fixtures
from tests.integration.test_ingest import ROWS_OK, SPECS

pytestmark = pytest.mark.slow


def shot(page: Any, name: str) -> str:
    """A screenshot, and the page's text, which must hold no traceback."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"nojs-{name}.png"), full_page=True)
    text: str = page.inner_text("main")
    assert "Traceback" not in text
    return text


def sign_in(page: Any, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/portal/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/portal/")


def test_a_custodian_works_through_the_portal_without_javascript(
    world: Services,  # noqa: F811
    browser: Any,
    tmp_path: Path,
) -> None:
    uploader = make_account(world, "custodian", Role.CUSTODIAN)
    reject = submitted(world, title="A study to be rejected", datasets=[DEMOGRAPHICS])
    narrow = submitted(world, title="A study to be narrowed", datasets=[DEMOGRAPHICS])
    with LiveServer(world) as server:
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.set_default_timeout(60_000)
        assert page.evaluate("1 + 1") == 2  # the test's own probes still run; the page's scripts do not

        # Upload an extract and read its report.
        sign_in(page, server.url, uploader.username, uploader.password)
        page.goto(f"{server.url}/portal/custodian/upload")
        page.set_input_files("#spec", str(SPECS / "admissions.yaml"))
        page.set_input_files("#extract", str(write_extract(tmp_path / "admissions.csv", ROWS_OK)))
        page.get_by_role("button", name="Upload and publish").click()
        page.wait_for_url("**/portal/custodian/datasets/admissions/versions/1?done=ingested")
        assert f"{len(ROWS_OK)} rows" in shot(page, "report")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/portal/signed-out")

        # Decide on two requests.
        carl = account("carl")
        sign_in(page, server.url, carl.username, carl.password)
        page.get_by_role("link", name="Access requests").click()
        page.wait_for_url("**/portal/custodian/requests")
        assert "A study to be rejected" in shot(page, "queue")
        page.get_by_role("link", name="A study to be rejected").click()
        page.wait_for_url(f"**/custodian/requests/{reject}")
        page.get_by_role("link", name="Decide on demographics").click()
        page.get_by_label("Reject", exact=True).check()
        page.get_by_label("Reasons for rejecting").fill("The ethics approval does not cover this dataset.")
        page.get_by_role("button", name="Send your decision").click()
        page.wait_for_url(f"**/custodian/requests/{reject}?done=rejected")
        assert "You rejected this request" in shot(page, "rejected")
        assert world.access.get(OPERATOR, reject).state is RequestState.REJECTED

        page.goto(f"{server.url}/portal/custodian/requests/{narrow}/decision?dataset=demographics")
        page.get_by_label("Approve", exact=True).check()
        page.get_by_label("deprivation_quintile").uncheck()
        page.get_by_label("Epsilon you approve (optional)").fill("1.5")
        page.get_by_label("Why you approve").fill("Region and sex suffice")
        page.get_by_role("button", name="Send your decision").click()
        page.wait_for_url(f"**/custodian/requests/{narrow}?done=approved")
        shot(page, "approved")
        found = world.access.get(OPERATOR, narrow)
        assert found.parts[0].decision is Decision.APPROVED
        assert found.project_id is not None
        project = world.access.project(OPERATOR, found.project_id)
        assert project.scope == {"demographics": ["year_of_birth", "sex", "region"]}
        context.close()
