"""Project access: who may use a project, its budget, its workspace and its outputs. One policy.

Every rule is decided here and nowhere else, so the use case that refuses an action, the route that
serves it and the page that hides its button can never disagree. Rules come in pairs: ``can_*``
answers with a bool (for a page or a list), ``check_*`` raises the sentence to show (for a use
case); a ``check_*`` that is given the project as loaded (``None`` when there is none) returns it.

The rules, as the Five Safes put them:

- **Safe people in a safe project.** A member uses a project (queries, workspace, outputs) only
  while it is active and their own accreditation is valid (:func:`check_member_access`).
- **A workspace token acts for its own project only** (:func:`check_token_scope`), and never for
  what needs a person outside the workspace: reviewing, releasing, downloading, withdrawing.
- **Nobody checks their own work.** Reviewers and releasers are never members of the project.
- **Not found, not forbidden, for what you may not see.** A project you are not a member of is
  answered as missing, so its existence is not disclosed to a researcher of another project.

Operators (the shell, ``actor.user is None``) hold every right, as everywhere in Enclave.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from enum import StrEnum

from enclave.domain.access.requests import Project
from enclave.domain.access.states import Party, ProjectState
from enclave.domain.errors import NotFound, PermissionDenied
from enclave.domain.identity.accounts import Actor, Role, User
from enclave.domain.outputs.review import OutputRequest
from enclave.domain.outputs.states import AirlockParty, OutputState

# --- membership ------------------------------------------------------------------------------------


def is_member(actor: Actor, project: Project) -> bool:
    return actor.user is not None and actor.user.username in project.members


def check_token_scope(actor: Actor, project_id: int) -> None:
    """A workspace token acts only for its own project."""
    if actor.project_scope is not None and actor.project_scope != project_id:
        raise PermissionDenied(f"this workspace token is for project {actor.project_scope}, not {project_id}")


def check_member_access(project: Project, user: User, on: date) -> None:
    """A member may use a project (workspace, queries) only while it is active and while their own
    accreditation is valid; a lapsed accreditation suspends access until renewed."""
    state = project.effective_state(on)
    if state is not ProjectState.ACTIVE:
        raise PermissionDenied(f"project {project.id} is {state}: its workspace and queries are closed")
    if user.username not in project.members:
        raise PermissionDenied(f"you are not a member of project {project.id}")
    if not user.is_accredited(on):
        raise PermissionDenied(
            f"your accreditation is not valid on {on}: access to project {project.id} resumes once it is"
            " renewed"
        )


def can_member_access(project: Project, user: User, on: date) -> bool:
    try:
        check_member_access(project, user, on)
    except PermissionDenied:
        return False
    return True


# --- where a credential is used ------------------------------------------------------------------


class Place(StrEnum):
    """Where a request reaches the API: its network port (and the portal), or the Unix socket bound
    into every workspace's sandbox, which serves only what a workspace needs."""

    NETWORK = "network"
    WORKSPACE = "workspace"


def check_place(actor: Actor, place: Place, *, runs_queries: bool, queries_outside_workspace: bool) -> None:
    """A workspace token works only inside its workspace, and only a workspace token works there;
    DP queries with a personal token over the network only where the deployment allows it."""
    if actor.is_operator:
        return
    if place is Place.WORKSPACE:
        if actor.project_scope is None:
            raise PermissionDenied(
                "inside a workspace only the workspace's own token works: personal tokens and logins are"
                " for outside it"
            )
        return
    if actor.project_scope is not None:
        raise PermissionDenied(
            "a workspace token works only inside its workspace; outside it, use your personal token"
        )
    if runs_queries and not queries_outside_workspace:
        raise PermissionDenied(
            "in this enclave DP queries run only inside the project's workspace: open it from the hub"
            " and query from a notebook"
        )


# --- seeing a project --------------------------------------------------------------------------------


def project_parties(actor: Actor, project: Project, custodian_ids: Collection[int]) -> frozenset[Party]:
    """The parties ``actor`` acts as on ``project`` (``custodian_ids``: the custodians of the datasets
    in its scope); a workspace token acts as none."""
    if actor.is_operator:
        return frozenset({Party.ADMIN})
    if actor.user is None or actor.project_scope is not None:
        return frozenset()
    found = set()
    if actor.has_role(Role.ADMIN):
        found.add(Party.ADMIN)
    if project.members.get(actor.user.username) == "lead":
        found.add(Party.APPLICANT)
    if actor.has_role(Role.CUSTODIAN) and actor.user.id in custodian_ids:
        found.add(Party.CUSTODIAN)
    return frozenset(found)


