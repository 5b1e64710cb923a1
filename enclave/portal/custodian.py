"""The custodian's dataset pages: their datasets with each version's ingest report, the upload of
a new extract, the linkage report between sources, and each dataset's budget policy.

Every page calls the same use cases as the API's catalogue routes (``CatalogService``,
``AccessService.set_dataset_policy``), and an upload goes through the very function
``POST /catalog/ingest`` uses, so the portal accepts and refuses exactly what the API does.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from enclave.api.deps import ServicesDep
from enclave.api.schemas import NAME_PATTERN
from enclave.domain.errors import EnclaveError, NotFound, PayloadTooLarge
from enclave.domain.identity.accounts import Actor, Role
from enclave.ingest.uploads import MAX_SPEC_BYTES, ingest_upload
from enclave.portal.forms import FormErrors
from enclave.portal.sessions import CSRF_FIELD, CheckedForm, CsrfTokens, FormRefused, signed_in
from enclave.portal.uploads import stream_form
from enclave.portal.web import PREFIX, capitalize_first, pages_of

router = APIRouter(prefix=PREFIX, include_in_schema=False)

CustodianPage = Annotated[Actor, Depends(signed_in(Role.CUSTODIAN))]
DatasetName = Annotated[str, PathParam(pattern=NAME_PATTERN)]

#: The messages a page shows after a change (a fixed sentence, never the request's own text).
DONE = {"policy": "The budget policy was saved."}


def _mine(services: Any, actor: Actor) -> list[dict[str, Any]]:
    """The datasets the actor is the custodian of (the catalogue shows counts only for those)."""
    return [d for d in services.catalog.list_datasets(actor) if "rows" in d]


@router.get("/custodian/datasets", response_class=HTMLResponse, name="custodian_datasets")
def datasets(request: Request, services: ServicesDep, actor: CustodianPage) -> HTMLResponse:
    return pages_of(request).render(
        request, "custodian/datasets.html", title="My datasets", datasets=_mine(services, actor)
    )


def _dataset_page(
    request: Request,
    services: Any,
    actor: Actor,
    name: str,
    *,
    errors: FormErrors | None = None,
    typed: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    dataset = services.catalog.get_dataset(actor, name)
    versions = services.catalog.versions(actor, name)  # refuses anyone but its custodian (and admins)
    done = DONE.get(request.query_params.get("done", ""))
    return pages_of(request).render(
        request,
        "custodian/dataset.html",
        title=dataset["title"],
        dataset=dataset,
        versions=sorted(versions, key=lambda v: v["version"], reverse=True),
        errors=errors or FormErrors(),
        max_epsilon=typed if typed is not None else dataset.get("max_epsilon", ""),
        done=done,
        status=status,
    )


@router.get("/custodian/datasets/{name}", response_class=HTMLResponse)
def dataset(request: Request, name: DatasetName, services: ServicesDep, actor: CustodianPage) -> HTMLResponse:
    return _dataset_page(request, services, actor, name)


@router.post("/custodian/datasets/{name}/policy", response_class=HTMLResponse)
def set_policy(
    request: Request, name: DatasetName, services: ServicesDep, actor: CustodianPage, form: CheckedForm
) -> Response:
    typed = str(form.get("max_epsilon") or "").strip()
    errors = FormErrors()
    try:
        value = Decimal(typed)
    except InvalidOperation:
        errors.add("max_epsilon", "Enter the largest epsilon as a number, like 1 or 0.5")
    else:
        if not value.is_finite():
            errors.add("max_epsilon", "Enter the largest epsilon as a number, like 1 or 0.5")
        else:
            try:
                services.access.set_dataset_policy(actor, name, value)
            except NotFound:
                raise
            except EnclaveError as exc:
                errors.add("max_epsilon", capitalize_first(exc.detail))
            else:
                return RedirectResponse(f"{PREFIX}/custodian/datasets/{name}?done=policy", status_code=303)
    return _dataset_page(request, services, actor, name, errors=errors, typed=typed, status=400)


@router.get("/custodian/datasets/{name}/versions/{version}", response_class=HTMLResponse)
def version(
    request: Request,
    name: DatasetName,
    version: Annotated[int, PathParam(ge=1, le=1_000_000)],
    services: ServicesDep,
    actor: CustodianPage,
) -> HTMLResponse:
    dataset = services.catalog.get_dataset(actor, name)
    found = next((v for v in services.catalog.versions(actor, name) if v["version"] == version), None)
    if found is None:
        raise NotFound(f"{name} has no version {version}")
    return pages_of(request).render(
        request,
        "custodian/report.html",
        title=f"{dataset['title']}, version {version}",
        dataset=dataset,
        entry=found,
        report=found["report"] or {},
        just_ingested=request.query_params.get("done") == "ingested",
    )


@router.get("/custodian/linkage", response_class=HTMLResponse, name="custodian_linkage")
def linkage(request: Request, services: ServicesDep, actor: CustodianPage) -> HTMLResponse:
    return pages_of(request).render(
        request,
        "custodian/linkage.html",
        title="Linkage between sources",
        report=services.catalog.linkage_report(actor),
    )


def _upload_page(
    request: Request, services: Any, *, errors: FormErrors | None = None, status: int = 200
) -> HTMLResponse:
    return pages_of(request).render(
        request,
        "custodian/upload.html",
        title="Upload an extract",
        errors=errors or FormErrors(),
        limit_mb=services.settings.max_upload_mb,
        status=status,
    )


@router.get("/custodian/upload", response_class=HTMLResponse, name="custodian_upload")
def upload_form(request: Request, services: ServicesDep, actor: CustodianPage) -> HTMLResponse:
    return _upload_page(request, services)


@router.post("/custodian/upload", response_class=HTMLResponse)
async def upload(request: Request, services: ServicesDep, actor: CustodianPage) -> Response:
    """Stream the spec and the extract into a private folder of the holding store, check the CSRF
    token before the first file byte, ingest through the API's own path, and remove the folder,
    whatever happened: a refused upload leaves nothing behind."""
    limit = services.settings.max_upload_mb << 20
    errors = FormErrors()
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + MAX_SPEC_BYTES + 64 * 1024:
        errors.add(
            "extract", f"The extract is larger than the limit of {services.settings.max_upload_mb} MiB"
        )
        return _upload_page(request, services, errors=errors, status=413)

    def check_token(fields: dict[str, str]) -> None:
        if not CsrfTokens.matches(request.state.csrf, fields.get(CSRF_FIELD)):
            services.identity.record_access_denied(
                actor, "POST /portal/custodian/upload", "form without this session's CSRF token"
            )
            raise FormRefused("the upload did not carry this session's token")

    services.settings.ensure_home()
    with tempfile.TemporaryDirectory(dir=services.settings.holding_store, prefix=".upload-") as tmp:
        try:
            form = await stream_form(
                request,
                Path(tmp),
                limits={"spec": MAX_SPEC_BYTES, "extract": limit},
                check_fields=check_token,
            )
        except PayloadTooLarge as exc:
            errors.add("extract", capitalize_first(exc.detail))
            return _upload_page(request, services, errors=errors, status=413)
        spec, extract = form.files.get("spec"), form.files.get("extract")
        if spec is None or spec.stat().st_size == 0:
            errors.add("spec", "Choose the source's spec (a YAML file)")
        if extract is None or extract.stat().st_size == 0:
            errors.add("extract", "Choose the extract (a CSV or Parquet file)")
        if errors:
            return _upload_page(request, services, errors=errors, status=400)
        assert spec is not None
        assert extract is not None
        try:
            report = await run_in_threadpool(ingest_upload, services.catalog, actor, spec, extract)
        except NotFound:
            raise
        except EnclaveError as exc:
            spec_name = form.filenames.get("spec", "")
            field = "spec" if spec_name and exc.detail.startswith(spec_name) else "extract"
            errors.add(field, capitalize_first(exc.detail))
            return _upload_page(request, services, errors=errors, status=400)
    return RedirectResponse(
        f"{PREFIX}/custodian/datasets/{report.dataset}/versions/{report.version}?done=ingested",
        status_code=303,
    )
