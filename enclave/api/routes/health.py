from __future__ import annotations

from fastapi import APIRouter

from enclave import __version__
from enclave.api.deps import ServicesDep
from enclave.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and database reachability (public)")
def healthz(services: ServicesDep) -> Health:
    services.db.ping()
    return Health(status="ok", database=services.db.dialect, version=__version__)
