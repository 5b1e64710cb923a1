"""The whole Five Safes journey, over real HTTP and in headless Chromium, on the suite's database.

The API (with the portal) and the hub (JupyterHub, its proxy, sandboxed workspaces) run as processes
(tests.helpers.hub.running_enclave), on a fresh database where a custodian has ingested two
synthetic datasets. Then:

1. a researcher fills the access-request form page by page (task list, question pages, check your
   answers) and submits it;
2. the custodian approves it in the portal with a narrower scope than asked (fewer columns, a
   smaller epsilon, a stricter small-count threshold), part by part, through the decision form;
3. the researcher opens My projects and follows "Open the workspace" into JupyterLab: single
   sign-on from the portal, no second password, the workspace sandboxed;
4. in the workspace's kernel (over the websocket, as tests/e2e/test_workspaces.py drives it) the
   getting-started notebook's cells run, then a table of released counts and a figure are written
   and submitted through the airlock with ``ws.outputs``, naming the release they come from;
5. two reviewers outside the project each open the request from the output-checking queue, read
   its previews and approve every file through the decision form;
6. the researcher downloads each released file from the portal; its SHA-256 is the release's.

Every portal page goes through check_page (axe-core, the design system's styles, a screenshot);
every step is screenshotted as test-artifacts/portal/journey-<db>-NN-<step>.png. What each step
changed is read back from the services. Waits poll with deadlines in minutes and fail with the
processes' own output.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from enclave.domain.access.form import validate_form
from enclave.domain.access.states import ProjectState, RequestState
from enclave.domain.identity.accounts import Actor, Role
from enclave.domain.outputs.states import OutputState
from enclave.hub.sandbox import sandbox_problems
from enclave.ingest.spec import parse_spec
from enclave.synth import generate
from enclave.wiring import Services
from tests.conftest import OPERATOR, REQUIRE_SANDBOX, Account, DatabaseFactory, make_account
from tests.helpers.applications import apply_through_the_form
from tests.helpers.hub import PROCESS_DEADLINE, Enclave, HubSession, Kernel, running_enclave
from tests.helpers.portal import SHOTS, check_page, new_page, sign_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(sandbox_problems()) and not REQUIRE_SANDBOX,
        reason="sandboxing needs root and bubblewrap (CI has both and sets ENCLAVE_REQUIRE_SANDBOX)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "enclave" / "specs"
GETTING_STARTED = ROOT / "notebooks" / "01-getting-started.ipynb"
DEADLINE_MS = PROCESS_DEADLINE * 1000

RESEARCHER, CUSTODIAN, REVIEWERS = "ada", "carl", ("rev1", "rev2")
DATASETS = ("demographics", "prescriptions")  # what the getting-started notebook queries
TITLE = "Prescribing and age structure in the synthetic population"
ASKED_EPSILON = Decimal("3.0")
# The custodian's narrowing: one column less of each dataset, half the epsilon, a threshold of 20.
APPROVED = {
    "demographics": {"drop": "deprivation_quintile", "epsilon": "1.5", "min_count": "20"},
    "prescriptions": {"drop": "prescribed_date"},
}
SCOPE = {"demographics": ["year_of_birth", "sex", "region"], "prescriptions": ["drug_class"]}
CONTEXT = "Table 1 and Figure 1 of the paper: registered people by sex."
CONTROLS = "Counts copied unrounded from DP release {release}; the figure draws the same counts."


def access_request(today: date) -> dict[str, Any]:
    """What the researcher asks for: two datasets, four and two columns, epsilon 3, a year."""
    return {
        "title": TITLE,
        "lay_summary": "How many people are registered, by sex and age, and who is prescribed what.",
        "organisation": "University of Example, Department of Epidemiology",
        "purpose": "Describe the population's age structure and prescribing by drug class, by sex.",
        "public_benefit": "Open, reproducible baseline tables that service planners can reuse.",
        "legal_basis": "gdpr_6_1_e_and_9_2_j",
        "ethics_reference": "REC-26/EX/0042",
        "datasets": [
            {
                "dataset": "demographics",
                "columns": ["year_of_birth", "sex", "region", "deprivation_quintile"],
                "justification": "Sex, age and region stratify every table; deprivation for a later one.",
            },
            {
                "dataset": "prescriptions",
                "columns": ["drug_class", "prescribed_date"],
                "justification": "Drug classes describe prescribing; the date places it in a year.",
            },
        ],
        "team": [{"username": RESEARCHER, "role": "lead"}],
        "start_date": today,
        "end_date": today + timedelta(days=365),
        "budget": {"epsilon": str(ASKED_EPSILON)},
        "analysis_plan": "DP counts by sex, histograms of year of birth, persons by drug class.",
        "output_plan": "One table of counts and one figure, released through the airlock.",
    }


@dataclass
class Journey:
    """The running enclave, its accounts, and the numbered screenshots of this run."""

    enclave: Enclave
    db: str
    accounts: dict[str, Account]
    shots: list[str] = field(default_factory=list)

    @property
    def services(self) -> Services:
        return self.enclave.services

    @property
    def portal(self) -> str:
        return f"{self.enclave.api_url}/portal"

    def actor(self, username: str) -> Actor:
        return Actor.for_user(self.services.identity.get_user(OPERATOR, username))

    def shot(self, page: Any, step: str, *, portal: bool = True) -> None:
        """Screenshot the step as journey-<db>-NN-<step>; a portal page gets every check_page check
        (JupyterLab is not the portal: a screenshot only)."""
        name = f"journey-{self.db}-{len(self.shots) + 1:02d}-{step}"
        self.shots.append(name)
        if portal:
            check_page(page, name)
        else:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"{name}.png"))

    @contextmanager
    def explained(self, what: str) -> Iterator[None]:
        """A failure inside the block says what was being waited for and ends with the processes'
        own output (the API's, the hub's, the workspaces')."""
        try:
            yield
        except Exception as exc:
            raise AssertionError(f"{what}: {exc}\n\n{self.enclave.output()}") from exc


@pytest.fixture
def live(database_factory: DatabaseFactory, tmp_path: Path) -> Iterator[Journey]:
    """The enclave as processes; the custodian has ingested demographics and prescriptions (1,000
    synthetic people); the researcher is accredited; two reviewers stand outside every project."""
    for stale in SHOTS.glob(f"journey-{database_factory.backend}-*.png"):
        stale.unlink()
    population = tmp_path / "population"
    generate(1000, 7, population)
    accounts: dict[str, Account] = {}

    def prepare(services: Services) -> dict[str, int]:
        accounts[RESEARCHER] = make_account(services, RESEARCHER, Role.RESEARCHER)
        accounts[CUSTODIAN] = make_account(services, CUSTODIAN, Role.CUSTODIAN)
        for name in REVIEWERS:
            accounts[name] = make_account(services, name, Role.REVIEWER)
        custodian = Actor.for_user(services.identity.get_user(OPERATOR, CUSTODIAN))
        for dataset in DATASETS:
            text = (SPECS / f"{dataset}.yaml").read_text().replace("custodian: custodian", "custodian: carl")
            report = services.catalog.ingest(
                custodian, parse_spec(text, base=SPECS), population / f"{dataset}.csv"
            )
            assert report.rows_written > 0, report
        return {}

    with running_enclave(database_factory, tmp_path / "enclave", prepare) as enclave:
        yield Journey(enclave, database_factory.backend, accounts)


# --- 1. the access request -------------------------------------------------------------------------


def apply_for_access(page: Any, live: Journey) -> int:
    """Step 1: the researcher, signed in on ``page``, reads the catalogue, then fills the
    access-request form page by page (:func:`access_request`'s answers) and submits it. Returns the
    request's id, read from the page it lands on."""
    page.goto(f"{live.portal}/datasets")
    live.shot(page, "researcher-reads-the-catalogue")
    for dataset in DATASETS:  # each dataset asked for has its page in the catalogue
        assert page.locator(f'main a[href$="/datasets/{dataset}"]').count() == 1, dataset
    answers = access_request(live.services.access.today())
    request_id = apply_through_the_form(page, live.enclave.api_url, answers, live.shot)
    # Every answer, as typed in the browser (a dataset's columns in the page's order).
    asked = live.services.access.get(OPERATOR, request_id).form.model_dump()
    expected = validate_form(answers).model_dump()
    for form in (asked, expected):
        for wanted in form["datasets"]:
            wanted["columns"] = sorted(wanted["columns"])
    assert asked == expected
    return request_id


# --- 2. the custodian's decision -------------------------------------------------------------------


def send_decision(page: Any) -> Any:
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Send your decision").click()
    return navigation.value


def custodian_approves_a_narrower_scope(browser: Any, live: Journey, request_id: int) -> int:
    """The custodian finds the request in their queue and approves each part with narrowing; returns
    the project's id."""
    page = new_page(browser)
    sign_in(page, live.enclave.api_url, live.accounts[CUSTODIAN])
    page.get_by_role("link", name="Access requests").first.click()
    page.wait_for_url("**/portal/custodian/requests")
    live.shot(page, "custodian-queue")
    row = page.locator(f'tr[data-request="{request_id}"]')
    assert TITLE in row.inner_text()
    assert "Submitted" in row.inner_text()
    row.locator("a").first.click()
    page.wait_for_url(f"**/custodian/requests/{request_id}")
    live.shot(page, "custodian-request")
    main = page.inner_text("main")
    for text in ("REC-26/EX/0042", "deprivation_quintile", "prescribed_date"):
        assert text in main, text

    for dataset, narrowing in APPROVED.items():
        page.get_by_role("link", name=f"Decide on {dataset}").click()
        page.wait_for_url(f"**/decision?dataset={dataset}")
        page.get_by_label("Approve", exact=True).check()
        page.get_by_label(narrowing["drop"], exact=True).uncheck()
        if "epsilon" in narrowing:
            page.get_by_label("Epsilon you approve (optional)").fill(narrowing["epsilon"])
        if "min_count" in narrowing:
            page.get_by_label("Smallest count allowed in outputs (optional)").fill(narrowing["min_count"])
        page.get_by_label("Why you approve").fill(f"Approved without {narrowing['drop']}, not needed.")
        live.shot(page, f"custodian-decides-on-{dataset}")
        answer = send_decision(page)
        assert answer.status == 200, page.inner_text("main")
        page.wait_for_url(f"**/custodian/requests/{request_id}?done=approved")
        assert "You approved your part of this request." in page.inner_text(".govuk-notification-banner")
    live.shot(page, "custodian-approved")

    found = live.services.access.get(OPERATOR, request_id)
    assert found.state is RequestState.APPROVED
    assert found.project_id is not None
    project = live.services.access.project(OPERATOR, found.project_id)
    assert project.state is ProjectState.ACTIVE
    assert project.scope == SCOPE  # fewer columns than asked, of both datasets
    assert project.epsilon == Decimal(APPROVED["demographics"]["epsilon"]) < ASKED_EPSILON
    assert project.conditions == {"min_count": 20}
    assert project.members == {RESEARCHER: "lead"}
    page.context.close()
    return found.project_id


# --- 3. into the workspace -------------------------------------------------------------------------


def researcher_opens_the_workspace(page: Any, live: Journey, project_id: int) -> str:
    """From My projects to JupyterLab through the hub, signed in by the portal session; returns the
    workspace's server name."""
    server = f"p{project_id}"
    page.goto(f"{live.portal}/")
    page.get_by_role("link", name="My projects").click()
    page.wait_for_url("**/portal/projects")
    live.shot(page, "researcher-my-projects")
    row = page.locator(f'tr[data-project="{project_id}"]')
    assert "Active" in row.inner_text()
    link = row.get_by_role("link", name=f"Open the workspace of {TITLE}")
    assert link.get_attribute("href") == f"{live.enclave.hub_url}/hub/spawn/{RESEARCHER}/{server}"

    logins: list[tuple[str, int]] = []

    def seen(response: Any) -> None:
        if "/hub/login" in response.url:
            logins.append((response.url, response.status))

    page.on("response", seen)
    with live.explained(f"the workspace {server} did not open in JupyterLab"):
        link.click()
        page.wait_for_url(f"**/user/{RESEARCHER}/{server}/lab**", timeout=DEADLINE_MS)
        page.locator(".lm-MenuBar-itemLabel", has_text="File").first.wait_for(timeout=DEADLINE_MS)
        page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=DEADLINE_MS)
        page.locator(".jp-DirListing-item", has_text="examples").wait_for(timeout=DEADLINE_MS)
    page.remove_listener("response", seen)
    # Single sign-on: the hub's login page answered with a redirect, never with its password form.
    assert logins, "the hub never asked who the browser is"
    assert all(status in (302, 303) for _, status in logins), logins
    assert page.locator("input[type=password]").count() == 0
    live.shot(page, "jupyterlab-opened-from-the-portal", portal=False)
    return server


