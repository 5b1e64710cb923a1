"""Who is signed in to the portal, what each page needs, and the forms' CSRF tokens.

**Sessions** are server-side: signing in opens a token of kind ``web`` in the metadata database
(:meth:`IdentityService.start_web_session`), and the browser holds only its secret, in a cookie that
is ``HttpOnly``, ``SameSite=Lax``, ``Path=/`` and, wherever the portal is served over HTTPS,
``Secure`` with the ``__Host-`` prefix (so no other site or sub-domain can set or read it). The
session ends after ``portal_idle_minutes`` unused, ``session_ttl_hours`` after sign-in, at sign-out
(for every copy of the cookie), or when an admin revokes it or deactivates the account. A web
session is refused as a bearer token, and an API token is refused as a cookie.

**CSRF**: a synchroniser token, derived rather than stored: ``HMAC-SHA256(key, session)``, where the
key is derived from the deployment's ``secret_key``. Every form carries it in a hidden field and
every POST is refused unless it matches the session that sent it (and, when the browser sends an
``Origin``, unless that is the portal's own). A derived token needs no table and no library; it
cannot be used with any other session, dies with its session, and is compared in constant time.
The sign-in form, which has no session yet, gets the same protection from a short-lived random
cookie (the token is the HMAC of that cookie), so no other site can sign a browser in to an
account of its choosing.

**Page access**: every page route declares :class:`PageAccess` (the roles it needs, as the matching
API route does; object-level rules stay in the use cases and the policy module) or :data:`Public`.
``tests/e2e/test_portal_access.py`` walks every page route and fails on one that declares neither.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from enclave.api.deps import ServicesDep
from enclave.domain.errors import AuthenticationFailed, PermissionDenied
from enclave.domain.identity.accounts import Actor, Role
from enclave.portal.web import PREFIX
from enclave.wiring import Services

SECURE_COOKIE = "__Host-enclave-session"
PLAIN_COOKIE = "enclave-session"
SECURE_LOGIN_COOKIE = "__Host-enclave-signin"
PLAIN_LOGIN_COOKIE = "enclave-signin"
CSRF_FIELD = "csrf_token"
#: Forms of the portal are small; anything larger is refused before it is parsed.
MAX_FORM_BYTES = 256 * 1024


class LoginRequired(Exception):
    """No valid session: the page answers with the sign-in page, keeping where the user was going."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class FormRefused(Exception):
    """A POST without the CSRF token of its session, or from another site's page."""


def is_secure(request: Request, services: Services) -> bool:
    """Whether cookies are ``Secure`` (and ``__Host-`` prefixed): always in production, and whenever
    the portal is reached over HTTPS or its public URL is an HTTPS one."""
    settings = services.settings
    return (
        settings.mode == "production"
        or request.url.scheme == "https"
        or (settings.public_url or "").startswith("https://")
    )


def session_cookie(request: Request, services: Services) -> str:
    return SECURE_COOKIE if is_secure(request, services) else PLAIN_COOKIE


def login_cookie(request: Request, services: Services) -> str:
    return SECURE_LOGIN_COOKIE if is_secure(request, services) else PLAIN_LOGIN_COOKIE


def set_cookie(
    response: Response, request: Request, services: Services, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=is_secure(request, services),
        httponly=True,
        samesite="lax",
    )


def forget_cookie(response: Response, request: Request, services: Services, name: str) -> None:
    response.delete_cookie(name, path="/", secure=is_secure(request, services), httponly=True, samesite="lax")