def can_view_project(actor: Actor, project: Project, custodian_ids: Collection[int]) -> bool:
    """Members, the lead, the custodians of its datasets and admins see a project."""
    return bool(project_parties(actor, project, custodian_ids)) or is_member(actor, project)


# --- queries and the budget --------------------------------------------------------------------------


def check_query_access(actor: Actor, project_id: int, project: Project | None, on: date) -> Project:
    """Queries, releases and dummy data are for the project's members only (not custodians, not
    admins), in an active project, with a valid accreditation."""
    check_token_scope(actor, project_id)
    if project is None or actor.user is None or actor.user.username not in project.members:
        raise NotFound(f"no project {project_id} that you are a member of")
    check_member_access(project, actor.user, on)
    return project


def check_dataset_in_scope(project: Project, dataset: str) -> None:
    if dataset not in project.scope:
        raise PermissionDenied(
            f"dataset {dataset!r} is not in this project's scope"
            f" (approved: {', '.join(sorted(project.scope)) or 'none'})"
        )


def check_view_budget(actor: Actor, project_id: int, project: Project | None) -> Project:
    """A project's budget account is seen by its members, admins (with a personal token) and operators."""
    if project is None:
        raise NotFound(f"no project {project_id}")
    check_token_scope(actor, project_id)
    if actor.is_operator or (actor.has_role(Role.ADMIN) and actor.project_scope is None):
        return project
    if actor.user is None or actor.user.username not in project.members:
        raise NotFound(f"no project {project_id} that you are a member of")
    return project


def check_spend_budget(actor: Actor, project_id: int, project: Project | None, on: date) -> Project:
    """Spending also needs the member's access to be live (active project, valid accreditation)."""
    project = check_view_budget(actor, project_id, project)
    if actor.user is not None:
        check_member_access(project, actor.user, on)
    return project


# --- workspaces --------------------------------------------------------------------------------------


def check_open_workspace(user: User, project_id: int, project: Project | None, on: date) -> Project:
    """A member opens their project's workspace while they may use the project."""
    if project is None:
        raise PermissionDenied(f"there is no project {project_id}")
    check_member_access(project, user, on)
    return project


# --- the execution record of workspaces ---------------------------------------------------------


def check_record_execution(actor: Actor) -> tuple[int, str]:
    """Only a workspace records the code run in it, with its token (which names the project and the
    member); the API also asks for the workspace server's own key (``WorkspaceServerActor``), so code
    in a notebook, which holds the token alone, cannot write the record. Returns (project, member)."""
    if actor.project_scope is None or actor.user is None:
        raise PermissionDenied("only a workspace records the code run in it; this needs its workspace token")
    return actor.project_scope, actor.user.username


def check_purge_executions(actor: Actor) -> None:
    """A record whose retention is over is purged by an operator, or an admin with a personal token."""
    if actor.is_operator:
        return
    if actor.project_scope is not None or not actor.has_role(Role.ADMIN):
        raise PermissionDenied("only an admin or an operator purges an execution record")


def can_view_executions(actor: Actor, project: Project, custodian_ids: Collection[int]) -> bool:
    """What ran in a project's workspaces is read by those who oversee the project: the custodians of
    the datasets in its scope and admins, with a personal token, and operators. Never with a workspace
    token, and never by the project's own members, whatever other roles they hold: the record is
    oversight of their work by others (nobody checks their own work), not a way for colleagues to
    watch each other; a member's own code is in their workspace."""
    if actor.is_operator:
        return True
    if actor.user is None or actor.project_scope is not None or is_member(actor, project):
        return False
    parties = project_parties(actor, project, custodian_ids)
    return Party.CUSTODIAN in parties or Party.ADMIN in parties


