"""Identity: users, roles, accreditation, API tokens and who may manage them.

Passwords are hashed with argon2id; API tokens are 256 random bits, shown once and stored only as
their SHA-256 (a token has full entropy, so a fast hash is enough and lets every request find its
token with one indexed look-up).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from enclave.domain.errors import InvalidInput, PermissionDenied


class Role(StrEnum):
    RESEARCHER = "researcher"
    CUSTODIAN = "custodian"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class TokenKind(StrEnum):
    SESSION = "session"  # issued by a password login, short-lived
    PERSONAL = "personal"  # created by a user or an operator for scripted use
    WORKSPACE = "workspace"  # scoped to one project, injected into a notebook workspace
    WEB = "web"  # a portal session behind a cookie: idle and absolute expiry, never a bearer token


USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
TOKEN_PREFIX = "enc_"  # noqa: S105 - a public marker, not a secret
MIN_PASSWORD_LENGTH = 12


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {value!r}; roles are: {allowed}") from None


def validate_username(username: str) -> str:
    if not USERNAME_RE.match(username):
        raise InvalidInput(
            f"invalid username {username!r}: use 2-64 characters (lower-case letters, digits, '.', '_',"
            " '-'), starting with a letter"
        )
    return username


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    return password


def generate_password() -> str:
    """A random password for a new account, printed once by the CLI."""
    return secrets.token_urlsafe(15)


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_display_prefix(token: str) -> str:
    """The part of a token that may be shown and logged to tell tokens apart."""
    return token[: len(TOKEN_PREFIX) + 6]


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    email: str
    organisation: str
    roles: frozenset[Role]
    active: bool
    accreditation_expires: date | None
    created_at: datetime
    locked_until: datetime | None = None
    failed_logins: int = 0  # failed logins since the last success or lock

    def is_locked(self, now: datetime) -> bool:
        """Locked after too many failed logins in a row, until the lock runs out (or an admin lifts it)."""
        return self.locked_until is not None and now < self.locked_until

    def has_role(self, role: Role) -> bool:
        return self.active and role in self.roles

    def is_accredited(self, on: date) -> bool:
        """A researcher's accreditation (safe people) is valid up to and including its expiry date."""
        return self.accreditation_expires is not None and on <= self.accreditation_expires


@dataclass(frozen=True)
class ApiToken:
    id: int
    user_id: int
    kind: TokenKind
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    project_id: int | None
    last_seen_at: datetime | None = None

    def problem(self, now: datetime, idle: timedelta | None = None) -> str | None:
        """Why this token cannot be used at ``now``, or None if it can. ``idle`` is the longest
        pause allowed between two uses (web sessions), counted from the last use or the issue."""
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        if idle is not None and now >= (self.last_seen_at or self.created_at) + idle:
            return "idle"
        return None


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user behind a token, or an operator at the server's shell (the CLI).

    Operators have shell access to ENCLAVE_HOME and so hold every right; they are recorded in the
    audit log as ``operator:<os user>``.
    """

    name: str
    user: User | None = None
    token: ApiToken | None = None

    @classmethod
    def operator(cls, os_user: str) -> Actor:
        return cls(name=f"operator:{os_user}")

    @classmethod
    def for_user(cls, user: User, token: ApiToken | None = None) -> Actor:
        return cls(name=user.username, user=user, token=token)

    @classmethod
    def on_behalf(cls, user: User, os_user: str) -> Actor:
        """An operator at the shell acting as ``user`` (``--as`` in the CLI): the user's rights, and
        both names in the audit log."""
        return cls(name=f"{user.username} (via operator:{os_user})", user=user)

    @property
    def is_operator(self) -> bool:
        return self.user is None

    @property
    def project_scope(self) -> int | None:
        return self.token.project_id if self.token is not None else None

    def has_role(self, role: Role) -> bool:
        if self.user is None:
            return True
        return self.user.has_role(role)


# Paired permission functions: ``can_*`` answers, ``check_*`` raises with the sentence to show.


def can_manage_users(actor: Actor) -> bool:
    return actor.has_role(Role.ADMIN) and actor.project_scope is None


def check_manage_users(actor: Actor) -> None:
    if not can_manage_users(actor):
        raise PermissionDenied("managing users needs the admin role")


def can_view_user(actor: Actor, user_id: int) -> bool:
    return can_manage_users(actor) or (actor.user is not None and actor.user.id == user_id)


def check_view_user(actor: Actor, user_id: int) -> None:
    if not can_view_user(actor, user_id):
        raise PermissionDenied("you can see only your own account unless you hold the admin role")


def can_manage_token(actor: Actor, token: ApiToken) -> bool:
    if actor.project_scope is not None:
        return False
    return can_manage_users(actor) or (actor.user is not None and actor.user.id == token.user_id)


def check_manage_token(actor: Actor, token: ApiToken) -> None:
    if not can_manage_token(actor, token):
        raise PermissionDenied("you can manage only your own tokens unless you hold the admin role")
