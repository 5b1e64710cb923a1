"""Filling the portal's access-request form in Chromium, page by page, as an applicant would."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

#: The radio button's label of each legal basis (enclave.portal.requests.LEGAL_BASES).
BASIS_LABELS = {
    "gdpr_6_1_e_and_9_2_j": "Public task, for research",
    "gdpr_6_1_f_and_9_2_j": "Legitimate interests, for research",
    "gdpr_6_1_a_and_9_2_a": "Explicit consent",
    "statutory_gateway": "A statutory gateway",
}


def save(page: Any, button: str = "Save and continue") -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()


def fill_date(page: Any, legend: str, when: date) -> None:
    group = page.get_by_role("group", name=legend)
    group.get_by_label("Day").fill(str(when.day))
    group.get_by_label("Month").fill(str(when.month))
    group.get_by_label("Year").fill(str(when.year))


def apply_through_the_form(
    page: Any, base: str, answers: dict[str, Any], shot: Callable[[Any, str], None]
) -> int:
    """The signed-in researcher on ``page`` starts an application at ``base`` (the server's address),
    answers every question page from ``answers`` (the access-request form's fields), checks the
    answers and submits; ``shot(page, step)`` is called on the list, the task list, the data page
    and the check page. Returns the id of the submitted request."""
    page.goto(f"{base}/portal/applications")
    shot(page, "applications")
    save(page, "Start a new application")
    assert page.locator("h1").inner_text() == "Apply for access to data"
    shot(page, "task-list")

    page.get_by_role("link", name="Describe your project").click()
    page.get_by_label("Project title").fill(answers["title"])
    for label, name in (
        ("Lay summary", "lay_summary"),
        ("Organisation", "organisation"),
        ("Purpose", "purpose"),
        ("Public benefit", "public_benefit"),
    ):
        page.get_by_label(label).fill(answers[name])
    save(page)

    assert page.locator("h1").inner_text() == "Legal basis and ethics"
    page.get_by_label(BASIS_LABELS[answers["legal_basis"]]).check()
    page.get_by_label("Ethics approval reference").fill(answers["ethics_reference"])
    save(page)

    team = answers["team"]
    if len(team) > 1 or team[0]["role"] != "lead":
        page.goto(page.url.rsplit("/", 1)[0] + "/team")
        for index, member in enumerate(team):
            page.locator(f"#team-{index}-username").fill(member["username"])
            page.locator(f"#team-{index}-role").select_option(member["role"])
        save(page)

    page.goto(page.url.rsplit("/", 1)[0] + "/data")
    assert page.locator("h1").inner_text() == "Datasets and columns"
    for wanted in answers["datasets"]:
        name = wanted["dataset"]
        page.locator(f"#dataset-{name}").check()
        for column in wanted["columns"]:
            page.locator(f"input[name='columns-{name}'][value='{column}']").check()
        page.get_by_label(f"Why you need these columns of {name}").fill(wanted["justification"])
    shot(page, "data")
    save(page)

    assert page.locator("h1").inner_text() == "Dates and privacy budget"
    fill_date(page, "Start date", date.fromisoformat(str(answers["start_date"])))
    fill_date(page, "End date", date.fromisoformat(str(answers["end_date"])))
    page.get_by_label("Epsilon for the whole project").fill(str(answers["budget"]["epsilon"]))
    if answers["budget"].get("delta"):
        page.get_by_label("Delta (optional)").fill(str(answers["budget"]["delta"]))
    save(page)

    assert page.locator("h1").inner_text() == "Analysis and outputs"
    page.get_by_label("Analysis plan").fill(answers["analysis_plan"])
    page.get_by_label("Output plan").fill(answers["output_plan"])
    save(page)

    assert page.locator("h1").inner_text() == "Check your answers before you submit"
    main = page.inner_text("main")
    for wanted in answers["datasets"]:
        listed = re.search(rf"{wanted['dataset']}\s+Columns: ([a-z0-9_, ]+)", main)
        assert listed is not None, main
        assert set(listed.group(1).split(", ")) == set(wanted["columns"]), listed.group(1)
    shot(page, "check-your-answers")
    save(page, "Submit the request")
    found = re.search(r"/portal/applications/(\d+)\?done=submitted$", page.url)
    assert found is not None, page.url
    shot(page, "submitted")
    return int(found.group(1))
