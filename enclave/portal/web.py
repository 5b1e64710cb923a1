"""The portal's plumbing: templates, assets, security headers, and the router every page joins.

Pages are routes of the API's own FastAPI app, under :data:`PREFIX` and left out of the OpenAPI
document (they are HTML for people, not part of the API). Each page calls the same use cases as the
matching API route; what a page may show is decided by the same policy functions.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import MutableHeaders
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
        self.environment.globals.update(prefix=PREFIX, assets=self.asset_base, version=__version__)

    def render(self, request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        body = self.environment.get_template(template).render(
            request=request, path=request.url.path, **context
        )
        return HTMLResponse(body, status_code=status)


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
            await send(message)

        await self.app(scope, receive, send_with_headers)


def pages_of(request: Request) -> Pages:
    pages: Pages = request.app.state.pages
    return pages