class CsrfTokens:
    """Synchroniser tokens derived from the session (or the sign-in cookie) with a server key."""

    def __init__(self, secret_key: str) -> None:
        self._key = hmac.new(secret_key.encode(), b"enclave portal csrf v1", hashlib.sha256).digest()

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()

    def for_session(self, session_secret: str) -> str:
        return self._mac("session", session_secret)

    def for_sign_in(self, nonce: str) -> str:
        return self._mac("sign-in", nonce)

    @staticmethod
    def matches(expected: str, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(expected.encode(), sent.encode())


def csrf_of(request: Request) -> CsrfTokens:
    tokens: CsrfTokens = request.app.state.csrf
    return tokens


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def current_session(request: Request, services: ServicesDep) -> Actor | None:
    """The signed-in user behind the session cookie, or None; an expired or revoked session is
    remembered on the request so the sign-in page can say why."""
    name = session_cookie(request, services)
    secret = request.cookies.get(name)
    if not secret:
        return None
    try:
        actor = services.identity.authenticate(secret, web=True)
    except AuthenticationFailed as exc:
        request.state.session_problem = exc.detail
        # The browser is told to drop the dead cookie with this response (unless the response
        # sets a new one), so the refusal is audited once, not on every page it goes on to open.
        forget = Response()
        forget_cookie(forget, request, services, name)
        request.state.stale_cookie = (name, forget.headers["set-cookie"])
        return None
    request.state.actor = actor
    request.state.csrf = csrf_of(request).for_session(secret)
    return actor


SessionDep = Annotated[Actor | None, Depends(current_session)]


class PageAccess:
    """Who may open a page: a signed-in user holding one of ``roles`` (any signed-in user when
    there are none). The same role rule as the matching API route's :class:`enclave.api.deps.Access`."""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles)

    def describe(self) -> str:
        return "any signed-in user" if not self.roles else "role " + " or ".join(sorted(self.roles))

    def admits_role(self, role: Role) -> bool:
        return not self.roles or role in self.roles

    def admits(self, actor: Actor | None) -> bool:
        return actor is not None and (not self.roles or any(actor.has_role(r) for r in self.roles))

    def __call__(self, request: Request, services: ServicesDep, actor: SessionDep) -> Actor:
        if actor is None:
            raise LoginRequired(getattr(request.state, "session_problem", ""))
        if not self.admits(actor):
            services.identity.record_access_denied(
                actor, f"{request.method} {request.url.path}", f"needs {self.describe()}"
            )
            raise PermissionDenied(f"this page needs the {' or '.join(sorted(self.roles))} role")
        return actor


def public_page(actor: SessionDep) -> Actor | None:
    """A page anyone may read; the signed-in user, if any, only changes the navigation."""
    return actor


Public = Annotated[Actor | None, Depends(public_page)]


def signed_in(*roles: Role) -> PageAccess:
    return PageAccess(*roles)


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site's page."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.url.netloc


async def read_form(request: Request) -> FormData:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
        raise FormRefused("the form is larger than any form of the portal")
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        raise FormRefused("the form was not sent as a web form")
    return await request.form(max_files=0, max_fields=200, max_part_size=MAX_FORM_BYTES)


async def checked_form(request: Request, services: ServicesDep, actor: SessionDep) -> FormData:
    """The submitted form, once its CSRF token is the session's own; refused otherwise (audited)."""
    if actor is None:
        raise LoginRequired(getattr(request.state, "session_problem", ""))
    try:
        form = await read_form(request)
    except FormRefused:
        form = FormData()
    sent = form.get(CSRF_FIELD)
    token = sent if isinstance(sent, str) else None
    if not same_origin(request) or not CsrfTokens.matches(request.state.csrf, token):
        services.identity.record_access_denied(
            actor, f"{request.method} {request.url.path}", "form without this session's CSRF token"
        )
        raise FormRefused("the form did not carry this session's token")
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def safe_next(value: str | None, default: str) -> str:
    """Where to go after signing in: a portal address on this site only (never ``//other`` or a
    full URL someone put in a link)."""
    if not value or "\\" in value or value.startswith("//") or any(ord(c) < 32 for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    if not (parts.path == PREFIX or parts.path.startswith(PREFIX + "/")):
        return default
    return value