# --- 4. the notebook, then the airlock -------------------------------------------------------------


def cell_source(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else str(source)


def run(live: Journey, kernel: Kernel, code: str, what: str) -> str:
    with live.explained(f"{what} did not run in the workspace's kernel"):
        result = kernel.run(code, timeout=PROCESS_DEADLINE)
        assert result.status == "ok", f"{result}\n--- the cell ---\n{code}"
    return result.stdout


OUTPUTS_CELL = """
import csv, hashlib, json, pathlib

out = pathlib.Path("outputs")
out.mkdir(exist_ok=True)
rows = sorted(release.values, key=lambda r: r["sex"])
with open(out / "by_sex.csv", "w", newline="") as f:
    table = csv.writer(f, lineterminator="\\n")
    table.writerow(["sex", "count"])
    table.writerows([r["sex"], r["count"]] for r in rows)
    table.writerow(["not recorded", 0])  # a structural zero: the checks warn on it, a reviewer sees it

labels, counts = [r["sex"] for r in rows], [r["count"] for r in rows]
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.8, 3.2), dpi=100)
    ax.bar(labels, counts, color="#1d70b8")
    ax.set_title("People by sex (DP counts)")
    fig.savefig(out / "by_sex.png")
    drawn_with = "matplotlib"
except ImportError:  # not in this environment: Pillow (a dependency of Enclave) draws the bars
    from PIL import Image, ImageDraw
    image = Image.new("RGB", (480, 320), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 12), "People by sex (DP counts)", fill="black")
    draw.line([(60, 280), (440, 280)], fill="black", width=2)
    for i, (label, n) in enumerate(zip(labels, counts)):
        height = int(220 * n / max(counts))
        draw.rectangle([(100 + i * 180, 280 - height), (220 + i * 180, 280)], fill=(29, 112, 184))
        draw.text((155 + i * 180, 290), label, fill="black")
    image.save(out / "by_sex.png")
    drawn_with = "pillow"

ws.outputs.add(out / "by_sex.csv", description="Registered people by sex", derived_from=[release],
               count_columns=["count"])
ws.outputs.add(out / "by_sex.png", description="The same counts as a bar chart", derived_from=[release])
status = ws.outputs.submit(context=CONTEXT, controls=CONTROLS.format(release=release.id))
from PIL import Image
print(json.dumps({
    "request": status.id, "state": status.state, "release": release.id, "drawn_with": drawn_with,
    "files": {f.name: f.check_status for f in status.files},
    "size": Image.open(out / "by_sex.png").size,
}))
"""


def researcher_runs_the_notebook_and_submits_outputs(
    page: Any, live: Journey, project_id: int, server: str
) -> dict[str, Any]:
    """The getting-started notebook's cells, then a table and a figure into an output request;
    returns what the outputs cell printed, and the CSV as written in the workspace."""
    secret = next(c["value"] for c in page.context.cookies() if c["name"] == "enclave-session")
    hub = HubSession(live.enclave.hub_url, RESEARCHER)
    with live.explained("the hub did not accept the portal session for its API"):
        assert hub.sign_in_from_portal(secret).status_code == 302  # the same single sign-on
    kernel = hub.kernel(server)
    try:
        # Sandboxed as CI runs it: its own account, no view of the enclave's stores.
        store = str(live.services.settings.research_store)
        facts = run(
            live,
            kernel,
            "import json, os, pwd\n"
            "print(json.dumps({'uid': os.getuid(), 'user': pwd.getpwuid(os.getuid()).pw_name,"
            f" 'store': os.path.exists({store!r}), 'socket': os.environ.get('ENCLAVE_API_SOCKET')}}))",
            "the sandbox's facts",
        )
        sandbox = json.loads(facts)
        assert sandbox["uid"] != 0, sandbox
        assert sandbox["user"].startswith(f"ews-{server}-"), sandbox
        assert sandbox["store"] is False, sandbox
        assert sandbox["socket"], sandbox
        assert "UNSAFE DEVELOPMENT MODE" not in live.enclave.log.read_text(errors="replace")

        # The notebook as the workspace has it (copied into its home), cell after cell.
        answer = hub.server_get(server, "api/contents/examples/01-getting-started.ipynb?type=notebook")
        assert answer.status_code == 200, answer.text[:300]
        cells = [cell_source(c) for c in answer.json()["content"]["cells"] if c["cell_type"] == "code"]
        repository = json.loads(GETTING_STARTED.read_text())
        assert cells == [cell_source(c) for c in repository["cells"] if c["cell_type"] == "code"]
        assert any("ws.run(" in c for c in cells)
        for number, code in enumerate(cells, start=1):
            run(live, kernel, code, f"cell {number} of the getting-started notebook")

        run(live, kernel, f"CONTEXT = {CONTEXT!r}\nCONTROLS = {CONTROLS!r}", "the request's text")
        printed = json.loads(run(live, kernel, OUTPUTS_CELL, "the outputs cell").strip().splitlines()[-1])
    finally:
        kernel.close()
    written = hub.server_get(server, "api/contents/outputs/by_sex.csv?type=file&format=text")
    assert written.status_code == 200, written.text[:300]
    printed["csv"] = written.json()["content"]
    hub.close()

    # What the researcher sees in the workspace: the notebook, and the files they wrote.
    lab = f"{live.enclave.hub_url}/user/{RESEARCHER}/{server}/lab"
    with live.explained("JupyterLab did not show the notebook"):
        page.goto(f"{lab}/tree/examples/01-getting-started.ipynb")
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=DEADLINE_MS)
        # its own kernel, started by JupyterLab from the notebook's kernelspec
        kernel_name = page.locator(".jp-NotebookPanel .jp-Toolbar-kernelName", has_text="Python 3")
        kernel_name.wait_for(timeout=DEADLINE_MS)
    live.shot(page, "jupyterlab-getting-started-notebook", portal=False)
    with live.explained("JupyterLab did not list the outputs folder"):
        page.goto(f"{lab}/tree/outputs")
        page.locator(".jp-DirListing-item", has_text="by_sex.png").wait_for(timeout=DEADLINE_MS)
    live.shot(page, "jupyterlab-outputs-written", portal=False)

    # The airlock has the request, in review, with both files derived from the notebook's release.
    assert printed["state"] == "in_review", printed
    view = live.services.outputs.show(OPERATOR, printed["request"])
    assert view.request.state is OutputState.IN_REVIEW
    assert view.request.project_id == project_id
    assert {f.name: f.derived_from for f in view.current_files} == {
        "by_sex.csv": (printed["release"],),
        "by_sex.png": (printed["release"],),
    }
    releases = {r.id: r for r in live.services.queries.releases(live.actor(RESEARCHER), project_id)}
    by_sex = releases[printed["release"]]
    assert list(by_sex.plan.group_by) == ["sex"]
    assert (
        printed["csv"]
        == "sex,count\n"
        + "".join(f"{r['sex']},{r['count']}\n" for r in sorted(by_sex.values, key=lambda r: r["sex"]))
        + "not recorded,0\n"
    )
    budget = live.services.budgets.account(OPERATOR, project_id)
    assert budget.spent.epsilon == sum((r.epsilon for r in releases.values()), Decimal(0)) > 0
    assert budget.granted.epsilon == Decimal(APPROVED["demographics"]["epsilon"])

    page.goto(f"{live.portal}/projects/{project_id}")
    live.shot(page, "researcher-project-output-in-review")
    assert "In review" in page.locator(f'tr[data-output="{printed["request"]}"]').inner_text()
    return printed


