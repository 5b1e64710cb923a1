"""Driving the portal in tests: signing in over plain HTTP (httpx) or in Chromium (Playwright), and
the checks every page gets in the browser (no traceback, the design system's styles, axe-core)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from enclave.portal.web import assets_dir
from tests.conftest import REQUIRE_SANDBOX, Account

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(sys.prefix) / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "portal"
HOSTILE = '<script>document.title="owned"</script><img src=x onerror="document.title=\'owned\'">'
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = TOKEN_FIELD.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in_http(client: httpx.Client, account: Account, *, next_page: str = "") -> httpx.Response:
    """Sign in through the portal's form, as a browser would; the client keeps the cookie."""
    form = client.get("/portal/sign-in")
    assert form.status_code == 200, form.text
    return client.post(
        "/portal/sign-in",
        data={
            "csrf_token": form_token(form.text),
            "username": account.username,
            "password": account.password,
            "next": next_page,
        },
    )


@contextmanager
def chromium() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if REQUIRE_SANDBOX:
            pytest.fail("Chromium is not installed (Debian's chromium package; .ci/run installs it)")
        pytest.skip("Chromium is not installed")
    assert AXE.is_file(), "axe-core is not installed: run make setup"
    assert (assets_dir() / "portal.css").is_file(), "the portal's assets are not built: run make setup"
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any) -> Any:
    page = browser.new_page()
    page.set_default_timeout(60_000)
    return page


def sign_in(page: Any, base_url: str, account: Account) -> None:
    """Sign in through the form, by keyboard as a user without a mouse would."""
    page.goto(f"{base_url}/portal/sign-in")
    page.get_by_label("Username").fill(account.username)
    page.get_by_label("Password").fill(account.password)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(re.compile(r".*/portal/(?!sign-in).*"))


def check_page(page: Any, name: str) -> None:
    """No traceback, a real stylesheet, no serious or critical axe-core violation; a screenshot."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    text = page.inner_text("body")
    assert "Traceback" not in text
    assert page.locator('input[name="csrf_token"][value=""]').count() == 0, "a form without its CSRF token"
    font = page.evaluate("getComputedStyle(document.querySelector('main h1')).fontFamily")
    assert font.startswith("system-ui"), font  # the design system's styles, with a system font stack
    assert "GDS Transport" not in font
    # Evaluated over the DevTools protocol: the page's own Content-Security-Policy (no inline script)
    # would refuse a script tag, as it should.
    page.evaluate(AXE.read_text())
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [v for v in results["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, json.dumps(
        [(v["id"], v["help"], [n["target"] for n in v["nodes"]]) for v in bad], indent=1
    )
