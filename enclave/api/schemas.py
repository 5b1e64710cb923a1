"""Request and response bodies. Inputs forbid unknown fields and bound every string, so nothing
a client sends can overflow a column or carry a NUL byte into the database."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from enclave.domain.audit.chain import ChainedEvent, VerifyResult
from enclave.domain.identity.accounts import ApiToken, Role, TokenKind, User

MAX_INT = 2**31 - 1


def _printable(value: str) -> str:
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in value) or "\x7f" in value:
        raise ValueError("control characters are not allowed")
    return value


Printable = AfterValidator(_printable)
Text200 = Annotated[str, StringConstraints(max_length=200), Printable]
Email = Annotated[str, StringConstraints(max_length=320), Printable]
LoginName = Annotated[str, StringConstraints(min_length=1, max_length=64), Printable]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024), Printable]
NewPassword = Annotated[str, StringConstraints(min_length=12, max_length=1024), Printable]


NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
Username = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9._-]{1,63}$")]
Id = Annotated[int, Field(ge=1, le=MAX_INT)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(BaseModel):
    status: str
    database: str
    version: str


class LoginRequest(Input):
    username: LoginName
    password: Password


class UserCreate(Input):
    username: Username
    password: NewPassword | None = Field(
        None, description="at least 12 characters; omit to create an account that logs in by token only"
    )
    roles: list[Role] = Field(default_factory=list, max_length=4)
    display_name: Text200 = ""
    email: Email = ""
    organisation: Text200 = ""
    accreditation_expires: date | None = None


class RoleChange(Input):
    role: Role


class AccreditationUpdate(Input):
    expires: date | None = Field(description="last day the accreditation is valid; null withdraws it")


class PasswordChange(Input):
    password: NewPassword


class ActiveChange(Input):
    active: bool


class UserPublic(BaseModel):
    id: int
    username: str
    display_name: str
    email: str
    organisation: str
    roles: list[Role]
    active: bool
    accreditation_expires: date | None
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            email=user.email,
            organisation=user.organisation,
            roles=sorted(user.roles),
            active=user.active,
            accreditation_expires=user.accreditation_expires,
            created_at=user.created_at,
        )


class TokenCreate(Input):
    name: Text200 = ""
    expires_in_days: int | None = Field(None, ge=1, le=3650)


class TokenPublic(BaseModel):
    id: int
    kind: TokenKind
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    project_id: int | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenPublic:
        return cls(
            id=token.id,
            kind=token.kind,
            name=token.name,
            prefix=token.prefix,
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            project_id=token.project_id,
        )


class TokenIssued(TokenPublic):
    token: str = Field(description="the secret; shown once, store it now")


class AuditEventPublic(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, ev: ChainedEvent) -> AuditEventPublic:
        return cls(
            seq=ev.seq,
            at=ev.at,
            actor=ev.actor,
            action=ev.action,
            object_type=ev.object_type,
            object_id=ev.object_id,
            details=ev.details,
            prev_hash=ev.prev_hash,
            hash=ev.hash,
        )


class AuditVerification(BaseModel):
    ok: bool
    verified: int
    head_hash: str
    failed_seq: int | None
    reason: str | None
    message: str

    @classmethod
    def of(cls, result: VerifyResult) -> AuditVerification:
        return cls(
            ok=result.ok,
            verified=result.verified,
            head_hash=result.head_hash,
            failed_seq=result.failed_seq,
            reason=result.reason,
            message=result.describe(),
        )


class IngestResult(BaseModel):
    dataset: str
    version: int | None
    source_name: str
    source_sha256: str
    rows_read: int
    rows_written: int
    rows_quarantined: int
    rows_opted_out: int
    persons: int
    clamped: dict[str, int]
    reasons: dict[str, int]
    quarantine_file: str | None
    seconds: float


class OptOutResult(BaseModel):
    stored: int
    rejected: int
