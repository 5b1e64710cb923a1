"""Pages anyone may read, without signing in: the register of approved projects and the dataset
catalogue. They show exactly what the public API routes show (``GET /register``, and the DCAT-AP
catalogue's metadata): never a member, a budget, a row count or an ingest report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from enclave.api.deps import ServicesDep
from enclave.portal.sessions import Public
from enclave.portal.web import PREFIX, pages_of

router = APIRouter(prefix=PREFIX, include_in_schema=False)

#: The tag colour of each project state on the register.
STATE_TAGS = {
    "active": "govuk-tag--green",
    "suspended": "govuk-tag--yellow",
    "revoked": "govuk-tag--red",
    "expired": "govuk-tag--grey",
    "closed": "govuk-tag--grey",
}


#: Projects per page of the register.
REGISTER_PAGE = 50


@router.get("/", response_class=HTMLResponse, name="home")
def home(request: Request, services: ServicesDep, actor: Public) -> HTMLResponse:
    return pages_of(request).render(request, "home.html", title="Enclave")


@router.get("/register", response_class=HTMLResponse, name="register")
def register(
    request: Request,
    services: ServicesDep,
    actor: Public,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    total = services.access.register_size()
    pages = max(1, -(-total // REGISTER_PAGE))
    page = min(page, pages)
    projects = services.access.register(
        newest_first=True, offset=(page - 1) * REGISTER_PAGE, limit=REGISTER_PAGE
    )
    return pages_of(request).render(
        request,
        "register.html",
        title="Register of approved projects",
        projects=projects,
        total=total,
        page=page,
        pages=pages,
        tags=STATE_TAGS,
    )


@router.get("/register/{project_id}", response_class=HTMLResponse)
def project(request: Request, project_id: str, services: ServicesDep, actor: Public) -> HTMLResponse:
    wanted = int(project_id) if project_id.isdigit() and len(project_id) <= 12 else None
    found = services.access.register_entry(wanted) if wanted is not None else None
    if found is None:
        return not_found(request)
    return pages_of(request).render(
        request, "project.html", title=found["title"], project=found, tags=STATE_TAGS
    )


@router.get("/datasets", response_class=HTMLResponse, name="catalogue")
def catalogue(request: Request, services: ServicesDep, actor: Public) -> HTMLResponse:
    return pages_of(request).render(
        request, "catalogue.html", title="Dataset catalogue", datasets=services.catalog.public_catalogue()
    )


@router.get("/datasets/{name}", response_class=HTMLResponse)
def dataset(request: Request, name: str, services: ServicesDep, actor: Public) -> HTMLResponse:
    found = next(iter(services.catalog.public_catalogue(name)), None)
    if found is None:
        return not_found(request)
    return pages_of(request).render(request, "dataset.html", title=found["title"], dataset=found)


def not_found(request: Request) -> HTMLResponse:
    return pages_of(request).render(request, "not_found.html", title="Page not found", status=404)


#: Included after every other page router: any other address under the portal gets the design
#: system's "page not found", not the API's JSON.
fallback = APIRouter(prefix=PREFIX, include_in_schema=False)


@fallback.get("/{rest:path}", response_class=HTMLResponse)
def anything_else(request: Request, rest: str, actor: Public) -> HTMLResponse:
    return not_found(request)
