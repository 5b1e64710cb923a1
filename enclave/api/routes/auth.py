from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from enclave.api.deps import ClientAddress, CurrentActor, ServicesDep, requires
from enclave.api.schemas import LoginRequest, TokenIssued, TokenPublic, UserPublic
from enclave.domain.identity.accounts import Actor

router = APIRouter(prefix="/auth", tags=["auth"])
me_router = APIRouter(tags=["auth"])


@router.post("/login", summary="Exchange a username and password for a session token (public)")
def login(body: LoginRequest, client: ClientAddress, services: ServicesDep) -> TokenIssued:
    issued = services.identity.login(body.username, body.password, client=client)
    return TokenIssued(token=issued.secret, **TokenPublic.of(issued.token).model_dump())


@router.post("/logout", summary="Revoke the token used for this request", status_code=204)
def logout(actor: CurrentActor, services: ServicesDep) -> None:
    assert actor.token is not None
    services.identity.revoke_token(actor, actor.token.id)


def _me(actor: Actor) -> UserPublic:
    assert actor.user is not None
    return UserPublic.of(actor.user)


WorkspaceOrPersonal = Annotated[Actor, Depends(requires(workspace=True))]


@me_router.get("/me", summary="The user behind the token (workspace tokens too)")
def me(actor: WorkspaceOrPersonal) -> UserPublic:
    return _me(actor)
