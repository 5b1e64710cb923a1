"""The portal's public pages in headless Chromium, over real HTTP: the register and the catalogue.

Every page is loaded in Debian's Chromium (driven by Playwright), checked by axe-core for serious
or critical accessibility violations, screenshotted under ``test-artifacts/portal/`` (kept by CI,
never committed) and checked for what it must never show.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from enclave.domain.access.states import ProjectState
from enclave.portal.web import ASSET_CACHE, SECURITY_HEADERS
from enclave.wiring import Services
from tests.conftest import OPERATOR, LiveServer
from tests.factories import make_project
from tests.helpers.portal import HOSTILE, check_page

pytestmark = pytest.mark.slow


@pytest.fixture
def portal(services: Services) -> Iterator[tuple[LiveServer, int]]:
    """A live API with the portal, one active project whose title and summary carry markup, and one
    suspended project."""
    project = make_project(services, "lead", title=f"Diabetes care {HOSTILE}")
    other = make_project(services, "second", title="A suspended study of regions")
    services.access.set_project_state(OPERATOR, other, ProjectState.SUSPENDED, "ethics approval lapsed")
    with LiveServer(services) as server:
        yield server, project


def test_the_register_and_the_catalogue_read_well_without_signing_in(
    portal: tuple[LiveServer, int], browser: Any
) -> None:
    """The public reads the register (newest first, with state tags) and each project's page, the
    catalogue and each dataset's columns and versions; markup in a project's title is shown as text
    and never runs; members, budgets and counts are never shown."""
    server, project = portal
    page = browser.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{server.url}/portal/")
    check_page(page, "home")
    page.get_by_role("link", name="The register of approved projects").click()
    page.wait_for_url("**/portal/register")
    check_page(page, "register")
    rows = page.locator("tbody tr")
    assert rows.count() == 2
    assert "A suspended study of regions" in rows.nth(0).inner_text()  # the newest first
    assert "Suspended" in rows.nth(0).inner_text()
    assert HOSTILE in rows.nth(1).inner_text()  # the title's markup, as text
    assert page.title() != "owned"
    assert page.locator("tbody img").count() == 0
    page.locator(f'tr[data-project="{project}"] a').click()
    page.wait_for_url(f"**/portal/register/{project}")
    check_page(page, "project")
    body = page.inner_text("main")
    assert "Active" in body
    assert "demographics" in body
    assert not re.search(r"\blead\b|epsilon|budget", body, re.IGNORECASE)  # no member, no budget
    page.get_by_role("link", name="demographics").click()
    page.wait_for_url("**/portal/datasets/demographics")
    check_page(page, "dataset")
    table = page.inner_text("table")
    assert "region" in table
    assert "Category" in table
    assert "Version 1, published" in page.inner_text("main")
    assert not re.search(r"\d rows|persons", page.inner_text("main"))  # no count of the data
    page.get_by_role("link", name="Datasets", exact=True).click()
    page.wait_for_url("**/portal/datasets")
    check_page(page, "catalogue")
    page.goto(f"{server.url}/portal/register/999999")
    check_page(page, "not-found")
    assert page.get_by_role("heading", name="Page not found").is_visible()
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{server.url}/portal/register")
    check_page(page, "register-narrow")


def test_headers_assets_and_addresses(portal: tuple[LiveServer, int]) -> None:
    """Every portal response forbids inline script and framing; assets are cached for a year under
    an address that names their content; an unknown or malformed address is the HTML not-found page,
    not the API's JSON; the API's own responses are unchanged and the pages are not in OpenAPI."""
    server, project = portal
    with httpx.Client(base_url=server.url) as c:
        page = c.get("/portal/register")
        assert page.status_code == 200
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>document.title" not in page.text  # escaped, never raw
        css = next(
            part.split('"')[0] for part in page.text.split('href="')[1:] if ".css" in part.split('"')[0]
        )
        asset = c.get(css)
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == ASSET_CACHE
        assert "GDS Transport" not in asset.text
        for address in (
            "/portal/nowhere",
            "/portal/register/abc",
            f"/portal/register/{project}0",
            "/portal/datasets/x",
        ):
            missing = c.get(address)
            assert missing.status_code == 404, address
            assert missing.headers["content-type"].startswith("text/html")
            assert "Page not found" in missing.text
        api = c.get("/register")
        assert api.headers["content-type"] == "application/json"
        assert "content-security-policy" not in api.headers
        assert not [p for p in c.get("/openapi.json").json()["paths"] if p.startswith("/portal")]
