"""The custodian's dataset pages in Chromium over real HTTP: upload an extract with its spec, read
the ingest report, the versions and the linkage report, set the budget policy; refusals on the page
with the error summary, and nothing left behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from enclave.domain.identity.accounts import Role
from enclave.wiring import Services
from tests.conftest import OPERATOR, Account, LiveServer, make_account
from tests.helpers.portal import check_page, form_token, new_page, sign_in, sign_in_http
from tests.integration.test_ingest import HEADER, ROWS_BAD, ROWS_OK, SPECS

pytestmark = pytest.mark.slow


@pytest.fixture
def server(services: Services) -> Iterator[LiveServer]:
    with LiveServer(services) as live:
        yield live


def write_extract(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def leftovers(services: Services) -> list[Path]:
    return list(services.settings.holding_store.glob(".upload-*"))


def test_a_custodian_uploads_an_extract_and_reads_its_report(
    server: LiveServer, services: Services, browser: Any, tmp_path: Path
) -> None:
    custodian = make_account(services, "custodian", Role.CUSTODIAN)
    page = new_page(browser)
    sign_in(page, server.url, custodian)
    page.get_by_role("link", name="My datasets").click()
    page.wait_for_url("**/portal/custodian/datasets")
    check_page(page, "custodian-datasets-empty")
    page.get_by_role("button", name="Upload an extract").click()
    page.wait_for_url("**/portal/custodian/upload")
    check_page(page, "custodian-upload")

    # Nothing chosen: the error summary, and nothing published.
    page.get_by_role("button", name="Upload and publish").click()
    page.wait_for_selector(".govuk-error-summary")
    check_page(page, "custodian-upload-empty")
    assert "Choose the source's spec" in page.inner_text(".govuk-error-summary")

    # Wrong columns: refused with the pipeline's own sentence.
    page.set_input_files("#spec", str(SPECS / "admissions.yaml"))
    page.set_input_files(
        "#extract", str(write_extract(tmp_path / "wrong.csv", ["1,2"], "nhs_number,admission_id"))
    )
    page.get_by_role("button", name="Upload and publish").click()
    page.wait_for_selector(".govuk-error-summary")
    check_page(page, "custodian-upload-refused")
    assert "missing column" in page.inner_text(".govuk-error-summary")
    assert services.catalog.list_datasets(OPERATOR) == []
    assert leftovers(services) == []

    # A good extract, with a few bad rows: published, and the report counts them by reason.
    page.set_input_files("#spec", str(SPECS / "admissions.yaml"))
    page.set_input_files(
        "#extract", str(write_extract(tmp_path / "admissions.csv", ROWS_OK + list(ROWS_BAD)))
    )
    page.get_by_role("button", name="Upload and publish").click()
    page.wait_for_url("**/portal/custodian/datasets/admissions/versions/1?done=ingested")
    check_page(page, "custodian-report")
    main = page.inner_text("main")
    assert "Version 1 of admissions is published" in main
    assert f"{len(ROWS_OK)} rows" in main
    for reason in ROWS_BAD.values():
        assert reason.split(":")[0] in main
    assert "943 476 5919" not in page.content()  # counts only, never a value
    assert leftovers(services) == []

    page.get_by_role("link", name="Admissions", exact=False).first.click()
    page.wait_for_url("**/portal/custodian/datasets/admissions")
    check_page(page, "custodian-dataset")
    assert "Current" in page.inner_text("table")

    # The budget policy: a bad value is refused on the page, a good one saved.
    page.get_by_label("Largest epsilon").fill("a lot")
    page.get_by_role("button", name="Save the budget policy").click()
    page.wait_for_selector(".govuk-error-summary")
    check_page(page, "custodian-policy-refused")
    assert page.get_by_label("Largest epsilon").input_value() == "a lot"  # what was typed is kept
    page.get_by_label("Largest epsilon").fill("0.5")
    page.get_by_role("button", name="Save the budget policy").click()
    page.wait_for_selector(".govuk-notification-banner--success")
    assert services.catalog.get_dataset(OPERATOR, "admissions")["max_epsilon"] == "0.5"

    page.goto(f"{server.url}/portal/custodian/linkage")
    check_page(page, "custodian-linkage")


def test_uploads_over_the_limit_or_without_the_token_leave_nothing(
    server: LiveServer, services: Services, tmp_path: Path
) -> None:
    custodian = make_account(services, "custodian", Role.CUSTODIAN)
    services.settings.max_upload_mb = 1
    big = write_extract(tmp_path / "big.csv", ROWS_OK * 30_000)
    with httpx.Client(base_url=server.url, timeout=120) as c:
        sign_in_http(c, custodian)
        token = form_token(c.get("/portal/custodian/upload").text)
        files = {
            "spec": ("admissions.yaml", (SPECS / "admissions.yaml").read_bytes(), "application/yaml"),
            "extract": ("big.csv", big.read_bytes(), "text/csv"),
        }
        too_large = c.post("/portal/custodian/upload", data={"csrf_token": token}, files=files)
        assert too_large.status_code == 413
        assert "larger than the limit of 1 MiB" in too_large.text
        assert "govuk-error-summary" in too_large.text
        small = {**files, "extract": ("a.csv", "\n".join([HEADER, *ROWS_OK]).encode(), "text/csv")}
        forged = c.post("/portal/custodian/upload", data={"csrf_token": "0" * 64}, files=small)
        assert forged.status_code == 403
        assert c.post("/portal/custodian/upload", files=small).status_code == 403
    assert services.catalog.list_datasets(OPERATOR) == []
    assert leftovers(services) == []


def test_other_custodians_and_other_roles_are_refused(
    server: LiveServer, services: Services, tmp_path: Path
) -> None:
    owner = make_account(services, "custodian", Role.CUSTODIAN)
    other = make_account(services, "other", Role.CUSTODIAN)
    researcher: Account = make_account(services, "rosa", Role.RESEARCHER)
    with httpx.Client(base_url=server.url) as c:
        sign_in_http(c, owner)
        token = form_token(c.get("/portal/custodian/upload").text)
        extract = "\n".join([HEADER, *ROWS_OK]).encode()
        ok = c.post(
            "/portal/custodian/upload",
            data={"csrf_token": token},
            files={
                "spec": ("admissions.yaml", (SPECS / "admissions.yaml").read_bytes()),
                "extract": ("a.csv", extract),
            },
        )
        assert ok.status_code == 303, ok.text
    with httpx.Client(base_url=server.url) as c:
        sign_in_http(c, other)
        assert "admissions" not in c.get("/portal/custodian/datasets").text
        refused = c.get("/portal/custodian/datasets/admissions")
        assert refused.status_code == 403
        assert "You do not have access" in refused.text
        assert c.get("/portal/custodian/datasets/admissions/versions/1").status_code == 403
    with httpx.Client(base_url=server.url) as c:
        sign_in_http(c, researcher)
        for address in (
            "/portal/custodian/datasets",
            "/portal/custodian/upload",
            "/portal/custodian/linkage",
        ):
            assert c.get(address).status_code == 403, address
        assert "My datasets" not in c.get("/portal/").text  # the navigation shows only what one may open
