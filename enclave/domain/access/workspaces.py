"""Use cases of notebook workspaces, as the hub asks them of the enclave.

The hub is a trusted adapter: it checks a user's password here, learns which projects they may
open a workspace for, and obtains the project-scoped token its spawner injects. Every start, stop
and refusal is audited. A workspace token works only while its project is active and its holder
a member (checked on every request by ``IdentityService.authenticate``), so suspending a project
closes its workspaces' access to the data at once; the hub also stops their servers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from enclave.domain.access.requests import Project
from enclave.domain.audit.chain import AuditEvent
from enclave.domain.clock import Clock, utcnow
from enclave.domain.errors import NotFound, PermissionDenied
from enclave.domain.identity.accounts import User
from enclave.domain.identity.service import IdentityService, IssuedToken
from enclave.domain.policy import can_member_access, check_member_access, check_open_workspace
from enclave.domain.ports import UnitOfWorkFactory

#: A workspace token never outlives this, even for a long project (the hub issues a fresh one at
#: every start).
WORKSPACE_TOKEN_TTL = timedelta(days=7)


@dataclass(frozen=True)
class WorkspaceGrant:
    """What the spawner needs to start a project's workspace."""

    user: User
    project: Project
    token: IssuedToken


class WorkspaceService:
    def __init__(self, uow: UnitOfWorkFactory, *, identity: IdentityService, clock: Clock = utcnow) -> None:
        self._uow = uow
        self._identity = identity
        self._clock = clock

    def login(self, username: str, password: str) -> User:
        """The hub's authenticator: the enclave's own accounts, no separate ones."""
        return self._identity.verify_password(username, password)

    def _user(self, username: str) -> User:
        with self._uow(write=False) as uow:
            user = uow.users.get_by_username(username)
        if user is None or not user.active:
            raise NotFound(f"no active account {username!r}")
        return user

    def projects_for(self, username: str) -> list[Project]:
        """The projects whose workspace this user may open now (active, member, accredited)."""
        user = self._user(username)
        today = self._clock().date()
        with self._uow(write=False) as uow:
            projects = uow.access.list_projects()
        return [project for project in projects if can_member_access(project, user, today)]

    def open(self, username: str, project_id: int) -> WorkspaceGrant:
        """Check that the user may open the project's workspace and issue its token; a refusal is
        audited and raised with the reason."""
        user = self._user(username)
        now = self._clock()
        with self._uow(write=False) as uow:
            project = uow.access.get_project(project_id)
        try:
            project = check_open_workspace(user, project_id, project, now.date())
        except PermissionDenied as exc:
            self._record("workspace.start_refused", username, project_id, {"reason": exc.detail})
            raise
        end = datetime.combine(project.end_date + timedelta(days=1), time.min, tzinfo=UTC)
        ttl = min(WORKSPACE_TOKEN_TTL, max(end - now, timedelta(minutes=1)))
        token = self._identity.issue_workspace_token(user, project.id, ttl)
        self._record("workspace.started", username, project.id, {"token": token.token.prefix})
        return WorkspaceGrant(user, project, token)

    def close(self, username: str, project_id: int, token_id: int | None, reason: str) -> None:
        """Revoke the workspace's token (if still live) and record the stop."""
        with self._uow() as uow:
            token = uow.tokens.get_by_id(token_id) if token_id is not None else None
            if token is not None and token.revoked_at is None and token.project_id == project_id:
                uow.tokens.revoke_token(
                    token.id,
                    self._clock(),
                    audit=AuditEvent(
                        "token.revoked", "hub", "token", str(token.id), {"prefix": token.prefix}
                    ),
                )
            uow.audit.append(
                AuditEvent("workspace.stopped", username, "project", str(project_id), {"reason": reason})
            )

    def problem(self, username: str, project_id: int) -> str | None:
        """Why a running workspace must stop now (project no longer active, membership or
        accreditation gone), or None."""
        today = self._clock().date()
        with self._uow(write=False) as uow:
            user = uow.users.get_by_username(username)
            project = uow.access.get_project(project_id)
        if user is None or not user.active:
            return "the account is deactivated"
        if project is None:
            return f"project {project_id} does not exist"
        try:
            check_member_access(project, user, today)
        except PermissionDenied as exc:
            return exc.detail
        return None

    def record_refusal(self, username: str, project_id: int, what: str, reason: str) -> None:
        """A download or export refused in a workspace (by the proxy's guard or the server's)."""
        self._record(
            "workspace.download_refused", username, project_id, {"path": what[:300], "reason": reason[:200]}
        )

    def record_limit(self, username: str, project_id: int, limit: str, detail: str) -> None:
        """A workspace reached one of its limits (the hub saw the kernel end a process for it)."""
        details: dict[str, object] = {"limit": limit, "detail": detail[:200]}
        self._record("workspace.limit_reached", username, project_id, details)

    def _record(self, action: str, username: str, project_id: int, details: dict[str, object]) -> None:
        with self._uow() as uow:
            uow.audit.append(AuditEvent(action, username, "project", str(project_id), details))
