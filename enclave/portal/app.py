"""Mount the portal on the API's app: assets, security headers, the page routers, the fallback."""

from __future__ import annotations

from fastapi import FastAPI

from enclave.portal import public
from enclave.portal.web import install

#: The page routers, in the order they are matched (the fallback comes after all of them).
ROUTERS = (public.router,)


def mount_portal(app: FastAPI) -> None:
    install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(public.fallback)