# --- 5. two reviewers ------------------------------------------------------------------------------


def flagged_cells(checks: Any) -> dict[tuple[int, str], str]:
    """The cells the checks placed a failure or warning on: (row, column) -> the worst status."""
    found: dict[tuple[int, str], str] = {}
    for result in (checks or {}).get("results", []):
        if result["status"] not in ("fail", "warn"):
            continue
        for cell in result.get("cells", []):
            where = (int(cell["row"]), str(cell["column"]))
            if found.get(where) != "fail":
                found[where] = result["status"]
    return found


def reviewer_approves(
    browser: Any, live: Journey, username: str, output_id: int, written: str, size: list[int]
) -> None:
    view = live.services.outputs.show(OPERATOR, output_id)
    files = {f.name: f for f in view.current_files}
    page = new_page(browser)
    sign_in(page, live.enclave.api_url, live.accounts[username])
    page.get_by_role("link", name="Output checking").click()
    page.wait_for_url("**/portal/reviewer/outputs")
    live.shot(page, f"{username}-queue")
    page.locator(f'tr[data-output="{output_id}"] a').first.click()
    page.wait_for_url(f"**/reviewer/outputs/{output_id}")
    main = page.inner_text("main")
    for text in (CONTEXT, TITLE, RESEARCHER, "small_counts", "provenance", "manual_review"):
        assert text in main, text

    # The table's preview: every cell of the file as written, each cell the checks flagged marked.
    table = files["by_sex.csv"]
    rows = list(csv.reader(io.StringIO(written)))
    header, body = rows[0], rows[1:]
    preview = page.locator(f'table[data-file="{table.id}"]')
    assert preview.locator("thead th").all_inner_texts()[1:] == header
    assert preview.locator("tbody tr").count() == len(body)
    flagged = flagged_cells(table.checks)
    for number, values in enumerate(body, start=1):
        cells = preview.locator(f'tr[data-row="{number}"] td')
        assert cells.count() == len(header)
        for index, (column, value) in enumerate(zip(header, values, strict=True)):
            cell = cells.nth(index)
            assert cell.inner_text().split("\n")[0].strip() == value, (number, column)
            status = flagged.get((number, column))
            if status is None:
                assert cell.get_attribute("data-flag") is None, (number, column)
            else:  # highlighted, with a marker leading to the rule's sentence
                assert cell.get_attribute("data-flag") == status, (number, column)
                assert ("Failed:" if status == "fail" else "Warning:") in cell.inner_text()
    # The structural zero (the last row's count) is highlighted: the checks warn on it, at least.
    assert flagged.get((len(body), "count")) in ("warn", "fail"), flagged
    assert preview.locator(f'tr[data-row="{len(body)}"] td[data-flag]').count() >= 1
    # The figure, from the reviewer-only held route, at the size it was drawn.
    page.wait_for_function(
        "() => { const i = document.querySelector('img.enclave-image-preview');"
        " return i !== null && i.complete && i.naturalWidth > 0; }",
        timeout=DEADLINE_MS,
    )
    image = page.locator("img.enclave-image-preview")
    assert image.get_attribute("alt") == "Preview of by_sex.png"
    assert page.evaluate("document.querySelector('img.enclave-image-preview').naturalWidth") == size[0]
    live.shot(page, f"{username}-request-previews")

    # Approve every file; a failed check, if any, is overridden with a reason (it blocks otherwise).
    for name, file in files.items():
        page.get_by_label(f"Approve {name}", exact=True).check()
        page.get_by_label(f"Comment on {name}").fill(f"{username}: {name} traces to the release; fine.")
        failed = [r["rule"] for r in (file.checks or {}).get("results", []) if r["status"] == "fail"]
        for rule in failed:
            page.get_by_label(f"Reason to override the failed check {rule} on {name} (optional)").fill(
                f"Checked by hand: {rule} on {name} is acceptable for DP counts."
            )
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Send your decisions").click()
    assert navigation.value.status == 200, page.inner_text("main")
    assert page.url.endswith(f"/reviewer/outputs/{output_id}?done=reviewed")
    assert "Your decisions are recorded." in page.inner_text("main")
    live.shot(page, f"{username}-decided")
    page.context.close()


