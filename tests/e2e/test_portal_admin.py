"""The administrator's pages in headless Chromium over real HTTP: users and their tokens, the audit
viewer (filters, pages, the chain's verification) and the status page.

Every change goes through ``services.identity`` or ``services.audit``; the tests check the result
through the same services (never the page alone), and that a refused change creates nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from enclave import __version__
from enclave.db.migrate import head_revision
from enclave.domain.identity.accounts import Role
from enclave.wiring import Services
from tests.conftest import OPERATOR, Account, LiveServer, make_account
from tests.helpers.portal import HOSTILE, check_page, form_token, new_page, sign_in, sign_in_http

pytestmark = pytest.mark.slow

ADMIN_PAGES = (
    "/portal/admin/users",
    "/portal/admin/users/new",
    "/portal/admin/users/ada",
    "/portal/admin/audit",
    "/portal/admin/status",
)


@pytest.fixture
def admin(services: Services) -> Account:
    return make_account(services, "ada", Role.ADMIN)


@pytest.fixture
def server(services: Services, admin: Account) -> Iterator[LiveServer]:
    with LiveServer(services) as live:
        yield live


def _usernames(services: Services) -> list[str]:
    return [u.username for u in services.identity.list_users(OPERATOR)]


def test_the_admin_creates_a_user_grants_a_role_and_revokes_a_token(
    services: Services, server: LiveServer, admin: Account, browser: Any
) -> None:
    """By keyboard: create a user with a generated password (shown once, and it works), see them
    in the list with their display name's markup as text; a duplicate username is refused with the
    error summary, the typed values kept and nothing created; grant a role; revoke a token; the
    service's own refusal (revoking one's own admin role) is shown on the page."""
    page = new_page(browser)
    sign_in(page, server.url, admin)
    page.goto(f"{server.url}/portal/admin/users")
    check_page(page, "admin-users")
    page.get_by_role("button", name="Create a user").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/admin/users/new")
    check_page(page, "admin-user-new")
    page.get_by_label("Username", exact=True).fill("bob")
    page.keyboard.press("Tab")
    page.keyboard.type(f"Bob {HOSTILE}")
    page.get_by_label("Email address").fill("bob@example.org")
    page.get_by_label("Organisation").fill("University of Leeds")
    page.get_by_label("Researcher").focus()
    page.keyboard.press("Space")
    page.get_by_label("Day").fill("31")
    page.get_by_label("Month").fill("12")
    page.get_by_label("Year").fill("2027")
    page.get_by_label("Year").press("Enter")
    page.get_by_role("heading", name="User created").wait_for()
    check_page(page, "admin-user-created")
    password = page.locator("#generated-password").inner_text().strip()
    assert len(password) >= 12
    bob = services.identity.get_user(OPERATOR, "bob")
    assert bob.roles == {Role.RESEARCHER}
    assert bob.display_name == f"Bob {HOSTILE}"
    assert bob.accreditation_expires is not None
    assert bob.accreditation_expires.isoformat() == "2027-12-31"
    with httpx.Client(base_url=server.url) as c:  # the password shown is the account's
        assert sign_in_http(c, Account("bob", password, "")).status_code == 303

    page.goto(f"{server.url}/portal/admin/users")
    row = page.locator('tr[data-user="bob"]')
    assert HOSTILE in row.inner_text()  # the markup, as text
    assert "31 December 2027" in row.inner_text()
    assert "researcher" in row.inner_text()
    assert page.title() != "owned"
    assert page.locator("tbody img").count() == 0

    # A duplicate username: the error summary, the field's error, what was typed, nothing created.
    before = _usernames(services)
    page.goto(f"{server.url}/portal/admin/users/new")
    page.get_by_label("Username", exact=True).fill("bob")
    page.get_by_label("Full name").fill("Another Bob")
    page.get_by_label("Organisation").fill("Elsewhere")
    page.get_by_label("Reviewer").check()
    page.get_by_label("Organisation").press("Enter")
    summary = page.locator(".govuk-error-summary")
    summary.wait_for()
    assert "already exists" in summary.inner_text()
    assert "already exists" in page.locator("#username-error").inner_text()
    assert page.get_by_label("Username", exact=True).input_value() == "bob"
    assert page.get_by_label("Full name").input_value() == "Another Bob"
    assert page.get_by_label("Organisation").input_value() == "Elsewhere"
    assert page.get_by_label("Reviewer").is_checked()
    check_page(page, "admin-user-new-error")
    assert _usernames(services) == before
    assert services.identity.get_user(OPERATOR, "bob").display_name == f"Bob {HOSTILE}"

    # Grant a role from the user's page.
    issued = services.identity.issue_token(OPERATOR, "bob", name="analysis script")
    page.goto(f"{server.url}/portal/admin/users/bob")
    check_page(page, "admin-user")
    assert page.get_by_role("heading", level=1).inner_text() == f"Bob {HOSTILE}"
    page.get_by_role("button", name="Grant the reviewer role").focus()
    page.keyboard.press("Enter")
    page.get_by_text("The role was granted.").wait_for()
    assert services.identity.get_user(OPERATOR, "bob").roles == {Role.RESEARCHER, Role.REVIEWER}
    assert page.get_by_role("button", name="Revoke the reviewer role").is_visible()

    # Revoke the token.
    token_row = page.locator(f'tr[data-token="{issued.token.id}"]')
    assert issued.token.prefix in token_row.inner_text()
    assert "Active" in token_row.inner_text()
    page.get_by_role("button", name=f"Revoke token {issued.token.prefix}").click()
    page.get_by_text("The token was revoked.").wait_for()
    check_page(page, "admin-user-changed")
    (token,) = [t for t in services.identity.list_tokens(OPERATOR, "bob") if t.id == issued.token.id]
    assert token.revoked_at is not None
    assert "Revoked" in page.locator(f'tr[data-token="{issued.token.id}"]').inner_text()
    assert page.get_by_role("button", name=f"Revoke token {issued.token.prefix}").count() == 0

    # Set the accreditation, then the service's refusal: the admin's own admin role.
    page.get_by_label("Year").fill("2028")
    page.get_by_role("button", name="Save accreditation").click()
    page.get_by_text("The accreditation was saved.").wait_for()
    after = services.identity.get_user(OPERATOR, "bob").accreditation_expires
    assert after is not None
    assert after.isoformat() == "2028-12-31"
    page.goto(f"{server.url}/portal/admin/users/ada")
    page.get_by_role("button", name="Revoke the admin role").click()
    page.locator(".govuk-error-summary").wait_for()
    assert "You cannot revoke your own admin role" in page.locator(".govuk-error-summary").inner_text()
    check_page(page, "admin-user-refused")
    assert Role.ADMIN in services.identity.get_user(OPERATOR, "ada").roles


def test_deactivating_unlocking_and_bad_input_over_http(
    services: Services, server: LiveServer, admin: Account, clock: Any
) -> None:
    """A bad username and a bad date are refused with 400 and create nothing; deactivation revokes
    the user's tokens; a locked account is unlocked; a form without its token is refused."""
    victim = make_account(services, "vic", Role.RESEARCHER)
    with httpx.Client(base_url=server.url) as c:
        assert sign_in_http(c, admin).status_code == 303
        form = c.get("/portal/admin/users/new")
        token = form_token(form.text)
        before = _usernames(services)
        bad = c.post(
            "/portal/admin/users/new",
            data={
                "csrf_token": token,
                "username": "Bob Smith",
                "display_name": "<b>Bob</b>",
                "roles": "researcher",
            },
        )
        assert bad.status_code == 400
        assert "There is a problem" in bad.text
        assert "Invalid username" in bad.text
        assert 'value="Bob Smith"' in bad.text
        assert "&lt;b&gt;Bob&lt;/b&gt;" in bad.text
        assert "<b>Bob</b>" not in bad.text
        baddate = c.post(
            "/portal/admin/users/new",
            data={
                "csrf_token": token,
                "username": "dora",
                "accreditation-day": "31",
                "accreditation-month": "2",
                "accreditation-year": "2027",
            },
        )
        assert baddate.status_code == 400
        assert "Enter a real date" in baddate.text
        short = c.post(
            "/portal/admin/users/new", data={"csrf_token": token, "username": "dora", "password": "short"}
        )
        assert short.status_code == 400
        assert "Password too short" in short.text
        assert _usernames(services) == before
        forged = c.post("/portal/admin/users/new", data={"username": "eve"})
        assert forged.status_code == 403
        assert "eve" not in _usernames(services)

        chosen = c.post(
            "/portal/admin/users/new",
            data={
                "csrf_token": token,
                "username": "dora",
                "password": "a chosen password",
                "roles": "custodian",
            },
        )
        assert chosen.status_code == 200
        assert "User created" in chosen.text
        assert "a chosen password" not in chosen.text
        assert services.identity.get_user(OPERATOR, "dora").roles == {Role.CUSTODIAN}

        off = c.post("/portal/admin/users/vic/active", data={"csrf_token": token, "active": "no"})
        assert off.status_code == 303
        assert off.headers["location"] == "/portal/admin/users/vic?done=deactivated"
        assert not services.identity.get_user(OPERATOR, "vic").active
        assert all(t.revoked_at is not None for t in services.identity.list_tokens(OPERATOR, "vic"))
        page = c.get("/portal/admin/users")
        assert "Deactivated" in page.text
        self_off = c.post("/portal/admin/users/ada/active", data={"csrf_token": token, "active": "no"})
        assert self_off.status_code == 400
        assert "You cannot deactivate your own account" in self_off.text
        assert services.identity.get_user(OPERATOR, "ada").active
        on = c.post("/portal/admin/users/vic/active", data={"csrf_token": token, "active": "yes"})
        assert on.status_code == 303
        assert services.identity.get_user(OPERATOR, "vic").active

        for _ in range(services.identity.policy.max_failed_logins):
            with httpx.Client(base_url=server.url) as other:
                sign_in_http(other, Account("vic", "not the password at all", ""))
        assert services.identity.get_user(OPERATOR, "vic").is_locked(clock())
        page = c.get("/portal/admin/users/vic")
        assert "Locked" in page.text
        unlocked = c.post("/portal/admin/users/vic/unlock", data={"csrf_token": token})
        assert unlocked.status_code == 303
        assert not services.identity.get_user(OPERATOR, "vic").is_locked(clock())
        again = c.post("/portal/admin/users/vic/unlock", data={"csrf_token": token})
        assert again.status_code == 400
        assert "not locked" in again.text
        with httpx.Client(base_url=server.url) as other:
            assert sign_in_http(other, victim).status_code == 303
        assert c.get("/portal/admin/users/nobody").status_code == 404
        assert c.get("/portal/admin/users/..%2Fetc").status_code == 404


