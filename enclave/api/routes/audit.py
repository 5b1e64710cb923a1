from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from enclave.api.deps import AdminActor, ServicesDep
from enclave.api.schemas import AuditEventPublic, AuditVerification

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/events", summary="Audit events in chain order (admin)")
def list_events(
    actor: AdminActor,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="return events after this sequence number")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventPublic]:
    return [AuditEventPublic.of(e) for e in services.audit.export(actor, after_seq=after, limit=limit)]


@router.get("/verify", summary="Verify the whole hash chain (admin)")
def verify(actor: AdminActor, services: ServicesDep) -> AuditVerification:
    return AuditVerification.of(services.audit.verify(actor))
