"""What a refusal looks like in the portal: a page, never the API's JSON, never a traceback.

The API's exception handlers stay as they are for the API; for an address under the portal each is
wrapped so that the same domain error becomes a page in the design system's patterns: the sign-in
page (with the return address kept) for a missing or ended session, "you do not have access" for a
refusal, "page not found", "there is a problem" with the sentence for a refused change, and
"sorry, there is a problem with the service" with a reference for a bug (logged as the API logs it).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from enclave.api.errors import status_for
from enclave.domain import errors
from enclave.portal.sessions import FormRefused, LoginRequired
from enclave.portal.web import PREFIX, pages_of

log = logging.getLogger("enclave.portal")

Handler = Callable[[Request, Exception], Awaitable[Response] | Response]


def is_page(request: Request) -> bool:
    path = request.url.path
    return path == PREFIX or path.startswith(PREFIX + "/")


def sign_in_address(request: Request, reason: str) -> str:
    """The sign-in page, with where to come back to: this page for a GET, the page the form was on
    for a POST (when the browser says which, on this site)."""
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        referer = urlsplit(request.headers.get("referer", ""))
        back = referer.path if referer.netloc == request.url.netloc and referer.path else f"{PREFIX}/"
    address = f"{PREFIX}/sign-in?next={quote(back, safe='/')}"
    return address + ("&ended=1" if reason else "")


def page_for(request: Request, exc: Exception) -> Response:
    pages = pages_of(request)
    if isinstance(exc, LoginRequired):
        target = sign_in_address(request, exc.reason)
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    if isinstance(exc, FormRefused):
        return pages.render(request, "errors/form_refused.html", title="This form has expired", status=403)
    if isinstance(exc, errors.PermissionDenied):
        return pages.render(
            request,
            "errors/forbidden.html",
            title="You do not have access to this page",
            detail=exc.detail,
            status=403,
        )
    if isinstance(exc, errors.NotFound):
        return pages.render(request, "not_found.html", title="Page not found", status=404)
    if isinstance(exc, errors.EnclaveError):
        return pages.render(
            request,
            "errors/refused.html",
            title="There is a problem",
            detail=exc.detail,
            status=status_for(exc),
        )
    if isinstance(exc, RequestValidationError):
        return pages.render(request, "not_found.html", title="Page not found", status=404)
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 404:
            return pages.render(request, "not_found.html", title="Page not found", status=404)
        return pages.render(
            request,
            "errors/refused.html",
            title="There is a problem",
            detail="this page cannot be used that way",
            status=exc.status_code,
        )
    reference = secrets.token_hex(4)
    log.exception("internal error %s on %s %s", reference, request.method, request.url.path, exc_info=exc)
    return pages.render(
        request,
        "errors/bug.html",
        title="Sorry, there is a problem with the service",
        reference=reference,
        status=500,
    )


def install_page_errors(app: FastAPI) -> None:
    """Wrap the app's handlers (installed by the API first) so portal addresses get pages."""
    kinds: tuple[type[Exception], ...] = (
        errors.EnclaveError,
        RequestValidationError,
        StarletteHTTPException,
        Exception,
    )
    for kind in kinds:
        app.exception_handlers[kind] = _wrap(app.exception_handlers.get(kind))
    for kind in (LoginRequired, FormRefused):
        app.exception_handlers[kind] = _wrap(None)


def _wrap(api_handler: Handler | None) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if is_page(request) or api_handler is None:
            return page_for(request, exc)
        result = api_handler(request, exc)
        return await result if isinstance(result, Awaitable) else result

    return handle