# --- 6. the download -------------------------------------------------------------------------------


def researcher_downloads_the_released_files(page: Any, live: Journey, output_id: int, written: str) -> None:
    view = live.services.outputs.show(OPERATOR, output_id)
    assert view.request.state is OutputState.RELEASED
    released = {r.name: r for r in view.released}
    assert set(released) == {"by_sex.csv", "by_sex.png"}
    page.goto(f"{live.portal}/outputs/{output_id}")
    live.shot(page, "researcher-output-released")
    main = page.inner_text("main")
    assert "Released" in main
    for username in REVIEWERS:
        assert f"{username}: by_sex.csv traces to the release; fine." in main
    for name, record in released.items():
        assert record.sha256 in main
        with page.expect_download() as downloading:
            page.get_by_role("link", name=f"Download {name}").click()
        saved = downloading.value.path()
        assert saved is not None
        content = Path(saved).read_bytes()
        assert hashlib.sha256(content).hexdigest() == record.sha256, name
        if name == "by_sex.csv" and not next(f for f in view.current_files if f.name == name).changes:
            assert content.decode() == written  # what the workspace wrote, byte for byte
    downloads = live.enclave.events("output.downloaded")
    assert len([e for e in downloads if e["actor"] == RESEARCHER]) == len(released)


# --- the journey -----------------------------------------------------------------------------------


