"""The project-access policy: each ``can_*`` agrees with its ``check_*``, over every kind of actor.

The policy is the one place where project access is decided; services, routes and pages call it.
These tests walk a grid of actors (operator, members with and without accreditation, a member's
workspace token for their own project and for another, reviewers, admins, custodians, outsiders)
over projects in every state, and check that the paired functions never disagree and that the
rules the Five Safes rest on hold.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from enclave.domain import policy
from enclave.domain.access.requests import Project
from enclave.domain.access.states import Party, ProjectState
from enclave.domain.errors import EnclaveError, NotFound, PermissionDenied
from enclave.domain.identity.accounts import Actor, ApiToken, Role, TokenKind, User
from enclave.domain.outputs.review import OutputRequest
from enclave.domain.outputs.states import AirlockParty, OutputState

TODAY = date(2026, 6, 1)
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
CUSTODIAN_ID = 50


def user(uid: int, name: str, *roles: Role, accredited: bool = True, active: bool = True) -> User:
    return User(
        id=uid,
        username=name,
        display_name=name.title(),
        email=f"{name}@example.org",
        organisation="Org",
        roles=frozenset(roles),
        active=active,
        accreditation_expires=TODAY + timedelta(days=30) if accredited else TODAY - timedelta(days=1),
        created_at=NOW,
    )


def workspace_token(owner: User, project_id: int) -> ApiToken:
    return ApiToken(
        id=owner.id * 10,
        user_id=owner.id,
        kind=TokenKind.WORKSPACE,
        name="workspace",
        prefix="enc_abcdef",
        created_at=NOW,
        expires_at=NOW + timedelta(days=1),
        revoked_at=None,
        project_id=project_id,
    )


def project(state: ProjectState = ProjectState.ACTIVE, *, end: date = TODAY + timedelta(days=90)) -> Project:
    return Project(
        id=1,
        request_id=1,
        title="A project",
        lay_summary="",
        organisation="Org",
        state=state,
        start_date=TODAY - timedelta(days=90),
        end_date=end,
        epsilon=Decimal(1),
        delta=None,
        scope={"demographics": ["sex", "region"]},
        conditions={},
        members={"lead": "lead", "member": "member", "lapsed": "member", "both": "member"},
        created_at=NOW,
    )


def output_request(state: OutputState) -> OutputRequest:
    return OutputRequest(1, 1, "member", state, 1, "", "", None, None, NOW, NOW, None)


LEAD = user(1, "lead", Role.RESEARCHER)
MEMBER = user(2, "member", Role.RESEARCHER)
LAPSED = user(3, "lapsed", Role.RESEARCHER, accredited=False)
OUTSIDER = user(4, "outsider", Role.RESEARCHER)
REVIEWER = user(5, "reviewer", Role.REVIEWER)
ADMIN = user(6, "admin", Role.ADMIN)
CUSTODIAN = user(CUSTODIAN_ID, "custodian", Role.CUSTODIAN)
BOTH = user(7, "both", Role.RESEARCHER, Role.REVIEWER)  # a reviewer who is also a member

ACTORS = {
    "operator": Actor.operator("root"),
    "lead": Actor.for_user(LEAD),
    "member": Actor.for_user(MEMBER),
    "lapsed member": Actor.for_user(LAPSED),
    "outsider": Actor.for_user(OUTSIDER),
    "reviewer": Actor.for_user(REVIEWER),
    "admin": Actor.for_user(ADMIN),
    "custodian": Actor.for_user(CUSTODIAN),
    "member and reviewer": Actor.for_user(BOTH),
    "member's workspace token": Actor.for_user(MEMBER, workspace_token(MEMBER, 1)),
    "member's token for another project": Actor.for_user(MEMBER, workspace_token(MEMBER, 2)),
    "reviewer's workspace token": Actor.for_user(REVIEWER, workspace_token(REVIEWER, 1)),
}
PROJECTS = {
    "active": project(),
    "suspended": project(ProjectState.SUSPENDED),
    "revoked": project(ProjectState.REVOKED),
    "past its end date": project(end=TODAY - timedelta(days=1)),
}
CASES = list(itertools.product(ACTORS, PROJECTS))


def allowed(check: Callable[[], object]) -> bool:
    try:
        check()
    except EnclaveError:
        return False
    return True


@pytest.mark.parametrize(("who", "which"), CASES)
def test_every_can_agrees_with_its_check(who: str, which: str) -> None:
    """A page that hides a button (``can_*``) and the use case that refuses it (``check_*``) agree."""
    actor, proj = ACTORS[who], PROJECTS[which]
    assert policy.can_review_outputs(actor) == allowed(lambda: policy.check_review_outputs(actor))
    assert policy.can_release_outputs(actor) == allowed(lambda: policy.check_release_outputs(actor))
    if actor.user is not None:
        assert policy.can_member_access(proj, actor.user, TODAY) == allowed(
            lambda: policy.check_member_access(proj, actor.user, TODAY)  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(("who", "which"), CASES)
def test_only_live_members_query_and_others_learn_nothing_of_the_project(who: str, which: str) -> None:
    """Queries need a member, accredited, of an active project, with a token for that project; a
    non-member is told there is no such project (its existence is not disclosed)."""
    actor, proj = ACTORS[who], PROJECTS[which]
    live = (
        actor.user is not None
        and actor.user.username in proj.members
        and actor.user.is_accredited(TODAY)
        and proj.effective_state(TODAY) is ProjectState.ACTIVE
        and actor.project_scope in (None, proj.id)
    )
    assert allowed(lambda: policy.check_query_access(actor, 1, proj, TODAY)) == live
    if actor.project_scope in (None, 1) and not policy.is_member(actor, proj):
        with pytest.raises(NotFound, match="no project 1 that you are a member of"):
            policy.check_query_access(actor, 1, proj, TODAY)
    with pytest.raises(NotFound if actor.project_scope in (None, 1) else PermissionDenied):
        policy.check_query_access(actor, 1, None, TODAY)


@pytest.mark.parametrize(("who", "which"), CASES)
def test_spending_needs_what_querying_needs_and_admins_only_read(who: str, which: str) -> None:
    """The budget is read by members, admins and operators, and spent only by those who may query
    (operators aside)."""
    actor, proj = ACTORS[who], PROJECTS[which]
    if actor.is_operator:
        assert allowed(lambda: policy.check_spend_budget(actor, 1, proj, TODAY))
        return
    assert allowed(lambda: policy.check_spend_budget(actor, 1, proj, TODAY)) == allowed(
        lambda: policy.check_query_access(actor, 1, proj, TODAY)
    )
    reads = policy.is_member(actor, proj) or (actor.has_role(Role.ADMIN) and actor.project_scope is None)
    assert allowed(lambda: policy.check_view_budget(actor, 1, proj)) == (
        reads and actor.project_scope in (None, 1)
    )


@pytest.mark.parametrize(("who", "which"), CASES)
def test_nobody_reviews_or_releases_their_own_project_from_a_workspace(who: str, which: str) -> None:
    """Reviewing and releasing need a person with a personal token; a member never reads their
    project's held files as a reviewer."""
    actor, proj = ACTORS[who], PROJECTS[which]
    if actor.project_scope is not None:
        assert not policy.can_review_outputs(actor)
        assert not policy.can_release_outputs(actor)
        assert not allowed(lambda: policy.check_download_token(actor))
        assert not allowed(lambda: policy.withdraw_party(actor, proj))
    if policy.is_member(actor, proj):
        assert not allowed(lambda: policy.check_not_own_outputs(actor, proj))


