from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, status

from enclave.api.deps import AdminActor, CurrentActor, ServicesDep
from enclave.api.schemas import (
    AccreditationUpdate,
    ActiveChange,
    PasswordChange,
    RoleChange,
    TokenCreate,
    TokenIssued,
    TokenPublic,
    UserCreate,
    UserPublic,
)
from enclave.domain.identity.accounts import Role

router = APIRouter(prefix="/users", tags=["users"])

UsernamePath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9._-]{1,63}$", description="a username")]


@router.get("", summary="List users (admin)")
def list_users(actor: AdminActor, services: ServicesDep) -> list[UserPublic]:
    return [UserPublic.of(u) for u in services.identity.list_users(actor)]


@router.post("", summary="Create a user (admin)", status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, actor: AdminActor, services: ServicesDep) -> UserPublic:
    user = services.identity.create_user(
        actor,
        username=body.username,
        password=body.password,
        roles=frozenset(body.roles),
        display_name=body.display_name,
        email=body.email,
        organisation=body.organisation,
        accreditation_expires=body.accreditation_expires,
    )
    return UserPublic.of(user)


@router.get("/{username}", summary="One user (admin, or the user themself)")
def get_user(username: UsernamePath, actor: CurrentActor, services: ServicesDep) -> UserPublic:
    return UserPublic.of(services.identity.get_user(actor, username))


@router.post("/{username}/roles", summary="Grant a role (admin)")
def grant_role(
    username: UsernamePath, body: RoleChange, actor: AdminActor, services: ServicesDep
) -> UserPublic:
    return UserPublic.of(services.identity.grant_role(actor, username, body.role))


@router.delete("/{username}/roles/{role}", summary="Revoke a role (admin)")
def revoke_role(username: UsernamePath, role: Role, actor: AdminActor, services: ServicesDep) -> UserPublic:
    return UserPublic.of(services.identity.revoke_role(actor, username, role))


@router.put("/{username}/accreditation", summary="Set or withdraw a researcher's accreditation (admin)")
def set_accreditation(
    username: UsernamePath, body: AccreditationUpdate, actor: AdminActor, services: ServicesDep
) -> UserPublic:
    return UserPublic.of(services.identity.set_accreditation(actor, username, body.expires))


@router.put(
    "/{username}/active", summary="Activate or deactivate an account; deactivating revokes its tokens (admin)"
)
def set_active(
    username: UsernamePath, body: ActiveChange, actor: AdminActor, services: ServicesDep
) -> UserPublic:
    return UserPublic.of(services.identity.set_active(actor, username, body.active))


@router.put(
    "/{username}/password", summary="Set a password (the user themself, or an admin)", status_code=204
)
def set_password(
    username: UsernamePath, body: PasswordChange, actor: CurrentActor, services: ServicesDep
) -> None:
    services.identity.set_password(actor, username, body.password)


@router.get("/{username}/tokens", summary="A user's tokens, without their secrets (admin, or the user)")
def list_tokens(username: UsernamePath, actor: CurrentActor, services: ServicesDep) -> list[TokenPublic]:
    return [TokenPublic.of(t) for t in services.identity.list_tokens(actor, username)]


@router.post(
    "/{username}/tokens",
    summary="Create a personal API token (admin, or the user); the secret is shown once",
    status_code=status.HTTP_201_CREATED,
)
def create_token(
    username: UsernamePath, body: TokenCreate, actor: CurrentActor, services: ServicesDep
) -> TokenIssued:
    ttl = timedelta(days=body.expires_in_days) if body.expires_in_days is not None else None
    issued = services.identity.issue_token(actor, username, name=body.name, ttl=ttl)
    return TokenIssued(token=issued.secret, **TokenPublic.of(issued.token).model_dump())