def _tamperable(services: Services) -> None:
    """What an attacker who owns the database can do: remove the append-only triggers."""
    with services.db.session() as session:
        if services.db.dialect == "sqlite":
            session.execute(text("DROP TRIGGER audit_events_no_update"))
            session.execute(text("DROP TRIGGER audit_events_no_delete"))
        else:
            session.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))


def _seqs(page: Any) -> list[int]:
    return [
        int(s) for s in page.locator("#events tbody tr").evaluate_all("rows => rows.map(r => r.dataset.seq)")
    ]


def test_the_audit_viewer_filters_pages_and_shows_the_chains_verification(
    services: Services, server: LiveServer, admin: Account, browser: Any
) -> None:
    """Newest first, 50 a page, Next and Previous; filtered by actor and action, by object and by
    date; "Verify now" turns green, and red naming the event once an event is edited in the
    database."""
    for i in range(60):
        services.identity.create_user(OPERATOR, username=f"user{i:02d}", password=None)
    page = new_page(browser)
    sign_in(page, server.url, admin)
    page.goto(f"{server.url}/portal/admin/audit")
    check_page(page, "admin-audit")
    assert page.locator("#verification-status").inner_text() == "Not verified yet"
    head_seq, head_hash = services.audit.head(OPERATOR)
    assert page.locator("#head-digest").inner_text() == head_hash
    assert page.locator("#verify-command").inner_text() == "enclave audit verify"
    first = _seqs(page)
    assert first == list(range(head_seq, head_seq - 50, -1))
    assert page.get_by_role("link", name=re.compile("Previous")).count() == 0
    page.get_by_role("link", name=re.compile("Next")).click()
    page.wait_for_url(re.compile(r".*before=\d+"))
    second = _seqs(page)
    assert second == list(range(head_seq - 50, max(head_seq - 100, 0), -1))
    page.get_by_role("link", name=re.compile("Previous")).click()
    page.wait_for_url(re.compile(r".*after=\d+"))
    assert _seqs(page) == first
    assert page.get_by_role("link", name=re.compile("Previous")).count() == 0

    # Actor and action: 61 users created by the operator (the admin too), in two pages.
    page.get_by_label("Actor").fill("operator:tests")
    page.get_by_label("Action").fill("user.created")
    page.get_by_label("Action").press("Enter")
    page.wait_for_url(re.compile(r".*action=user.created"))
    check_page(page, "admin-audit-filtered")
    rows = page.locator("#events tbody tr")
    assert rows.count() == 50
    assert all("user.created" in t and "operator:tests" in t for t in rows.all_inner_texts())
    page.get_by_role("link", name=re.compile("Next")).click()
    page.wait_for_url(re.compile(r".*before=\d+"))
    assert page.locator("#events tbody tr").count() == 11
    assert page.get_by_label("Actor").input_value() == "operator:tests"  # the filters stay
    assert page.get_by_role("link", name=re.compile("Next")).count() == 0
    expected = sorted(
        (e.seq for e in services.audit.export(OPERATOR) if e.action == "user.created"), reverse=True
    )
    assert _seqs(page) == expected[50:]

    # Object, an action's area, and dates.
    page.goto(f"{server.url}/portal/admin/audit?object_type=user&object_id=user07")
    assert [e.strip() for e in page.locator("#events tbody tr td:nth-child(5)").all_inner_texts()] == [
        "user user07"
    ]
    page.goto(f"{server.url}/portal/admin/audit?action=auth.*")
    actions = page.locator("#events tbody tr td:nth-child(4)").all_inner_texts()
    assert actions
    assert all(a.startswith("auth.") for a in actions)
    today = datetime.now(UTC).date()
    page.goto(f"{server.url}/portal/admin/audit?to={(today - timedelta(days=2)).isoformat()}")
    assert page.locator("#no-events").is_visible()
    page.goto(f"{server.url}/portal/admin/audit?from={(today - timedelta(days=1)).isoformat()}&by=ada")
    assert page.locator("#events tbody tr").count() >= 1
    page.goto(f"{server.url}/portal/admin/audit?from=not-a-date")
    assert "Enter the from date as a real date" in page.locator(".govuk-error-summary").inner_text()

    # Verify now: green. Then an event edited in the database: red, naming it.
    page.goto(f"{server.url}/portal/admin/audit")
    page.get_by_role("button", name="Verify now").click()
    page.get_by_text("The whole audit chain was verified: it is intact.").wait_for()
    assert page.locator("#verification-status").inner_text() == "Verified"
    check_page(page, "admin-audit-verified")
    (recorded,) = [e for e in services.audit.export(OPERATOR) if e.action == "audit.verified"]
    assert recorded.actor == "ada"
    assert recorded.details["ok"] is True
    _tamperable(services)
    with services.db.session() as session:
        session.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    services.identity.create_user(OPERATOR, username="late", password=None)
    page.reload()
    assert page.locator("#verification-status").inner_text() == "Verified"  # the last check, said as such
    assert "not covered by it" in page.inner_text("#verification")
    page.get_by_role("button", name="Verify now").click()
    page.get_by_text("The audit chain is broken").wait_for()
    status = page.locator("#verification-status")
    assert status.inner_text() == "Broken at event 3"
    assert "govuk-tag--red" in (status.get_attribute("class") or "")
    assert "edited" in page.inner_text("#verification")
    check_page(page, "admin-audit-broken")