@pytest.mark.parametrize(("who", "which"), CASES)
def test_outputs_are_seen_by_members_and_by_reviewers_and_admins_past_draft(who: str, which: str) -> None:
    actor, proj = ACTORS[who], PROJECTS[which]
    for state in OutputState:
        seen = policy.can_view_output(actor, output_request(state), proj)
        if actor.is_operator:
            assert seen
        elif actor.project_scope is not None:
            assert seen == (actor.project_scope == 1 and policy.is_member(actor, proj))
        elif policy.is_member(actor, proj):
            assert seen
        else:
            assert seen == (
                state is not OutputState.DRAFT
                and (actor.has_role(Role.REVIEWER) or actor.has_role(Role.ADMIN))
            )


def test_frozen_projects_keep_their_members_able_to_withdraw_but_not_to_add() -> None:
    """A suspended project's member may still withdraw a request (``frozen_ok``) but not change one."""
    actor, proj = ACTORS["member"], PROJECTS["suspended"]
    with pytest.raises(PermissionDenied, match="is suspended"):
        policy.check_output_member(actor, proj, TODAY)
    policy.check_output_member(actor, proj, TODAY, frozen_ok=True)
    with pytest.raises(PermissionDenied, match="only members of project 1"):
        policy.check_output_member(ACTORS["reviewer"], proj, TODAY, frozen_ok=True)