def check_view_executions(
    actor: Actor, project_id: int, project: Project | None, custodian_ids: Collection[int]
) -> Project:
    """As :func:`can_view_executions`. A workspace token is refused outright; to anyone else who may
    not read it (a member too) the project is not found, as for the budget of a project one is not a
    member of."""
    if actor.project_scope is not None:
        raise PermissionDenied(
            "a workspace token never reads the execution record; read it with your personal token"
        )
    if project is None or not can_view_executions(actor, project, custodian_ids):
        raise NotFound(
            f"no project {project_id} whose execution record you may read"
            " (the custodians of its datasets and admins read it, its members do not)"
        )
    return project


# --- outputs -----------------------------------------------------------------------------------------


def can_view_output(actor: Actor, request: OutputRequest, project: Project) -> bool:
    """Members see their project's requests (a workspace token, its own project's); reviewers and
    admins every request past draft."""
    if actor.is_operator:
        return True
    if actor.project_scope is not None:
        return actor.project_scope == request.project_id and is_member(actor, project)
    if is_member(actor, project):
        return True
    return request.state is not OutputState.DRAFT and (
        actor.has_role(Role.REVIEWER) or actor.has_role(Role.ADMIN)
    )


def check_output_member(actor: Actor, project: Project, on: date, *, frozen_ok: bool = False) -> None:
    """The actor acts as a member of the project (workspace tokens only for their own project);
    unless ``frozen_ok``, the project must be active and the member accredited."""
    check_token_scope(actor, project.id)
    if actor.user is None or not is_member(actor, project):
        raise PermissionDenied(
            f"only members of project {project.id} can create, change, submit or withdraw its output requests"
        )
    if not frozen_ok:
        check_member_access(project, actor.user, on)


def check_output_project(actor: Actor, project_id: int, project: Project | None, on: date) -> Project:
    """A member opens an output request in their project (by hand or from an ACRO folder)."""
    if project is None or (not actor.is_operator and not is_member(actor, project)):
        check_token_scope(actor, project_id)
        raise NotFound(f"no project {project_id} that you are a member of")
    check_output_member(actor, project, on)
    return project


def can_review_outputs(actor: Actor) -> bool:
    """Deciding on outputs needs a person: the reviewer role, with a personal token."""
    return actor.user is not None and actor.project_scope is None and actor.has_role(Role.REVIEWER)


def check_review_outputs(actor: Actor) -> str:
    """As :func:`can_review_outputs`; returns the reviewer's username."""
    if not can_review_outputs(actor):
        raise PermissionDenied(
            "deciding on outputs needs the reviewer role and your personal token"
            " (an operator acts with --as REVIEWER)"
        )
    assert actor.user is not None
    return actor.user.username


def check_not_own_outputs(actor: Actor, project: Project) -> None:
    """A member never reads their own project's held files as a reviewer."""
    if is_member(actor, project):
        raise PermissionDenied(f"you are a member of project {project.id}; its outputs are checked by others")


def can_release_outputs(actor: Actor) -> bool:
    if actor.is_operator:
        return True
    return actor.project_scope is None and (actor.has_role(Role.REVIEWER) or actor.has_role(Role.ADMIN))


def check_release_outputs(actor: Actor) -> None:
    if not can_release_outputs(actor):
        raise PermissionDenied("releasing outputs needs the reviewer or admin role")


def check_download_token(actor: Actor) -> None:
    """Released files leave outside the workspace: a workspace token never downloads."""
    if actor.project_scope is not None:
        raise PermissionDenied(
            "released outputs are downloaded outside the workspace with your personal token;"
            " a workspace token cannot download"
        )


def check_download_outputs(actor: Actor, project: Project, on: date) -> None:
    """Released files are downloaded by members, outside the workspace, with a personal token."""
    check_download_token(actor)
    if not actor.is_operator:
        check_output_member(actor, project, on)


def withdraw_party(actor: Actor, project: Project) -> AirlockParty:
    """Who withdraws a release, as the airlock's state machine knows them; refuses everyone else."""
    if actor.is_operator:
        return AirlockParty.ADMIN
    if actor.project_scope is not None:
        raise PermissionDenied("withdrawing a release needs your personal token, not a workspace token")
    if is_member(actor, project):
        return AirlockParty.RESEARCHER
    if actor.has_role(Role.REVIEWER):
        return AirlockParty.REVIEWER
    if actor.has_role(Role.ADMIN):
        return AirlockParty.ADMIN
    raise PermissionDenied("only a project member, a reviewer or an admin can withdraw a release")
