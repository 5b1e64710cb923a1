"""Use cases of identity: accounts, roles, accreditation, login and tokens.

Every state change goes through a repository method that takes its audit event; failures of
authentication are audited too (in their own transaction, since nothing else changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from enclave.domain.audit.chain import AuditEvent
from enclave.domain.clock import Clock, utcnow
from enclave.domain.errors import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidInput,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from enclave.domain.identity.accounts import (
    Actor,
    ApiToken,
    Role,
    TokenKind,
    User,
    can_manage_users,
    can_view_user,
    check_manage_token,
    check_manage_users,
    check_view_user,
    generate_token,
    hash_token,
    token_display_prefix,
    validate_password,
    validate_username,
)
from enclave.domain.policy import check_member_access
from enclave.domain.ports import UnitOfWork, UnitOfWorkFactory


@dataclass(frozen=True)
class TokenPolicy:
    """Lifetimes of tokens and sessions, and the login lockout rule."""

    session_ttl: timedelta = timedelta(hours=12)  # an API login's token, and a web session's absolute limit
    personal_default_ttl: timedelta = timedelta(days=30)
    max_ttl: timedelta = timedelta(days=365)
    web_idle: timedelta = timedelta(minutes=30)  # a web session ends after this long unused
    max_failed_logins: int = 5  # failed logins in a row that lock an account ...
    lockout: timedelta = timedelta(minutes=15)  # ... for this long

    #: A web session's last use is written at most this often (not on every page).
    touch_every = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    """A token as issued: the secret is here once and never stored."""

    secret: str
    token: ApiToken


class IdentityService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        hasher: PasswordHasher | None = None,
        clock: Clock = utcnow,
        policy: TokenPolicy | None = None,
    ) -> None:
        self._uow = uow
        self._hasher = hasher or PasswordHasher()
        self._clock = clock
        self._policy = policy or TokenPolicy()
        self._dummy: str | None = None

    @property
    def policy(self) -> TokenPolicy:
        return self._policy

    def now(self) -> datetime:
        return self._clock()

    @property
    def _dummy_hash(self) -> str:
        """Verified when the user is unknown, so a login takes as long whether or not the user
        exists. Made on first use: every CLI command builds this service, few log anyone in."""
        if self._dummy is None:
            self._dummy = self._hasher.hash("not a real password, used to equalise timing")
        return self._dummy

    # --- accounts -------------------------------------------------------------------------

    def create_user(
        self,
        actor: Actor,
        *,
        username: str,
        password: str | None,
        roles: frozenset[Role] = frozenset(),
        display_name: str = "",
        email: str = "",
        organisation: str = "",
        accreditation_expires: date | None = None,
    ) -> User:
        check_manage_users(actor)
        validate_username(username)
        password_hash = self._hasher.hash(validate_password(password)) if password is not None else None
        with self._uow() as uow:
            if uow.users.get_by_username(username) is not None:
                raise AlreadyExists(f"a user named {username!r} already exists")
            return uow.users.add_user(
                username=username,
                display_name=display_name or username,
                email=email,
                organisation=organisation,
                password_hash=password_hash,
                roles=roles,
                accreditation_expires=accreditation_expires,
                created_at=self._clock(),
                audit=AuditEvent(
                    "user.created",
                    actor.name,
                    "user",
                    username,
                    {
                        "roles": sorted(roles),
                        "organisation": organisation,
                        "accreditation_expires": accreditation_expires,
                        "has_password": password_hash is not None,
                    },
                ),
            )

    def list_users(self, actor: Actor) -> list[User]:
        check_manage_users(actor)
        with self._uow(write=False) as uow:
            return uow.users.list_users()

    def get_user(self, actor: Actor, username: str) -> User:
        with self._uow(write=False) as uow:
            user = uow.users.get_by_username(username)
        if user is not None and can_view_user(actor, user.id):
            return user
        if can_manage_users(actor):
            raise NotFound(f"no user named {username!r}")
        # Non-admins get the same answer whether or not the account exists.
        raise PermissionDenied("you can see only your own account unless you hold the admin role")

    def _require_user(self, uow: UnitOfWork, username: str) -> User:
        user = uow.users.get_by_username(username)
        if user is None:
            raise NotFound(f"no user named {username!r}")
        return user

    def grant_role(self, actor: Actor, username: str, role: Role) -> User:
        check_manage_users(actor)
        with self._uow() as uow:
            user = self._require_user(uow, username)
            if role in user.roles:
                raise InvalidState(f"{username} already holds the {role} role")
            return uow.users.grant_role(
                user.id,
                role,
                audit=AuditEvent("user.role_granted", actor.name, "user", username, {"role": role}),
            )

    def revoke_role(self, actor: Actor, username: str, role: Role) -> User:
        check_manage_users(actor)
        with self._uow() as uow:
            user = self._require_user(uow, username)
            if role not in user.roles:
                raise InvalidState(f"{username} does not hold the {role} role")
            if role is Role.ADMIN and actor.user is not None and actor.user.id == user.id:
                raise InvalidInput("you cannot revoke your own admin role; ask another admin")
            return uow.users.revoke_role(
                user.id,
                role,
                audit=AuditEvent("user.role_revoked", actor.name, "user", username, {"role": role}),
            )

    def set_accreditation(self, actor: Actor, username: str, expires: date | None) -> User:
        check_manage_users(actor)
        with self._uow() as uow:
            user = self._require_user(uow, username)
            return uow.users.set_accreditation(
                user.id,
                expires,
                audit=AuditEvent(
                    "user.accreditation_set",
                    actor.name,
                    "user",
                    username,
                    {"expires": expires, "previous": user.accreditation_expires},
                ),
            )

    def set_password(self, actor: Actor, username: str, password: str) -> None:
        with self._uow(write=False) as uow:
            user = self._require_user(uow, username)
        if not (actor.user is not None and actor.user.id == user.id and actor.project_scope is None):
            check_manage_users(actor)
        password_hash = self._hasher.hash(validate_password(password))
        with self._uow() as uow:
            uow.users.set_password_hash(
                user.id, password_hash, audit=AuditEvent("user.password_set", actor.name, "user", username)
            )

    def set_active(self, actor: Actor, username: str, active: bool) -> User:
        """Deactivating an account also revokes every token it holds, at once."""
        check_manage_users(actor)
        now = self._clock()
        with self._uow() as uow:
            user = self._require_user(uow, username)
            if actor.user is not None and actor.user.id == user.id and not active:
                raise InvalidInput("you cannot deactivate your own account")
            if not active:
                uow.tokens.revoke_all_for_user(
                    user.id,
                    now,
                    audit=AuditEvent(
                        "token.revoked_all", actor.name, "user", username, {"reason": "account deactivated"}
                    ),
                )
            return uow.users.set_active(
                user.id,
                active,
                audit=AuditEvent(
                    "user.activated" if active else "user.deactivated", actor.name, "user", username
                ),
            )

    # --- tokens ---------------------------------------------------------------------------

    def _ttl(self, kind: TokenKind, ttl: timedelta | None) -> timedelta:
        if ttl is None:
            short_lived = kind in (TokenKind.SESSION, TokenKind.WEB)
            return self._policy.session_ttl if short_lived else self._policy.personal_default_ttl
        if ttl <= timedelta(0):
            raise InvalidInput("a token's lifetime must be positive")
        if ttl > self._policy.max_ttl:
            raise InvalidInput(f"a token may live at most {self._policy.max_ttl.days} days")
        return ttl

    def _issue(
        self,
        uow: UnitOfWork,
        actor: Actor,
        user: User,
        *,
        kind: TokenKind,
        name: str,
        ttl: timedelta | None,
        project_id: int | None,
        action: str = "token.issued",
        details: dict[str, object] | None = None,
    ) -> IssuedToken:
        secret = generate_token()
        now = self._clock()
        prefix = token_display_prefix(secret)
        token = uow.tokens.add_token(
            user_id=user.id,
            kind=kind,
            name=name,
            token_hash=hash_token(secret),
            prefix=prefix,
            created_at=now,
            expires_at=now + self._ttl(kind, ttl),
            project_id=project_id,
            audit=AuditEvent(
                action,
                actor.name,
                "user",
                user.username,
                {"kind": kind, "name": name, "prefix": prefix, "project_id": project_id, **(details or {})},
            ),
        )
        return IssuedToken(secret, token)

    def issue_token(
        self,
        actor: Actor,
        username: str,
        *,
        name: str = "",
        ttl: timedelta | None = None,
        kind: TokenKind = TokenKind.PERSONAL,
        project_id: int | None = None,
    ) -> IssuedToken:
        if actor.project_scope is not None:
            raise InvalidInput("a workspace token cannot create tokens")
        if kind is TokenKind.WORKSPACE and project_id is None:
            raise InvalidInput("a workspace token needs a project")
        if kind is TokenKind.WEB:
            raise InvalidInput("a portal session is opened by signing in to the portal, not issued")
        with self._uow() as uow:
            user = self._require_user(uow, username)
            if not (actor.user is not None and actor.user.id == user.id):
                check_manage_users(actor)
            if not user.active:
                raise InvalidState(f"{username}'s account is deactivated")
            return self._issue(uow, actor, user, kind=kind, name=name, ttl=ttl, project_id=project_id)

    def issue_workspace_token(self, user: User, project_id: int, ttl: timedelta) -> IssuedToken:
        """The token a workspace's spawner injects: scoped to one project, checked against the
        project's state on every request (see :meth:`authenticate`). The caller has checked that
        the user may open the workspace."""
        with self._uow() as uow:
            return self._issue(
                uow,
                Actor.for_user(user),
                user,
                kind=TokenKind.WORKSPACE,
                name=f"workspace of project {project_id}",
                ttl=min(ttl, self._policy.max_ttl),
                project_id=project_id,
                action="workspace.token_issued",
            )

    def list_tokens(self, actor: Actor, username: str) -> list[ApiToken]:
        with self._uow(write=False) as uow:
            user = self._require_user(uow, username)
            check_view_user(actor, user.id)
            return uow.tokens.list_for_user(user.id)

    def revoke_token(self, actor: Actor, token_id: int) -> ApiToken:
        with self._uow() as uow:
            token = uow.tokens.get_by_id(token_id)
            if token is None or not can_see_token(actor, token):
                raise NotFound(f"no token with id {token_id}")
            check_manage_token(actor, token)
            if token.revoked_at is not None:
                raise InvalidState(f"token {token_id} is already revoked")
            return uow.tokens.revoke_token(
                token_id,
                self._clock(),
                audit=AuditEvent(
                    "token.revoked", actor.name, "token", str(token_id), {"prefix": token.prefix}
                ),
            )

    # --- authentication ------------------------------------------------------------------

    def verify_password(self, username: str, password: str, *, client: str | None = None) -> User:
        """Check a password without issuing anything. Every failure looks the same to the caller (an
        unknown user costs one hash too, a locked account is refused after the hash as well) and is
        audited with the client's address when it is known. The
        :attr:`TokenPolicy.max_failed_logins`-th failure in a row locks the account for
        :attr:`TokenPolicy.lockout`. Used by the API's and the portal's login and by the hub."""
        now = self._clock()
        with self._uow(write=False) as uow:
            user = uow.users.get_by_username(username) if username else None
            stored = uow.users.get_password_hash(user.id) if user is not None else None
        ok = False
        try:
            ok = self._hasher.verify(stored or self._dummy_hash, password) and stored is not None
        except (VerificationError, InvalidHashError):
            ok = False
        where = {"client": client} if client else {}
        if user is None:
            self._record_failure(
                "auth.login_failed", username[:64] or "-", {"reason": "unknown user", **where}
            )
            raise AuthenticationFailed("unknown user or wrong password")
        if not ok or not user.active or user.is_locked(now):
            reason = (
                "account locked"
                if user.is_locked(now)
                else ("account deactivated" if ok else "wrong password")
            )
            failed = AuditEvent(
                "auth.login_failed", "anonymous", "user", user.username, {"reason": reason, **where}
            )
            with self._uow() as uow:
                if reason == "wrong password":
                    uow.users.record_login_failure(
                        user.id,
                        now,
                        limit=self._policy.max_failed_logins,
                        lock_for=self._policy.lockout,
                        audit=failed,
                    )
                else:
                    uow.audit.append(failed)
            raise AuthenticationFailed("unknown user or wrong password")
        if stored is not None and self._hasher.check_needs_rehash(stored):
            with self._uow() as uow:
                uow.users.set_password_hash(
                    user.id,
                    self._hasher.hash(password),
                    audit=AuditEvent("user.password_rehashed", "system", "user", user.username),
                )
        if user.failed_logins or user.locked_until is not None:
            with self._uow() as uow:
                user = uow.users.reset_login_failures(
                    user.id,
                    audit=AuditEvent(
                        "auth.failures_cleared",
                        "system",
                        "user",
                        user.username,
                        {"failed": user.failed_logins},
                    ),
                )
        return user

    def login(self, username: str, password: str, *, client: str | None = None) -> IssuedToken:
        """Check a password and issue a session token for the API."""
        return self._sign_in(username, password, TokenKind.SESSION, "login", client, {})

    def start_web_session(self, username: str, password: str, *, client: str | None = None) -> IssuedToken:
        """Check a password and open a portal session: a token of kind ``web``, which only the
        portal's cookie carries, ended by :attr:`TokenPolicy.web_idle` unused or
        :attr:`TokenPolicy.session_ttl` after sign-in, whichever comes first."""
        return self._sign_in(username, password, TokenKind.WEB, "portal session", client, {"via": "portal"})

    def _sign_in(
        self,
        username: str,
        password: str,
        kind: TokenKind,
        name: str,
        client: str | None,
        details: dict[str, object],
    ) -> IssuedToken:
        user = self.verify_password(username, password, client=client)
        with self._uow() as uow:
            return self._issue(
                uow,
                Actor.for_user(user),
                user,
                kind=kind,
                name=name,
                ttl=None,
                project_id=None,
                action="auth.login",
                details={**details, **({"client": client} if client else {})} or None,
            )

    def end_web_sessions(self, actor: Actor, *, everywhere: bool = False) -> int:
        """Sign out: end the actor's own web session, or every web session of theirs (every browser
        they signed in from). A signed-out cookie never works again, wherever it was copied to."""
        if actor.user is None or actor.token is None or actor.token.kind is not TokenKind.WEB:
            raise InvalidInput("only a portal session can be signed out here")
        now = self._clock()
        with self._uow() as uow:
            if everywhere:
                return uow.tokens.revoke_all_for_user(
                    actor.user.id,
                    now,
                    kind=TokenKind.WEB,
                    audit=AuditEvent(
                        "auth.logout", actor.name, "user", actor.user.username, {"everywhere": True}
                    ),
                )
            uow.tokens.revoke_token(
                actor.token.id,
                now,
                audit=AuditEvent(
                    "auth.logout", actor.name, "user", actor.user.username, {"prefix": actor.token.prefix}
                ),
            )
            return 1

    def unlock(self, actor: Actor, username: str) -> User:
        """Lift a lockout after failed logins before it runs out (admin)."""
        check_manage_users(actor)
        with self._uow() as uow:
            user = self._require_user(uow, username)
            if not user.is_locked(self._clock()):
                raise InvalidState(f"{username}'s account is not locked")
            return uow.users.reset_login_failures(
                user.id, audit=AuditEvent("user.unlocked", actor.name, "user", username)
            )

    def authenticate(self, secret: str, *, web: bool = False) -> Actor:
        """Resolve a token to the acting user. Expiry and revocation count at once. ``web`` says the
        secret came in the portal's cookie: only a web session is accepted there, with its idle
        expiry, and a web session is accepted nowhere else (a copied cookie is no API token)."""
        now = self._clock()
        digest = hash_token(secret)
        with self._uow(write=False) as uow:
            token = uow.tokens.get_by_hash(digest)
            user = uow.users.get_by_id(token.user_id) if token is not None else None
            project = (
                uow.access.get_project(token.project_id)
                if token is not None and token.project_id is not None
                else None
            )
        problem: str | None
        if token is None or user is None or (token.kind is TokenKind.WEB) != web:
            problem = "unknown token"
        elif not user.active:
            problem = "account deactivated"
        else:
            problem = token.problem(now, self._policy.web_idle if web else None)
        if problem is None and token is not None and token.project_id is not None and user is not None:
            # A workspace token lives only while its project is active and its holder may use it.
            if project is None:
                problem = "project gone"
            else:
                try:
                    check_member_access(project, user, now.date())
                except PermissionDenied as exc:
                    problem = "project: " + exc.detail
        if problem is not None:
            self._record_failure(
                "auth.token_rejected",
                user.username if user is not None else "-",
                {"reason": problem, "prefix": token_display_prefix(secret) if secret else ""},
            )
            message = {
                "unknown token": "invalid token",
                "expired": "your token has expired; log in again or create a new token",
                "idle": "your session ended after a time without use; sign in again",
                "revoked": "this token has been revoked",
                "account deactivated": "this account is deactivated",
                "project gone": "this workspace token's project does not exist",
            }.get(problem) or f"this workspace token no longer works: {problem.removeprefix('project: ')}"
            raise AuthenticationFailed(message)
        assert user is not None
        assert token is not None
        if web and now - (token.last_seen_at or token.created_at) >= self._policy.touch_every:
            with self._uow() as uow:
                uow.tokens.touch(token.id, now)
        return Actor.for_user(user, token)

    def record_access_denied(self, actor: Actor, what: str, reason: str) -> None:
        """Audit a refusal of an authenticated user (missing role, wrong project scope)."""
        with self._uow() as uow:
            uow.audit.append(
                AuditEvent("auth.access_denied", actor.name, "route", what[:200], {"reason": reason})
            )

    def _record_failure(self, action: str, who: str, details: dict[str, object]) -> None:
        with self._uow() as uow:
            uow.audit.append(AuditEvent(action, "anonymous", "user", who, details))


def can_see_token(actor: Actor, token: ApiToken) -> bool:
    return (
        actor.is_operator
        or actor.has_role(Role.ADMIN)
        or (actor.user is not None and actor.user.id == token.user_id)
    )