def test_the_status_page(services: Services, server: LiveServer, admin: Account, browser: Any) -> None:
    page = new_page(browser)
    sign_in(page, server.url, admin)
    page.get_by_role("link", name="Status").click()
    page.wait_for_url("**/portal/admin/status")
    check_page(page, "admin-status")
    assert page.locator("#version").inner_text() == __version__
    expected = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[services.db.dialect]
    assert page.locator("#database").inner_text() == expected
    revision = page.locator("#revision").inner_text()
    assert str(head_revision(services.settings.database)) in revision
    assert "Up to date" in revision
    body = page.inner_text("main")
    assert "Research store" in body
    assert "Holding store" in body
    assert "Writable" in body
    assert services.settings.hub_url in body
    assert "Sandbox" in body


def test_the_admin_pages_are_for_admins_only(services: Services, server: LiveServer, admin: Account) -> None:
    """A custodian gets "you do not have access" on each page and each form; nothing changes."""
    custodian = make_account(services, "carol", Role.CUSTODIAN)
    admins_token = services.identity.list_tokens(OPERATOR, "ada")[0].id
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/portal/admin/users").status_code == 303  # not signed in: the sign-in page
        assert sign_in_http(c, custodian).status_code == 303
        for address in ADMIN_PAGES:
            refused = c.get(address)
            assert refused.status_code == 403, address
            assert "You do not have access" in refused.text
        assert "/portal/admin/" not in c.get("/portal/").text  # no admin link in the navigation
        token = form_token(c.get("/portal/account").text)
        posts = {
            "/portal/admin/users/new": {"username": "mallory", "password": "long enough password"},
            "/portal/admin/users/carol/roles": {"role": "admin", "change": "grant"},
            "/portal/admin/users/ada/active": {"active": "no"},
            "/portal/admin/users/ada/unlock": {},
            "/portal/admin/audit/verify": {},
            f"/portal/admin/users/ada/tokens/{admins_token}/revoke": {},
        }
        for address, data in posts.items():
            assert c.post(address, data={"csrf_token": token, **data}).status_code == 403, address
    assert "mallory" not in _usernames(services)
    assert services.identity.get_user(OPERATOR, "carol").roles == {Role.CUSTODIAN}
    assert services.identity.get_user(OPERATOR, "ada").active
    assert all(t.revoked_at is None for t in services.identity.list_tokens(OPERATOR, "ada"))
    assert not [e for e in services.audit.export(OPERATOR) if e.action == "audit.verified"]