def test_who_withdraws_a_release_acts_as_the_party_the_state_machine_knows() -> None:
    proj = PROJECTS["active"]
    assert policy.withdraw_party(ACTORS["operator"], proj) is AirlockParty.ADMIN
    assert policy.withdraw_party(ACTORS["member"], proj) is AirlockParty.RESEARCHER
    assert policy.withdraw_party(ACTORS["member and reviewer"], proj) is AirlockParty.RESEARCHER
    assert policy.withdraw_party(ACTORS["reviewer"], proj) is AirlockParty.REVIEWER
    assert policy.withdraw_party(ACTORS["admin"], proj) is AirlockParty.ADMIN
    with pytest.raises(PermissionDenied, match="only a project member, a reviewer or an admin"):
        policy.withdraw_party(ACTORS["custodian"], proj)


def test_project_parties_and_who_sees_a_project() -> None:
    """Custodians of a dataset in scope, the lead, members and admins see a project; a workspace
    token acts as no party."""
    proj = PROJECTS["active"]
    custodians = {CUSTODIAN_ID}
    assert policy.project_parties(ACTORS["lead"], proj, custodians) == {Party.APPLICANT}
    assert policy.project_parties(ACTORS["custodian"], proj, custodians) == {Party.CUSTODIAN}
    assert policy.project_parties(ACTORS["custodian"], proj, set()) == frozenset()
    assert policy.project_parties(ACTORS["admin"], proj, custodians) == {Party.ADMIN}
    assert policy.project_parties(ACTORS["member's workspace token"], proj, custodians) == frozenset()
    seen = {who for who, actor in ACTORS.items() if policy.can_view_project(actor, proj, custodians)}
    assert seen == {
        "operator",
        "lead",
        "member",
        "lapsed member",
        "admin",
        "custodian",
        "member and reviewer",
        "member's workspace token",
        "member's token for another project",
    }


def test_workspaces_open_only_for_live_members() -> None:
    proj = PROJECTS["active"]
    assert policy.check_open_workspace(MEMBER, 1, proj, TODAY) is proj
    with pytest.raises(PermissionDenied, match="there is no project 9"):
        policy.check_open_workspace(MEMBER, 9, None, TODAY)
    with pytest.raises(PermissionDenied, match="accreditation is not valid"):
        policy.check_open_workspace(LAPSED, 1, proj, TODAY)
    with pytest.raises(PermissionDenied, match="not a member"):
        policy.check_open_workspace(OUTSIDER, 1, proj, TODAY)
    with pytest.raises(PermissionDenied, match="is expired"):
        policy.check_open_workspace(MEMBER, 1, PROJECTS["past its end date"], TODAY)


def test_datasets_outside_the_scope_are_refused_naming_what_was_approved() -> None:
    policy.check_dataset_in_scope(PROJECTS["active"], "demographics")
    with pytest.raises(PermissionDenied, match=r"'deaths' is not in this project's scope \(approved: demog"):
        policy.check_dataset_in_scope(PROJECTS["active"], "deaths")