@pytest.mark.timeout(1800)
def test_the_five_safes_journey_from_access_request_to_download(live: Journey, browser: Any) -> None:
    researcher = new_page(browser)
    sign_in(researcher, live.enclave.api_url, live.accounts[RESEARCHER])

    request_id = apply_for_access(researcher, live)
    assert live.services.access.get(OPERATOR, request_id).state is RequestState.SUBMITTED

    project_id = custodian_approves_a_narrower_scope(browser, live, request_id)

    server = researcher_opens_the_workspace(researcher, live, project_id)

    printed = researcher_runs_the_notebook_and_submits_outputs(researcher, live, project_id, server)
    output_id = printed["request"]

    project = live.services.access.project(OPERATOR, project_id)
    for number, username in enumerate(REVIEWERS):
        assert username not in project.members
        reviewer_approves(browser, live, username, output_id, printed["csv"], printed["size"])
        state = live.services.outputs.show(OPERATOR, output_id).request.state
        assert state is (OutputState.IN_REVIEW if number == 0 else OutputState.RELEASED), state

    researcher_downloads_the_released_files(researcher, live, output_id, printed["csv"])
    assert len(live.shots) >= 18
    assert all(re.fullmatch(rf"journey-{live.db}-\d\d-[a-z0-9-]+", name) for name in live.shots)
