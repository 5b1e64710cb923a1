"""The output checker's workbench in headless Chromium, over real HTTP: the queue ranked by risk, a
request with its files previewed (flagged cells highlighted with their rule's sentence, markup shown
as text, a large table paged, an image through the reviewer-only held route, an unreadable file as a
sentence), blind reviews, refusals in the error summary, two approvals that release the request, a
disagreement settled by a third reviewer's consolidating decision, and a request imported from an
ACRO results folder with ACRO's verdict and flagged cells beside Enclave's.

Every request is made and submitted through the real airlock service by a project member; every
decision goes through the pages, and what changed is read back from the service.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from enclave.domain.identity.accounts import Role
from enclave.domain.outputs.review import Decision, FileDecision
from enclave.domain.outputs.service import Download
from enclave.domain.outputs.states import OutputState
from enclave.wiring import Services
from tests.conftest import OPERATOR, Account, LiveServer, make_account
from tests.factories import make_project
from tests.helpers.portal import HOSTILE, check_page, form_token, new_page, sign_in, sign_in_http
from tests.integration.test_airlock import actor, png
from tests.unit.test_acro import FILES_V1, results_v1, write_folder

pytestmark = pytest.mark.slow

FORMULA = "=cmd|' /C calc'!A0"
CONTEXT = "Table 2 of the paper: registered persons by region."
CONTROLS = "Counts from DP releases; nothing suppressed."


def csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


SMALL = (
    f"region,count,label\nNorth,3,a\nSouth,40,{csv_cell(HOSTILE)}\nEast,55,{csv_cell(FORMULA)}\n"
).encode()
BIG = ("group,sub,count\n" + "".join(f"g{i % 7},r{i:03d}x,{1000 + i}\n" for i in range(1, 251))).encode()
MARKDOWN = b"# Notes on the outputs\n\n<b>bold</b> and **strong** stay as typed.\n"
JSON = b'{"regions": ["North", "South"], "label": "<b>x</b>"}'


@dataclass
class Setting:
    server: LiveServer
    ids: dict[str, int]
    files: dict[str, int]
    reviewers: dict[str, Account]


@pytest.fixture
def workbench(services: Services) -> Iterator[Setting]:
    """Four submitted requests, oldest first: ``plain`` (three files that need no override),
    ``big`` (a 250-row table), ``small`` (a table with a small count and hostile cells), all of the
    project led by ``lead``; and ``insider``, of a project whose lead is also a reviewer."""
    reviewers = {name: make_account(services, name, Role.REVIEWER) for name in ("rev1", "rev2")}
    reviewers["insider"] = make_account(services, "insider", Role.RESEARCHER, Role.REVIEWER)
    ours = make_project(services, "lead", columns=["sex", "region"])
    theirs = make_project(services, "insider", title="The insider's own project")
    outputs = services.outputs

    def request(username: str, project: int, files: list[tuple[str, bytes]]) -> int:
        author = actor(services, username)
        created = outputs.create(author, project, context=CONTEXT, controls=CONTROLS)
        for name, content in files:
            outputs.add_file(author, created.id, name, content, description=f"the file {name}")
        outputs.submit(author, created.id)
        return created.id

    ids = {
        "plain": request(
            "lead", ours, [("notes.md", MARKDOWN), ("summary.json", JSON), ("figure.png", png())]
        ),
        "big": request("lead", ours, [("big.csv", BIG)]),
        "small": request("lead", ours, [("small.csv", SMALL)]),
        "insider": request("insider", theirs, [("insider.md", b"# The insider's notes\n")]),
    }
    files = {
        f.name: f.id for output_id in ids.values() for f in outputs.show(OPERATOR, output_id).current_files
    }
    with LiveServer(services) as server:
        yield Setting(server, ids, files, reviewers)


def send(page: Any) -> Any:
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Send your decisions").click()
    return navigation.value


SEVERITY = {"fail": 3, "warn": 2, "pass": 1, "": 0}


def test_the_queue_ranks_by_risk_and_the_request_page_highlights_cells(
    workbench: Setting, browser: Any
) -> None:
    server, ids, files = workbench.server, workbench.ids, workbench.files
    page = new_page(browser)
    sign_in(page, server.url, workbench.reviewers["rev1"])

    # The queue: failed checks first (then the oldest among equals), whatever the number of files.
    page.goto(f"{server.url}/portal/reviewer/outputs")
    check_page(page, "reviewer-queue")
    assert page.get_by_role("link", name="Output checking").count() == 1
    rows = page.locator("tbody tr")
    order = [rows.nth(i).get_attribute("data-output") for i in range(rows.count())]
    assert sorted(order) == sorted(str(i) for i in ids.values())
    assert order[:2] == [str(ids["big"]), str(ids["small"])]
    ranks = [
        (
            -SEVERITY[rows.nth(i).get_attribute("data-worst") or ""],
            -int(rows.nth(i).get_attribute("data-files")),
        )
        for i in range(rows.count())
    ]
    assert ranks == sorted(ranks)
    small_row = page.locator(f'tr[data-output="{ids["small"]}"]').inner_text()
    for text in ("A test project on demographics", "In review", "Failed", "Due"):
        assert text in small_row, text
    assert page.locator(f'tr[data-output="{ids["plain"]}"] td').nth(3).inner_text() == "3"

    # The request page: context, controls, checks; the small count's cell highlighted, with its
    # rule's sentence under the table; markup and a formula in cells shown as text.
    page.locator(f'tr[data-output="{ids["small"]}"] a').click()
    page.wait_for_url(f"**/reviewer/outputs/{ids['small']}")
    check_page(page, "reviewer-request")
    main = page.inner_text("main")
    for text in (CONTEXT, CONTROLS, "small_counts", "provenance", "Your decisions"):
        assert text in main, text
    cell = page.locator('table[data-file] tr[data-row="1"] td.enclave-cell--fail').first
    assert cell.inner_text().startswith("3")
    assert "Failed:" in cell.inner_text()
    note = cell.locator("a").first.get_attribute("href")
    assert note is not None
    assert note.startswith(f"#note-{files['small.csv']}-")
    sentence = page.locator(note).inner_text()
    assert "small_counts" in sentence or "provenance" in sentence
    notes = page.locator(".enclave-notes").inner_text()
    assert "below the threshold of 10" in notes
    assert page.locator('table[data-file] tr[data-row="2"] td').nth(0).inner_text() == "South"
    assert HOSTILE in page.locator('table[data-file] tr[data-row="2"]').inner_text()
    assert "'" + FORMULA in page.locator('table[data-file] tr[data-row="3"]').inner_text()
    assert page.title() == f"Output request {ids['small']} \N{EN DASH} Enclave"
    assert page.locator("main img").count() == 0
    assert "<script>" not in page.content().split("<main", 1)[1].split("</main>", 1)[0]


def test_a_large_table_is_paged_and_other_files_previewed(
    workbench: Setting, browser: Any, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ids, files = workbench.server, workbench.ids, workbench.files
    page = new_page(browser)
    sign_in(page, server.url, workbench.reviewers["rev1"])

    # Page 2 of the 250-row table: rows 101 to 200, and nothing of any other row in the HTML.
    page.goto(f"{server.url}/portal/reviewer/outputs/{ids['big']}")
    assert page.locator("table[data-file] tbody tr").count() == 100
    page.get_by_role("link", name="Next rows").click()
    page.wait_for_url(f"**/reviewer/outputs/{ids['big']}?file={files['big.csv']}&page=2*")
    check_page(page, "reviewer-preview-page-2")
    shown = page.locator("table[data-file] tbody tr")
    assert shown.count() == 100
    assert shown.first.get_attribute("data-row") == "101"
    assert shown.last.get_attribute("data-row") == "200"
    html = page.content()
    assert "r101x" in html
    assert "r200x" in html
    assert "r100x" not in html
    assert "r201x" not in html
    assert "r001x" not in html
    assert "rows 101 to 200" in page.inner_text("main")
    page.get_by_role("link", name="Next rows").click()
    page.wait_for_url("**page=3*")
    assert page.locator("table[data-file] tbody tr").count() == 50
    assert page.get_by_role("link", name="Next rows").count() == 0
    assert page.get_by_role("link", name="Previous rows").count() == 1
    missing = page.goto(f"{server.url}/portal/reviewer/outputs/{ids['big']}?file={files['big.csv']}&page=4")
    assert missing is not None
    assert missing.status == 404
    check_page(page, "reviewer-preview-no-such-page")

    # Markdown as plain text, JSON pretty-printed, the image through the reviewer-only route.
    page.goto(f"{server.url}/portal/reviewer/outputs/{ids['plain']}")
    check_page(page, "reviewer-request-files")
    texts = page.locator("pre.enclave-text-preview")
    assert "<b>bold</b> and **strong** stay as typed." in texts.nth(0).inner_text()
    assert '{\n  "regions": [\n    "North",' in texts.nth(1).inner_text()
    assert page.locator("main b").count() == 0
    image = page.locator("img.enclave-image-preview")
    assert image.get_attribute("alt") == "Preview of figure.png"
    image.wait_for()
    assert page.evaluate("document.querySelector('img.enclave-image-preview').naturalWidth") == 4

    # A file whose preview cannot be rendered: a sentence and the link to the held file, no 5xx.
    real = services.outputs.held_file

    def corrupt(actor: Any, output_id: int, file_id: int) -> Download:
        found = real(actor, output_id, file_id)
        if file_id == files["summary.json"]:
            return replace(found, content=b'\xff\xfe{"not json')
        return found

    monkeypatch.setattr(services.outputs, "held_file", corrupt)
    answer = page.goto(f"{server.url}/portal/reviewer/outputs/{ids['plain']}")
    assert answer is not None
    assert answer.status == 200
    check_page(page, "reviewer-request-unreadable")
    problem = page.locator(f'[data-problem="{files["summary.json"]}"]').inner_text()
    assert problem == "summary.json cannot be shown in the page: its content is not readable."
    assert page.get_by_role("link", name="Open the held file summary.json").count() == 1


def test_the_held_route_is_for_reviewers_outside_the_project(workbench: Setting, services: Services) -> None:
    server, ids, files = workbench.server, workbench.ids, workbench.files
    address = f"/portal/reviewer/outputs/{ids['plain']}/files/{files['figure.png']}/held"
    with httpx.Client(base_url=server.url) as reviewer:
        assert sign_in_http(reviewer, workbench.reviewers["rev1"]).status_code == 303
        answer = reviewer.get(address)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/png"
        assert answer.content == png()
        assert "sandbox" in answer.headers["content-security-policy"]
        table = reviewer.get(f"/portal/reviewer/outputs/{ids['small']}/files/{files['small.csv']}/held")
        assert table.headers["content-disposition"].startswith("attachment;")
        other = reviewer.get(f"/portal/reviewer/outputs/{ids['small']}/files/{files['figure.png']}/held")
        assert other.status_code == 404
    with httpx.Client(base_url=server.url) as insider:
        assert sign_in_http(insider, workbench.reviewers["insider"]).status_code == 303
        theirs = f"/portal/reviewer/outputs/{ids['insider']}/files/{files['insider.md']}/held"
        assert insider.get(theirs).status_code == 403
        assert insider.get(f"/portal/reviewer/outputs/{ids['insider']}").status_code == 403


def test_a_reviewer_never_sees_their_own_projects_outputs(workbench: Setting, browser: Any) -> None:
    server, ids = workbench.server, workbench.ids
    page = new_page(browser)
    sign_in(page, server.url, workbench.reviewers["insider"])
    page.goto(f"{server.url}/portal/reviewer/outputs")
    check_page(page, "reviewer-queue-insider")
    listed = page.locator("tbody tr")
    shown = {listed.nth(i).get_attribute("data-output") for i in range(listed.count())}
    assert str(ids["insider"]) not in shown
    assert str(ids["small"]) in shown
    answer = page.goto(f"{server.url}/portal/reviewer/outputs/{ids['insider']}")
    assert answer is not None
    assert answer.status == 403
    check_page(page, "reviewer-request-forbidden")
    assert "You do not have access to this page" in page.inner_text("main")
    assert "The insider's notes" not in page.content()


def test_blind_reviews_then_two_approvals_release_the_request(
    workbench: Setting, browser: Any, services: Services
) -> None:
    server, ids = workbench.server, workbench.ids
    plain = ids["plain"]
    first = new_page(browser)
    sign_in(first, server.url, workbench.reviewers["rev1"])
    second = new_page(browser)
    sign_in(second, server.url, workbench.reviewers["rev2"])

    # Reviewer 1 approves every file, with a comment.
    first.goto(f"{server.url}/portal/reviewer/outputs/{plain}")
    for name in ("notes.md", "summary.json", "figure.png"):
        first.get_by_label(f"Approve {name}", exact=True).check()
    first.get_by_label("Comment on notes.md").fill("First reviewer's remark ZQX-7")
    send(first)
    assert first.url.endswith(f"/reviewer/outputs/{plain}?done=reviewed")
    check_page(first, "reviewer-decided")
    assert "Your decisions are recorded." in first.inner_text("main")
    assert "First reviewer's remark ZQX-7" in first.inner_text("main")
    assert first.get_by_role("button", name="Send your decisions").count() == 0
    first.goto(f"{server.url}/portal/reviewer/outputs")
    assert first.locator(f'tr[data-output="{plain}"]').get_attribute("data-due") == "no"

    # Reviewer 2's page has none of it, not even in the HTML.
    second.goto(f"{server.url}/portal/reviewer/outputs/{plain}")
    check_page(second, "reviewer-blind")
    html = second.content()
    assert "ZQX-7" not in html
    assert 'data-reviewer="rev1"' not in html
    assert "Review by rev1" not in html
    assert services.outputs.show(OPERATOR, plain).request.state is OutputState.IN_REVIEW

    # Reviewer 2 approves: both reviews are in, the request is approved and released at once.
    for name in ("notes.md", "summary.json", "figure.png"):
        second.get_by_label(f"Approve {name}", exact=True).check()
    second.get_by_label("Comment on figure.png").fill("Second reviewer's remark QQW-3")
    send(second)
    check_page(second, "reviewer-both-decided")
    assert services.outputs.show(OPERATOR, plain).request.state is OutputState.RELEASED
    for page, other in ((first, "rev2"), (second, "rev1")):
        page.goto(f"{server.url}/portal/reviewer/outputs/{plain}")
        text = page.inner_text("main")
        assert "ZQX-7" in text
        assert "QQW-3" in text
        assert f"Review by {other}" in text
        assert "Released" in text
    check_page(first, "reviewer-released")
    first.goto(f"{server.url}/portal/reviewer/outputs")
    assert first.locator(f'tr[data-output="{plain}"]').count() == 0


def test_refusals_are_shown_with_the_services_sentence(
    workbench: Setting, browser: Any, services: Services
) -> None:
    server, ids = workbench.server, workbench.ids
    small = ids["small"]
    context = browser.new_context()  # two tabs of one reviewer's session
    stale, page = context.new_page(), context.new_page()
    for tab in (stale, page):
        tab.set_default_timeout(60_000)
    sign_in(stale, server.url, workbench.reviewers["rev1"])
    stale.goto(f"{server.url}/portal/reviewer/outputs/{small}")
    page.goto(f"{server.url}/portal/reviewer/outputs/{small}")

    # No choice made: the page says so.
    answer = send(page)
    assert answer.status == 400
    check_page(page, "reviewer-no-choice")
    summary = page.locator(".govuk-error-summary").inner_text()
    assert "Select whether you approve small.csv, ask for changes or reject it" in summary

    # Asking for changes without a comment: the service refuses, with its sentence beside the comment.
    page.get_by_label("Request changes small.csv").check()
    answer = send(page)
    assert answer.status == 400
    check_page(page, "reviewer-refused")
    summary = page.locator(".govuk-error-summary").inner_text()
    assert "Say why in a comment on small.csv" in summary
    assert page.locator(".govuk-error-summary a").first.get_attribute("href") == (
        f"#comment-{workbench.files['small.csv']}"
    )
    assert page.get_by_label("Request changes small.csv").is_checked()

    # Approving with an override of each failed check, with a recorded reason.
    page.get_by_label("Approve small.csv", exact=True).check()
    for rule in ("provenance", "small_counts"):
        page.get_by_label(f"Reason to override the failed check {rule} on small.csv (optional)").fill(
            f"Checked by hand: {rule} is acceptable here."
        )
    send(page)
    assert page.url.endswith("?done=reviewed")
    review = services.outputs.show(actor(services, "rev1"), small).reviews[0]
    assert {o.rule for o in review.overrides} == {"provenance", "small_counts"}
    assert "Overrode small_counts: Checked by hand" in page.inner_text("main")

    # The form left open in the other tab: a second decision by the same reviewer is refused.
    stale.get_by_label("Approve small.csv", exact=True).check()
    answer = send(stale)
    assert answer.status == 400
    check_page(stale, "reviewer-second-decision")
    summary = stale.locator(".govuk-error-summary").inner_text()
    refusal = f"You already decided on version 1 of output request {small}; each reviewer decides once"
    assert f"{refusal} per version" in summary
    assert len(services.outputs.show(OPERATOR, small).reviews) == 1


def test_the_queue_is_paged_50_a_page(services: Services, browser: Any) -> None:
    reviewer = make_account(services, "rev1", Role.REVIEWER)
    project = make_project(services, "lead", columns=["sex", "region"])
    author = actor(services, "lead")
    made = []
    for n in range(51):
        created = services.outputs.create(author, project, context=CONTEXT)
        services.outputs.add_file(author, created.id, "notes.md", f"# Notes, number {n}\n".encode())
        services.outputs.submit(author, created.id)
        made.append(created.id)
    with LiveServer(services) as server:
        page = new_page(browser)
        sign_in(page, server.url, reviewer)
        page.goto(f"{server.url}/portal/reviewer/outputs")
        assert "51 requests in review" in page.inner_text("main")
        rows = page.locator("tbody tr")
        assert rows.count() == 50
        # Equal risk and size: the oldest first.
        assert [rows.nth(i).get_attribute("data-output") for i in range(3)] == [str(i) for i in made[:3]]
        page.get_by_role("link", name="Next requests").click()
        page.wait_for_url("**/reviewer/outputs?page=2")
        check_page(page, "reviewer-queue-page-2")
        assert [rows.nth(i).get_attribute("data-output") for i in range(rows.count())] == [str(made[-1])]


def test_a_held_file_altered_on_disk_is_a_sentence_not_an_error(
    workbench: Setting, browser: Any, services: Services
) -> None:
    server, ids, files = workbench.server, workbench.ids, workbench.files
    held = services.settings.holding_store / "outputs" / str(ids["plain"])
    notes = next(p for p in held.iterdir() if p.read_bytes() == MARKDOWN)
    notes.chmod(0o600)
    notes.write_bytes(b"# Notes, altered after intake\n")
    page = new_page(browser)
    sign_in(page, server.url, workbench.reviewers["rev1"])
    answer = page.goto(f"{server.url}/portal/reviewer/outputs/{ids['plain']}")
    assert answer is not None
    assert answer.status == 200
    check_page(page, "reviewer-request-altered")
    problem = page.locator(f'[data-problem="{files["notes.md"]}"]').inner_text()
    assert problem == "notes.md cannot be shown: its held copy is missing or does not match its SHA-256."
    assert "altered after intake" not in page.content()


# --- a disagreement, and the consolidating decision -----------------------------------------------

LABELS = {"approve": "Approve", "request_changes": "Request changes", "reject": "Reject"}


def decide(page: Any, choices: dict[str, tuple[str, str]]) -> None:
    """Choose a decision (and type a comment) for each file in the open form."""
    for name, (decision, comment) in choices.items():
        page.get_by_label(f"{LABELS[decision]} {name}", exact=True).check()
        page.get_by_label(f"Comment on {name}").fill(comment)


def row_of(page: Any, output_id: int) -> Any:
    return page.locator(f'tr[data-output="{output_id}"]')


def test_a_disagreement_is_settled_by_a_third_reviewers_consolidating_decision(
    workbench: Setting, browser: Any, services: Services
) -> None:
    server, plain = workbench.server, workbench.ids["plain"]
    rev3 = make_account(services, "rev3", Role.REVIEWER)
    first, second, third = (new_page(browser) for _ in range(3))
    for page, account in (
        (first, workbench.reviewers["rev1"]),
        (second, workbench.reviewers["rev2"]),
        (third, rev3),
    ):
        sign_in(page, server.url, account)

    # Two independent reviews that disagree on the figure.
    first.goto(f"{server.url}/portal/reviewer/outputs/{plain}")
    decide(
        first,
        {
            "notes.md": ("approve", ""),
            "summary.json": ("approve", ""),
            "figure.png": ("approve", "The axes carry no count FIG-R1"),
        },
    )
    send(first)
    second.goto(f"{server.url}/portal/reviewer/outputs/{plain}")
    decide(
        second,
        {
            "notes.md": ("approve", "Fine NOTES-R2"),
            "summary.json": ("approve", ""),
            "figure.png": ("reject", "A bar shows a group of three people FIG-R2"),
        },
    )
    send(second)
    assert services.outputs.show(OPERATOR, plain).request.state is OutputState.NEEDS_CONSOLIDATION

    # The queue: the third reviewer is due to consolidate.
    third.goto(f"{server.url}/portal/reviewer/outputs")
    check_page(third, "reviewer-queue-consolidation")
    assert row_of(third, plain).get_attribute("data-due") == "yes"
    queued = row_of(third, plain).inner_text()
    assert "Needs a third review" in queued
    assert "Consolidation needed" in queued

    # The third reviewer's page: which file the reviews disagree on, both reviews with their comments,
    # and the consolidating form.
    third.goto(f"{server.url}/portal/reviewer/outputs/{plain}")
    check_page(third, "reviewer-consolidation")
    banner = third.locator("#consolidation").inner_text()
    assert "A consolidating decision is needed" in banner
    assert "The two independent reviews disagree on figure.png." in banner
    assert "notes.md" not in banner
    table = third.locator("table.enclave-comparison")
    assert table.locator("thead").inner_text().split("\t")[1:3] == ["Review by rev1", "Review by rev2"]
    figure = table.locator('tr[data-compared="figure.png"]')
    assert figure.get_attribute("data-standing") == "disagree"
    assert "The reviews disagree" in figure.inner_text()
    assert "The axes carry no count FIG-R1" in figure.locator('td[data-reviewer="rev1"]').inner_text()
    assert "Approve" in figure.locator('td[data-reviewer="rev1"]').inner_text()
    assert (
        "A bar shows a group of three people FIG-R2"
        in figure.locator('td[data-reviewer="rev2"]').inner_text()
    )
    assert "Reject" in figure.locator('td[data-reviewer="rev2"]').inner_text()
    notes = table.locator('tr[data-compared="notes.md"]')
    assert notes.get_attribute("data-standing") == "agree"
    assert "Fine NOTES-R2" in notes.inner_text()
    assert third.get_by_role("heading", name="Your consolidating decision").count() == 1
    assert third.get_by_role("heading", name="Your decisions").count() == 0
    hint = third.locator("#decision-" + str(workbench.files["figure.png"]) + "-hint").inner_text()
    assert hint == "The two reviews disagree (rev1: approve; rev2: reject). Your decision settles this file."
    assert third.get_by_role("group", name="Your consolidating decision on figure.png").count() == 1

    def consolidate() -> Any:
        with third.expect_navigation() as navigation:
            third.get_by_role("button", name="Send your consolidating decision").click()
        return navigation.value

    # A refusal of the service (changes asked without a comment) is shown and changes nothing.
    decide(
        third,
        {"notes.md": ("approve", ""), "summary.json": ("approve", ""), "figure.png": ("request_changes", "")},
    )
    answer = consolidate()
    assert answer.status == 400
    check_page(third, "reviewer-consolidation-refused")
    assert "Say why in a comment on figure.png" in third.locator(".govuk-error-summary").inner_text()
    assert third.get_by_role("heading", name="Your consolidating decision").count() == 1
    assert len(services.outputs.show(OPERATOR, plain).reviews) == 2

    # The consolidating approval settles the figure: the request is approved and released.
    third.get_by_label("Approve figure.png", exact=True).check()
    third.get_by_label("Comment on figure.png").fill("Checked with both reviewers: the bar is of 40 FIG-R3")
    consolidate()
    assert third.url.endswith(f"/reviewer/outputs/{plain}?done=reviewed")
    check_page(third, "reviewer-consolidated")
    view = services.outputs.show(OPERATOR, plain)
    assert view.request.state is OutputState.RELEASED
    last = view.reviews[-1]
    assert (last.reviewer, last.consolidating) == ("rev3", True)
    assert view.outcome is not None
    outcome = {f.file: f for f in view.outcome.files}
    assert outcome["figure.png"].reason == "settled by the consolidating decision"
    assert outcome["notes.md"].reason == "both reviews agree"
    main = third.inner_text("main")
    assert "Your review (consolidating), version 1" in main
    assert "FIG-R3" in main
    assert third.get_by_role("button", name=re.compile("^Send your")).count() == 0


def test_the_first_reviewers_wait_for_the_consolidating_decision_without_a_form(
    workbench: Setting, browser: Any, services: Services
) -> None:
    server, ids, files = workbench.server, workbench.ids, workbench.files
    small = ids["small"]
    rev3 = make_account(services, "rev3", Role.REVIEWER)
    # Both approve the table of small counts, neither overrides its failed checks.
    for name in ("rev1", "rev2"):
        services.outputs.review(actor(services, name), small, [FileDecision("small.csv", Decision.APPROVE)])
    assert services.outputs.show(OPERATOR, small).request.state is OutputState.NEEDS_CONSOLIDATION

    for name in ("rev1", "rev2"):
        page = new_page(browser)
        sign_in(page, server.url, workbench.reviewers[name])
        page.goto(f"{server.url}/portal/reviewer/outputs")
        assert row_of(page, small).get_attribute("data-due") == "no"
        assert "Waiting for a third reviewer" in row_of(page, small).inner_text()
        page.goto(f"{server.url}/portal/reviewer/outputs/{small}")
        check_page(page, f"reviewer-consolidation-waiting-{name}")
        waiting = page.locator("#consolidation").inner_text()
        assert "You gave one of the two independent reviews of version 1" in waiting
        assert "small.csv is approved without an override of a failed check" in waiting
        assert "This request waits for a consolidating decision by another reviewer" in waiting
        assert page.locator("main form").count() == 0
        assert page.locator("main input[type=radio]").count() == 0
        assert page.get_by_role("heading", name=re.compile("^Your (consolidating )?decision")).count() == 0
        compared = page.locator('tr[data-compared="small.csv"]')
        assert compared.get_attribute("data-standing") == "open"
        assert "provenance, small_counts" in compared.inner_text()
        assert "Your review" in page.locator("table.enclave-comparison thead").inner_text()

    # The third reviewer is told what is open, and an approval without the overrides is refused.
    page = new_page(browser)
    sign_in(page, server.url, rev3)
    page.goto(f"{server.url}/portal/reviewer/outputs/{small}")
    banner = page.locator("#consolidation").inner_text()
    assert (
        "Both reviews approve small.csv, but neither overrode its failed checks provenance, small_counts"
        in banner
    )
    page.get_by_label("Approve small.csv", exact=True).check()
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Send your consolidating decision").click()
    assert navigation.value.status == 400
    check_page(page, "reviewer-consolidation-needs-override")
    summary = page.locator(".govuk-error-summary")
    assert (
        "Small.csv failed check(s) provenance, small_counts and no reviewer overrode them"
        in summary.inner_text()
    )
    assert summary.locator("a").first.get_attribute("href") == f"#override-{files['small.csv']}-0"
    assert len(services.outputs.show(OPERATOR, small).reviews) == 2

    # A reviewer who is a member of the request's project neither sees nor decides it, even now.
    insider = ids["insider"]
    services.outputs.review(actor(services, "rev1"), insider, [FileDecision("insider.md", Decision.APPROVE)])
    services.outputs.review(
        actor(services, "rev2"), insider, [FileDecision("insider.md", Decision.REJECT, "not needed")]
    )
    assert services.outputs.show(OPERATOR, insider).request.state is OutputState.NEEDS_CONSOLIDATION
    with httpx.Client(base_url=server.url) as client:
        assert sign_in_http(client, workbench.reviewers["insider"]).status_code == 303
        assert client.get(f"/portal/reviewer/outputs/{insider}").status_code == 403
        token = form_token(client.get("/portal/reviewer/outputs").text)
        refused = client.post(
            f"/portal/reviewer/outputs/{insider}",
            data={"csrf_token": token, f"decision-{files['insider.md']}": "approve"},
        )
        assert refused.status_code == 403
    assert len(services.outputs.show(OPERATOR, insider).reviews) == 2


# --- ACRO's verdict beside Enclave's checks -------------------------------------------------------


def acro_folder(root: Path) -> Path:
    """ACRO 1.0.2's folder of the crosstab, its suppressed copy and a note; the crosstab's comments
    carry markup, and ACRO's N-K check flagged six cells of the G, N and R columns (so its sentence
    lists five, and one more)."""
    results = results_v1()
    table = results["results"]["output_0"]
    table["comments"] = ["Table 1 of the paper", HOSTILE]
    table["fair"]["check_status"]["NKCheck"] = "fail"
    table["files"][0]["sdc"]["summary"]["NKCheck"] = 6
    table["files"][0]["sdc"]["cells"]["NKCheck"] = [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    return write_folder(root, copy.deepcopy(results), FILES_V1)


def test_an_acro_import_shows_acros_verdict_and_cells_beside_enclaves_checks(
    services: Services, browser: Any, tmp_path: Path
) -> None:
    reviewer = make_account(services, "rev1", Role.REVIEWER)
    project = make_project(services, "lead")
    lead = actor(services, "lead")
    imported = services.outputs.import_acro(lead, project, acro_folder(tmp_path / "acro"), context=CONTEXT)
    output_id = imported.request.id
    services.outputs.submit(lead, output_id)
    files = {f.name: f.id for f in services.outputs.show(OPERATOR, output_id).current_files}
    table = files["output_0_0.csv"]
    with LiveServer(services) as server:
        page = new_page(browser)
        sign_in(page, server.url, reviewer)
        page.goto(f"{server.url}/portal/reviewer/outputs/{output_id}")
        check_page(page, "reviewer-acro")
        section = page.locator(f"#file-{table}")

        # ACRO's verdict, beside Enclave's own checks (which no longer list ACRO's rules).
        card = section.locator(f'[data-acro-file="{table}"]')
        assert card.get_attribute("data-acro-status") == "fail"
        verdict = card.inner_text()
        for text in (
            "ACRO's verdict on output_0_0.csv",
            "ACRO's verdict\tFail",
            "ACRO version\t1.0.2",
            "output_0 (table, crosstab)",
            "MinimumThresholdCheck: fail - 3 cells may need suppressing.",
            "Table 1 of the paper",
            "print(acro.crosstab(df.year, df.grant_type))",
            "X is a structural category, published elsewhere",
            "Verified: the file is the one ACRO checked",
        ):
            assert text in verdict, text
        acro_rules = {
            card.locator("tbody tr").nth(i).get_attribute("data-rule")
            for i in range(card.locator("tbody tr").count())
        }
        assert {"acro.status", "acro.threshold", "acro.zeros", "acro.nk_rule"} <= acro_rules
        threshold = card.locator('tr[data-rule="acro.threshold"]').inner_text()
        assert "Failed" in threshold
        assert "flagged 3 cell(s)" in threshold
        own = section.locator("table").first
        assert own.locator("caption").inner_text() == "Enclave's checks of output_0_0.csv"
        own_rules = {
            own.locator("tbody tr").nth(i).get_attribute("data-rule")
            for i in range(own.locator("tbody tr").count())
        }
        assert {"small_counts", "provenance"} <= own_rules
        assert not any(rule.startswith("acro.") for rule in own_rules if rule)
        # ACRO's failures are still overridden like Enclave's, in the form.
        assert (
            page.get_by_label(
                "Reason to override the failed check acro.threshold on output_0_0.csv (optional)"
            ).count()
            == 1
        )

        # The comment with markup is text: no element made of it, the title untouched.
        assert HOSTILE in verdict
        assert page.title() == f"Output request {output_id} \N{EN DASH} Enclave"
        assert page.locator("main script").count() == 0
        assert page.locator("main img").count() == 0

        # The preview: ACRO's [row, column] from 0 is the CSV's row + 1 and the column after the index.
        preview = section.locator(f'table[data-file="{table}"]')
        assert preview.locator("thead th").all_inner_texts() == ["Row", "year", "G", "N", "R", "X"]

        def cell(row: int, column: int) -> Any:
            return preview.locator(f'tr[data-row="{row}"] td').nth(column)

        small = cell(1, 4)  # 2010, X: 1 -> ACRO's threshold [0, 3], and Enclave's small counts
        assert small.inner_text().split("\n")[0] == "1"
        assert set(small.get_attribute("class").split()) >= {"enclave-cell--acro", "enclave-cell--fail"}
        assert small.get_attribute("data-acro") == "fail"
        assert "ACRO failed: note A" in small.inner_text()
        assert "Failed: note " in small.inner_text()
        # Enclave's provenance check flags every number of this table (none comes from a release);
        # ACRO's marker is on the cells ACRO flagged, and only on those.
        dominant = cell(1, 1)  # 2010, G: 60 -> ACRO's N-K [0, 0]
        assert dominant.inner_text().split("\n")[0] == "60"
        assert "enclave-cell--acro" in dominant.get_attribute("class").split()
        assert dominant.locator(".enclave-cell__marker--acro").inner_text().startswith("ACRO failed: note A")
        for row, column, value in ((3, 2, "40"), (1, 0, "2010"), (3, 1, "59")):  # not ACRO's; the index
            other = cell(row, column)
            assert other.inner_text().split("\n")[0] == value
            assert other.get_attribute("data-flag") == "fail"
            assert "enclave-cell--acro" not in other.get_attribute("class").split()
            assert other.get_attribute("data-acro") is None
            assert "ACRO" not in other.inner_text()
        assert cell(3, 4).inner_text().startswith("0")
        assert cell(3, 4).get_attribute("data-acro") == "fail"

        # Each ACRO marker leads to ACRO's sentence, with its cells as this preview numbers them.
        link = small.locator(".enclave-cell__marker--acro a").first
        target = link.get_attribute("href")
        assert target is not None
        assert target.startswith(f"#acro-note-{table}-")
        sentences = [
            page.locator(h).inner_text()
            for h in small.locator(".enclave-cell__marker--acro a").evaluate_all(
                "els => els.map(e => e.getAttribute('href'))"
            )
        ]
        threshold_note = next(s for s in sentences if "acro.threshold" in s)
        assert "cells are below ACRO's minimum threshold" in threshold_note
        assert "In this preview: row 1, column X; row 2, column X; row 3, column X." in threshold_note
        nk_note = page.locator(f'#file-{table} li[data-rule="acro.nk_rule"]').inner_text()
        assert (
            "row 1, column G; row 1, column N; row 1, column R; row 2, column G; row 2, column N." in nk_note
        )
        assert "ACRO flagged 1 more cell whose position the imported verdict does not record" in nk_note
        legend = section.locator(".enclave-legend").inner_text()
        assert "ACRO failed: note AN" in legend
        assert "Failed: note N" in legend

        # The table ACRO suppressed: its flagged (now empty) cells ask for a review.
        suppressed = page.locator(f'table[data-file="{files["output_2_0.csv"]}"] tr[data-row="2"] td').nth(4)
        assert suppressed.get_attribute("data-acro") == "warn"
        assert "ACRO review: note A" in suppressed.inner_text()
        # A file ACRO could not check gets its verdict, and no table of cells.
        notes = page.locator(f'[data-acro-file="{files["notes.txt"]}"]')
        assert notes.get_attribute("data-acro-status") == "review"
        assert "our notes" in notes.inner_text()

        # The HTML as served: the marked cell's text and classes, the comment escaped.
        with httpx.Client(base_url=server.url) as client:
            assert sign_in_http(client, reviewer).status_code == 303
            html = client.get(f"/portal/reviewer/outputs/{output_id}").text
        first_row = r'<tr class="govuk-table__row" data-row="1">.*?'
        marked = re.search(
            first_row + r'<td class="([^"]*)" data-flag="fail" data-acro="fail">1\s',
            html.split(f'data-file="{table}"', 1)[1],
            re.S,
        )
        assert marked is not None
        assert marked.group(1) == "govuk-table__cell enclave-cell enclave-cell--fail enclave-cell--acro"
        assert HOSTILE not in html
        assert "&lt;script&gt;document.title=&#34;owned&#34;&lt;/script&gt;" in html
