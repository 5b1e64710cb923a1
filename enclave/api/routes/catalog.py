from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile, status
from fastapi import Path as PathParam

from enclave.api.deps import ServicesDep, requires
from enclave.api.schemas import NAME_PATTERN, IngestResult, OptOutResult
from enclave.domain.errors import PayloadTooLarge
from enclave.domain.identity.accounts import Actor, Role
from enclave.ingest.uploads import MAX_SPEC_BYTES, ingest_upload

router = APIRouter(prefix="/catalog", tags=["catalog"])
optouts_router = APIRouter(prefix="/optouts", tags=["catalog"])

AnyUser = Annotated[Actor, Depends(requires())]
CustodianOrAdmin = Annotated[Actor, Depends(requires(Role.CUSTODIAN, Role.ADMIN))]
Custodian = Annotated[Actor, Depends(requires(Role.CUSTODIAN))]
DatasetName = Annotated[str, PathParam(pattern=NAME_PATTERN)]


def _save(upload: UploadFile, directory: Path, limit_bytes: int) -> Path:
    name = Path(upload.filename or "upload").name or "upload"
    target = directory / name
    size = 0
    with target.open("wb") as handle:
        while block := upload.file.read(1 << 20):
            size += len(block)
            if size > limit_bytes:
                raise PayloadTooLarge(f"the upload is larger than the limit of {limit_bytes >> 20} MiB")
            handle.write(block)
    return target


@router.get("/datasets", summary="Datasets and their schemas (counts only for their custodian)")
def list_datasets(actor: AnyUser, services: ServicesDep) -> list[dict[str, Any]]:
    return services.catalog.list_datasets(actor)


@router.get("/datasets/{name}", summary="One dataset's metadata and columns")
def get_dataset(name: DatasetName, actor: AnyUser, services: ServicesDep) -> dict[str, Any]:
    return services.catalog.get_dataset(actor, name)


@router.get(
    "/datasets/{name}/versions", summary="Versions with their ingest reports (custodian of it, admin)"
)
def list_versions(name: DatasetName, actor: CustodianOrAdmin, services: ServicesDep) -> list[dict[str, Any]]:
    return services.catalog.versions(actor, name)


@router.post(
    "/ingest",
    summary="Ingest an extract against its spec (custodian); publishes the dataset's next version",
    status_code=status.HTTP_201_CREATED,
)
def ingest(
    actor: Custodian,
    services: ServicesDep,
    spec: Annotated[UploadFile, File(description="the source spec, YAML")],
    extract: Annotated[UploadFile, File(description="the extract, CSV (UTF-8) or Parquet")],
) -> IngestResult:
    limit = services.settings.max_upload_mb << 20
    services.settings.ensure_home()
    with tempfile.TemporaryDirectory(dir=services.settings.holding_store, prefix=".ingest-") as tmp:
        spec_dir = Path(tmp) / "spec"
        spec_dir.mkdir()
        spec_path = _save(spec, spec_dir, MAX_SPEC_BYTES)
        extract_dir = Path(tmp) / "extract"
        extract_dir.mkdir()
        extract_path = _save(extract, extract_dir, limit)
        report = ingest_upload(services.catalog, actor, spec_path, extract_path)
    return IngestResult(**report.as_dict())


@router.get("/linkage", summary="Linkage report of the caller's datasets (custodian, admin)")
def linkage(
    actor: CustodianOrAdmin,
    services: ServicesDep,
    population: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
) -> dict[str, Any]:
    return services.catalog.linkage_report(actor, population)


@router.get("/dcat", summary="The catalog as DCAT-AP JSON-LD (public: metadata only, no counts)")
def dcat(request: Request, services: ServicesDep) -> dict[str, Any]:
    base = services.settings.public_url or str(request.base_url).rstrip("/")
    return services.catalog.dcat(base)


@optouts_router.put("", summary="Replace the national data opt-out list (custodian, admin)")
def load_opt_outs(
    actor: CustodianOrAdmin,
    services: ServicesDep,
    file: Annotated[UploadFile, File(description="CSV with a column nhs_number, or one number per line")],
) -> OptOutResult:
    services.settings.ensure_home()
    with tempfile.TemporaryDirectory(dir=services.settings.holding_store, prefix=".optout-") as tmp:
        path = _save(file, Path(tmp), services.settings.max_upload_mb << 20)
        stored, rejected = services.catalog.load_opt_outs(actor, path)
    return OptOutResult(stored=stored, rejected=rejected)
