"""Signing in and out of the portal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from starlette.responses import RedirectResponse, Response

from enclave.api.deps import ServicesDep, client_address
from enclave.domain.errors import AuthenticationFailed
from enclave.domain.identity.accounts import Actor, TokenKind
from enclave.portal.forms import FormErrors
from enclave.portal.sessions import (
    CSRF_FIELD,
    CheckedForm,
    CsrfTokens,
    FormRefused,
    Public,
    csrf_of,
    forget_cookie,
    login_cookie,
    new_nonce,
    read_form,
    safe_next,
    session_cookie,
    set_cookie,
    signed_in,
)
from enclave.portal.web import PREFIX, pages_of

router = APIRouter(prefix=PREFIX, include_in_schema=False)

#: How long the sign-in form may stay open before it must be reloaded.
SIGN_IN_FORM_SECONDS = 3600


def _sign_in_page(
    request: Request,
    services: ServicesDep,
    *,
    next_page: str,
    username: str = "",
    errors: FormErrors | None = None,
    ended: bool = False,
    status: int = 200,
) -> Response:
    nonce = new_nonce()
    response = pages_of(request).render(
        request,
        "sign_in.html",
        title="Sign in",
        next_page=next_page,
        username=username,
        errors=errors or FormErrors(),
        ended=ended,
        sign_in_token=csrf_of(request).for_sign_in(nonce),
        policy=services.identity.policy,
        status=status,
    )
    set_cookie(response, request, services, login_cookie(request, services), nonce, SIGN_IN_FORM_SECONDS)
    return response


@router.get("/sign-in", response_class=HTMLResponse, name="sign_in")
def sign_in_form(
    request: Request,
    services: ServicesDep,
    actor: Public,
    next: Annotated[str | None, Query(max_length=2000)] = None,
    ended: Annotated[str | None, Query(max_length=1)] = None,
) -> Response:
    target = safe_next(next, f"{PREFIX}/")
    if actor is not None:
        return RedirectResponse(target, status_code=303)
    return _sign_in_page(request, services, next_page=target, ended=bool(ended))


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, services: ServicesDep, actor: Public) -> Response:
    form = await read_form(request)
    username = str(form.get("username") or "").strip()[:64]
    password = str(form.get("password") or "")[:1024]
    target = safe_next(str(form.get("next") or ""), f"{PREFIX}/")
    nonce = request.cookies.get(login_cookie(request, services), "")
    if not nonce or not CsrfTokens.matches(
        csrf_of(request).for_sign_in(nonce), str(form.get(CSRF_FIELD) or "")
    ):
        raise FormRefused("the sign-in form had no valid token")
    errors = FormErrors()
    if not username:
        errors.add("username", "Enter your username")
    if not password:
        errors.add("password", "Enter your password")
    if not errors:
        try:
            issued = services.identity.start_web_session(username, password, client=client_address(request))
        except AuthenticationFailed:
            errors.add(
                "username",
                "The username or password is not right, or the account is locked after too many"
                " failed attempts",
            )
        else:
            response = RedirectResponse(target, status_code=303)
            ttl = int(services.identity.policy.session_ttl.total_seconds())
            set_cookie(response, request, services, session_cookie(request, services), issued.secret, ttl)
            forget_cookie(response, request, services, login_cookie(request, services))
            return response
    return _sign_in_page(request, services, next_page=target, username=username, errors=errors, status=400)


SignedIn = Annotated[Actor, Depends(signed_in())]


@router.post("/sign-out", name="sign_out")
def sign_out(request: Request, services: ServicesDep, actor: SignedIn, form: CheckedForm) -> Response:
    services.identity.end_web_sessions(actor, everywhere=form.get("everywhere") == "yes")
    response = RedirectResponse(f"{PREFIX}/signed-out", status_code=303)
    forget_cookie(response, request, services, session_cookie(request, services))
    return response


@router.get("/signed-out", response_class=HTMLResponse, name="signed_out")
def signed_out(request: Request, actor: Public) -> HTMLResponse:
    return pages_of(request).render(request, "signed_out.html", title="You have signed out")


@router.get("/account", response_class=HTMLResponse, name="account")
def account(request: Request, services: ServicesDep, actor: SignedIn) -> HTMLResponse:
    assert actor.user is not None
    tokens = services.identity.list_tokens(actor, actor.user.username)
    now = services.identity.now()
    sessions = [
        t
        for t in tokens
        if t.kind is TokenKind.WEB and t.problem(now, services.identity.policy.web_idle) is None
    ]
    return pages_of(request).render(
        request, "account.html", title="Your account", user=actor.user, sessions=sessions, current=actor.token
    )
