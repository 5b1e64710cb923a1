"""The portal's plumbing: templates, assets, security headers, and the router every page joins.

Pages are routes of the API's own FastAPI app, under :data:`PREFIX` and left out of the OpenAPI
document (they are HTML for people, not part of the API). Each page calls the same use cases as the
matching API route; what a page may show is decided by the same policy functions.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from enclave import __version__

PREFIX = "/portal"
TEMPLATES = Path(__file__).parent / "templates"

#: What every portal response carries. Scripts and styles come only from the portal's own assets
#: (no inline script, so an injected ``<script>`` never runs); no page may be framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none';"
        " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: Assets are served under a path that names their content, so they can be cached for a year.
ASSET_CACHE = "public, max-age=31536000, immutable"


def assets_dir() -> Path:
    """Where ``make setup`` builds the portal's assets (compiled CSS, GOV.UK Frontend's and htmx's
    scripts, the portal's own): inside the environment, as the hub's proxy is."""
    return Path(sys.prefix) / "share" / "enclave" / "portal"


def assets_digest(folder: Path) -> str:
    """A short digest of the assets' contents: it is in their URL, so a new build is a new URL."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


class CachedAssets(StaticFiles):
    """Static files with a long-lived, immutable cache (their URL changes with their content)."""

    async def get_response(self, path: str, scope: Scope) -> Any:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = ASSET_CACHE
        return response


class Pages:
    """Renders the portal's templates; one per app."""

    def __init__(self, assets: Path) -> None:
        self.environment = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.asset_base = f"{PREFIX}/assets/{assets_digest(assets)}"
        self.environment.globals.update(prefix=PREFIX, assets=self.asset_base, enclave_version=__version__)
        self.environment.filters["capitalize_first"] = capitalize_first
        self.environment.globals["long_date"] = long_date

    def render(self, request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        """Render a page for the signed-in user (if any): the navigation shows only the pages their
        roles open, and every form gets the session's CSRF token."""
        actor = getattr(request.state, "actor", None)
        body = self.environment.get_template(template).render(
            request=request,
            path=request.url.path,
            actor=actor,
            navigation=navigation(request, actor),
            csrf_token=getattr(request.state, "csrf", ""),
            **context,
        )
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


class Renderer:
    """A page module's way of rendering: the context its templates share (tag colours, labels) and
    the success banner that ``?done=`` names, one of the module's fixed sentences (never text from
    the address)."""

    def __init__(self, done: Mapping[str, str], **shared: Any) -> None:
        self._done = done
        self._shared = shared

    def __call__(
        self, request: Request, template: str, *, title: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        return pages_of(request).render(
            request,
            template,
            title=title,
            status=status,
            done=self._done.get(request.query_params.get("done", "")),
            **self._shared,
            **context,
        )


def long_date(value: date | datetime | str | None) -> str:
    """7 December 2026; a moment as 7 December 2026 at 14:05 UTC; nothing for no date. A date may be
    given as ISO text (an answer of an application in progress)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            return long_date(date.fromisoformat(value))
        except ValueError:
            return value
    if isinstance(value, datetime):
        moment = value.astimezone(UTC)
        return f"{moment.day} {moment:%B %Y} at {moment:%H:%M} UTC"
    return f"{value.day} {value:%B %Y}"


def capitalize_first(sentence: str) -> str:
    """A domain error's sentence (lower case, no full stop) as a sentence on a page; a sentence that
    starts with a name (a file, a column, a user) keeps it as it is."""
    sentence = sentence.strip().rstrip(".")
    first = sentence.split(" ", 1)[0]
    if any(c in first for c in "._-/'\"") or any(c.isdigit() for c in first):
        return sentence
    return sentence[:1].upper() + sentence[1:]


@dataclass(frozen=True)
class Link:
    href: str
    label: str


#: The service navigation: (label, the name of the page route it opens). An entry is shown only to
#: a user the page's own access declaration admits, so the menu and the pages cannot disagree.
NAVIGATION: tuple[tuple[str, str], ...] = (
    ("Approved projects", "register"),
    ("Datasets", "catalogue"),
    ("Your account", "account"),
    ("My projects", "researcher_projects"),
    ("My access requests", "researcher_applications"),
    ("My datasets", "custodian_datasets"),
    ("Access requests", "custodian_requests"),
    ("Projects", "custodian_projects"),
    ("Output checking", "reviewer_outputs"),
    ("Users", "admin_users"),
    ("Audit log", "admin_audit"),
    ("Status", "admin_status"),
)


def page_access(route: BaseRoute) -> Any:
    """The access a page route declares (a ``PageAccess``, or ``public_page``), or None."""
    if not isinstance(route, APIRoute):
        return None
    for dependency in route.dependant.dependencies:
        call = dependency.call
        if getattr(call, "admits", None) is not None or getattr(call, "__name__", "") == "public_page":
            return call
    return None


@dataclass(frozen=True)
class PageRoute:
    path: str
    access: Any


def index_pages(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Remember each named page route's address and declared access, for the navigation."""
    pages: dict[str, PageRoute] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and "GET" in (route.methods or ()):
                pages[route.name] = PageRoute(route.path_format, page_access(route))
    app.state.page_routes = pages


def navigation(request: Request, actor: Any) -> list[Link]:
    pages: dict[str, PageRoute] = getattr(request.app.state, "page_routes", {})
    links = []
    for label, name in NAVIGATION:
        page = pages.get(name)
        if page is None or page.access is None:
            continue
        admits = getattr(page.access, "admits", None)
        if admits is None or admits(actor):
            links.append(Link(page.path, label))
    return links


def install(app: FastAPI) -> Pages:
    """Mount the assets and the security headers; the page routers are included by the caller."""
    folder = assets_dir()
    pages = Pages(folder)
    app.state.pages = pages
    if folder.is_dir():
        app.mount(pages.asset_base, CachedAssets(directory=folder), name="portal-assets")

    app.add_middleware(PortalHeaders)
    return pages


class PortalHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response under :data:`PREFIX` (a plain ASGI middleware:
    the API's own requests pass straight through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                stale = scope.get("state", {}).get("stale_cookie")
                if stale is not None:
                    cookie, forget = stale
                    setting = [v for v in headers.getlist("set-cookie") if v.startswith(f"{cookie}=")]
                    if not setting:
                        headers.append("set-cookie", forget)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages
