"""Portal sessions over real HTTP: sign-in, the cookie's flags, CSRF, idle and absolute expiry,
lockout, sign-out everywhere, and the separation of web sessions from API tokens."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from enclave.domain.identity.accounts import Role
from enclave.portal.sessions import PLAIN_COOKIE, SECURE_COOKIE, CsrfTokens, safe_next
from enclave.wiring import Services
from tests.conftest import Account, FakeClock, LiveServer, make_account
from tests.helpers.portal import form_token, sign_in_http


def events(services: Services, action: str) -> list[dict[str, object]]:
    from enclave.domain.identity.accounts import Actor

    return [
        {"object": e.object_id, **e.details}
        for e in services.audit.export(Actor.operator("tests"))
        if e.action == action
    ]


@pytest.fixture
def custodian(services: Services) -> Account:
    return make_account(services, "carol", Role.CUSTODIAN)


def test_sign_in_sets_a_strict_cookie_and_returns_to_the_page_asked_for(
    api: LiveServer, services: Services, custodian: Account
) -> None:
    with httpx.Client(base_url=api.url) as c:
        first = c.get("/portal/account")
        assert first.status_code == 303
        assert first.headers["location"] == "/portal/sign-in?next=/portal/account"
        signed = sign_in_http(c, custodian, next_page="/portal/register")
        assert signed.status_code == 303, signed.text
        assert signed.headers["location"] == "/portal/register"
        cookie = next(h for h in signed.headers.get_list("set-cookie") if h.startswith(PLAIN_COOKIE + "="))
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/"} <= flags
        assert "secure" not in flags  # plain HTTP on loopback: a Secure cookie would not come back
        home = c.get("/portal/")
        assert "Signed in as" in home.text
        assert "carol" in home.text
    login = events(services, "auth.login")[-1]
    assert login["via"] == "portal"
    assert login["client"] == "127.0.0.1"


def test_over_https_the_cookie_is_secure_and_host_prefixed(services: Services, custodian: Account) -> None:
    """Behind a TLS proxy (the public URL is https), both cookies are ``__Host-`` and ``Secure``."""
    services.settings.public_url = "https://enclave.example.org"
    with LiveServer(services) as server, httpx.Client(base_url=server.url) as c:
        form = c.get("/portal/sign-in")
        nonce_cookie = form.headers["set-cookie"]
        assert nonce_cookie.startswith("__Host-enclave-signin=")
        assert "secure" in nonce_cookie.lower()
        signed = c.post(
            "/portal/sign-in",
            data={"csrf_token": form_token(form.text), "username": "carol", "password": custodian.password},
            headers={"Cookie": nonce_cookie.split(";")[0]},  # a Secure cookie: sent by hand over plain HTTP
        )
        assert signed.status_code == 303
        cookie = next(h for h in signed.headers.get_list("set-cookie") if h.startswith(SECURE_COOKIE + "="))
        assert "secure" in cookie.lower()
        assert "path=/" in cookie.lower()
        assert "domain" not in cookie.lower()


def test_a_form_without_the_session_token_changes_nothing(
    api: LiveServer, services: Services, custodian: Account
) -> None:
    with httpx.Client(base_url=api.url) as c:
        sign_in_http(c, custodian)
        refused = c.post("/portal/sign-out", data={})
        assert refused.status_code == 403
        assert "This form has expired" in refused.text
        forged = c.post("/portal/sign-out", data={"csrf_token": "0" * 64})
        assert forged.status_code == 403
        other_site = c.post(
            "/portal/sign-out",
            data={"csrf_token": form_token(c.get("/portal/").text)},
            headers={"Origin": "https://evil.example"},
        )
        assert other_site.status_code == 403
        assert "Signed in as" in c.get("/portal/").text  # still signed in: nothing changed
    refusals = [e for e in events(services, "auth.access_denied") if "CSRF" in str(e.get("reason"))]
    assert len(refusals) == 3


def test_the_sign_in_form_needs_its_own_token(api: LiveServer, custodian: Account) -> None:
    """Another site cannot sign a browser in to an account of its choosing."""
    with httpx.Client(base_url=api.url) as c:
        forged = c.post(
            "/portal/sign-in", data={"username": custodian.username, "password": custodian.password}
        )
        assert forged.status_code == 403
        assert PLAIN_COOKIE not in c.cookies


def test_wrong_passwords_show_the_error_summary_and_lock_the_account(
    api: LiveServer, services: Services, custodian: Account
) -> None:
    limit = services.identity.policy.max_failed_logins
    with httpx.Client(base_url=api.url) as c:
        empty = c.post("/portal/sign-in", data={"csrf_token": form_token(c.get("/portal/sign-in").text)})
        assert empty.status_code == 400
        assert "govuk-error-summary" in empty.text
        assert "Enter your username" in empty.text
        for _ in range(limit):
            wrong = c.post(
                "/portal/sign-in",
                data={
                    "csrf_token": form_token(c.get("/portal/sign-in").text),
                    "username": custodian.username,
                    "password": "not the password at all",
                },
            )
            assert wrong.status_code == 400
            assert 'value="carol"' in wrong.text  # what was typed is kept (not the password)
        locked = sign_in_http(c, custodian)
        assert locked.status_code == 400  # the right password, but the account is locked
        assert "locked" in locked.text
        api_login = c.post(
            "/auth/login", json={"username": custodian.username, "password": custodian.password}
        )
        assert api_login.status_code == 401  # one rule for the API and the portal
    reasons = [e["reason"] for e in events(services, "auth.login_failed") if e["object"] == "carol"]
    assert reasons.count("wrong password") == limit
    assert reasons[-2:] == ["account locked", "account locked"]
    assert all(e.get("client") == "127.0.0.1" for e in events(services, "auth.login_failed"))


def test_the_lock_runs_out_and_an_admin_can_lift_it(services: Services, clock: FakeClock) -> None:
    from tests.conftest import OPERATOR

    account = make_account(services, "dora", Role.CUSTODIAN)
    for _ in range(services.identity.policy.max_failed_logins):
        with pytest.raises(Exception, match="wrong password"):
            services.identity.verify_password("dora", "wrong wrong wrong")
    with pytest.raises(Exception, match="wrong password"):
        services.identity.verify_password("dora", account.password)
    services.identity.unlock(OPERATOR, "dora")
    assert services.identity.verify_password("dora", account.password).failed_logins == 0
    for _ in range(services.identity.policy.max_failed_logins):
        with pytest.raises(Exception, match="wrong password"):
            services.identity.verify_password("dora", "wrong wrong wrong")
    clock.advance(services.identity.policy.lockout + timedelta(seconds=1))
    assert services.identity.verify_password("dora", account.password).username == "dora"


def test_idle_and_absolute_expiry_send_the_user_back_to_sign_in(
    api: LiveServer, services: Services, clock: FakeClock, custodian: Account
) -> None:
    policy = services.identity.policy
    with httpx.Client(base_url=api.url) as c:
        sign_in_http(c, custodian)
        for _ in range(3):  # used every so often: the session lives on
            clock.advance(policy.web_idle - timedelta(minutes=1))
            assert "Signed in as" in c.get("/portal/").text
        clock.advance(policy.web_idle)
        ended = c.get("/portal/account")
        assert ended.status_code == 303
        assert ended.headers["location"] == "/portal/sign-in?next=/portal/account&ended=1"
        assert "Your session has ended" in c.get(ended.headers["location"]).text
        # The dead cookie was dropped with that answer: later pages do not refuse (and audit) it again.
        assert "enclave-session" not in c.cookies
        refusals = len(events(services, "auth.token_rejected"))
        for _ in range(3):
            assert c.get("/portal/register").status_code == 200
        assert len(events(services, "auth.token_rejected")) == refusals
        sign_in_http(c, custodian)
        step = policy.web_idle - timedelta(minutes=1)
        used = timedelta(0)
        while used + step < policy.session_ttl:  # used all day, never idle for long
            clock.advance(step)
            used += step
            assert "Signed in as" in c.get("/portal/").text
        clock.advance(step)  # used a moment ago, but past the absolute limit
        assert "Signed in as" not in c.get("/portal/").text
    assert {"idle", "expired"} <= {e["reason"] for e in events(services, "auth.token_rejected")}


def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(
    api: LiveServer, services: Services, custodian: Account
) -> None:
    with httpx.Client(base_url=api.url) as c, httpx.Client(base_url=api.url) as thief:
        sign_in_http(c, custodian)
        thief.cookies.set(PLAIN_COOKIE, c.cookies[PLAIN_COOKIE])
        assert "Signed in as" in thief.get("/portal/").text
        out = c.post("/portal/sign-out", data={"csrf_token": form_token(c.get("/portal/").text)})
        assert out.status_code == 303
        assert "Signed in as" not in thief.get("/portal/").text
    with httpx.Client(base_url=api.url) as one, httpx.Client(base_url=api.url) as two:
        sign_in_http(one, custodian)
        sign_in_http(two, custodian)
        one.post(
            "/portal/sign-out", data={"csrf_token": form_token(one.get("/portal/").text), "everywhere": "yes"}
        )
        assert "Signed in as" not in two.get("/portal/").text


def test_a_web_session_is_no_api_token_and_an_api_token_is_no_session(
    api: LiveServer, custodian: Account
) -> None:
    with httpx.Client(base_url=api.url) as c:
        sign_in_http(c, custodian)
        secret = c.cookies[PLAIN_COOKIE]
        assert c.get("/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    with httpx.Client(base_url=api.url) as c:
        c.cookies.set(PLAIN_COOKIE, custodian.token)
        assert c.get("/portal/account").status_code == 303


def test_where_sign_in_may_send_the_browser() -> None:
    default = "/portal/"
    assert safe_next("/portal/datasets?x=1", default) == "/portal/datasets?x=1"
    for hostile in (
        "https://evil.example/portal/",
        "//evil.example/portal/",
        "/\\evil",
        "/docs",
        "",
        None,
        "/portal\n",
    ):
        assert safe_next(hostile, default) == default, hostile


def test_csrf_tokens_belong_to_one_session_and_one_key() -> None:
    tokens = CsrfTokens("a" * 40)
    assert tokens.for_session("s1") != tokens.for_session("s2")
    assert tokens.for_session("s1") != CsrfTokens("b" * 40).for_session("s1")
    assert tokens.for_session("s1") != tokens.for_sign_in("s1")
    assert CsrfTokens.matches(tokens.for_session("s1"), tokens.for_session("s1"))
    assert not CsrfTokens.matches(tokens.for_session("s1"), None)
