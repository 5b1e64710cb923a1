from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from enclave.api.deps import CurrentActor, ServicesDep
from enclave.api.schemas import MAX_INT, TokenPublic

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.delete("/{token_id}", summary="Revoke a token, at once (its owner, or an admin)")
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_INT)], actor: CurrentActor, services: ServicesDep
) -> TokenPublic:
    return TokenPublic.of(services.identity.revoke_token(actor, token_id))
