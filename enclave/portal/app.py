"""Mount the portal on the API's app: assets, security headers, error pages, the page routers."""

from __future__ import annotations

from fastapi import FastAPI

from enclave.portal import account, admin, applications, custodian, public, requests, researcher, reviewer
from enclave.portal.errors import install_page_errors
from enclave.portal.sessions import CsrfTokens
from enclave.portal.web import index_pages, install
from enclave.wiring import Services

#: The page routers, in the order they are matched (the fallback comes after all of them).
ROUTERS = (
    public.router,
    account.router,
    custodian.router,
    requests.router,
    researcher.router,
    applications.router,
    reviewer.router,
    admin.router,
)


def mount_portal(app: FastAPI, services: Services) -> None:
    install(app)
    app.state.csrf = CsrfTokens(services.settings.resolved_secret_key())
    install_page_errors(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(public.fallback)
    index_pages(app, ROUTERS)
