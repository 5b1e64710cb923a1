"""Access requests and projects, walked through the real services on the configured database.

Factories drive the real business logic (ingest, submission, decisions) to reach each state; no
fixture writes a state directly.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from enclave.domain.access.form import AccessRequestForm, parse_form
from enclave.domain.access.requests import Decision, can_view_request
from enclave.domain.access.states import PROJECT_MACHINE, REQUEST_MACHINE, ProjectState, RequestState
from enclave.domain.errors import InvalidInput, InvalidState, NotFound, PermissionDenied
from enclave.domain.identity.accounts import Actor, ApiToken, Role, TokenKind
from enclave.domain.policy import check_member_access
from enclave.ingest.spec import parse_spec
from enclave.synth import generate
from enclave.wiring import Services
from tests.conftest import OPERATOR, FakeClock, make_account

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "enclave" / "specs"
EXAMPLE = ROOT / "access_requests" / "examples" / "diabetes-regional-variation.yaml"
# demographics belongs to carl; lab_results and prescriptions to cora.
OWNERS = {"demographics": "carl", "lab_results": "cora", "prescriptions": "cora"}


def actor(services: Services, username: str) -> Actor:
    return Actor.for_user(services.identity.get_user(OPERATOR, username))


@pytest.fixture(scope="session")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("population")
    generate(400, 11, out)
    return out


@pytest.fixture
def world(services: Services, population: Path, clock: FakeClock) -> Services:
    """Two custodians with ingested datasets, an accredited researcher (the example's lead), a second
    researcher, an admin."""
    clock.now = clock.now.replace(year=2026, month=1, day=10)
    for name in ("carl", "cora"):
        make_account(services, name, Role.CUSTODIAN)
    make_account(services, "researcher", Role.RESEARCHER)
    make_account(services, "rival", Role.RESEARCHER)
    make_account(services, "admin", Role.ADMIN)
    services.identity.set_accreditation(OPERATOR, "researcher", date(2028, 6, 30))
    services.identity.set_accreditation(OPERATOR, "rival", None)
    for dataset, owner in OWNERS.items():
        text = (SPECS / f"{dataset}.yaml").read_text().replace("custodian: custodian", f"custodian: {owner}")
        spec = parse_spec(text, base=SPECS)
        services.catalog.ingest(actor(services, owner), spec, population / f"{dataset}.csv")
    return services


def example_form(**changes: object) -> AccessRequestForm:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw.update(changes)
    return parse_form(yaml.safe_dump(raw))


def submitted(services: Services, **changes: object) -> int:
    return services.access.create(actor(services, "researcher"), example_form(**changes), submit=True).id


def approve_all(services: Services, request_id: int) -> None:
    for dataset, owner in OWNERS.items():
        services.access.decide(actor(services, owner), request_id, dataset, Decision.APPROVED, "fine")


def audit_actions(services: Services) -> list[str]:
    with services.db.unit_of_work(write=False) as uow:
        return [e.action for e in uow.audit.iter_events()]


def test_every_custodian_approves_and_a_scoped_project_is_created(world: Services) -> None:
    """Each custodian approves their part, narrowing scope and adding a condition; the project gets
    the narrowest scope, the smallest epsilon, the strictest threshold; every step is audited."""
    rid = submitted(world)
    carl, cora = actor(world, "carl"), actor(world, "cora")
    request = world.access.decide(
        carl, rid, "demographics", Decision.APPROVED, "region and sex suffice", columns=["sex", "region"]
    )
    assert request.state is RequestState.UNDER_REVIEW
    world.access.decide(
        cora,
        rid,
        "lab_results",
        Decision.APPROVED,
        "ok with a threshold",
        epsilon=Decimal("2.5"),
        conditions={"min_count": 20},
    )
    request = world.access.decide(
        cora, rid, "prescriptions", Decision.APPROVED, "ok", end_date=date(2027, 6, 30)
    )
    assert request.state is RequestState.APPROVED
    assert request.project_id is not None
    project = world.access.project(actor(world, "researcher"), request.project_id)
    assert project.state is ProjectState.ACTIVE
    assert project.scope["demographics"] == ["sex", "region"]
    assert project.scope["lab_results"] == ["test_code", "result_value", "unit", "sample_date"]
    assert project.epsilon == Decimal("2.5")
    assert project.end_date == date(2027, 6, 30)
    assert project.conditions == {"min_count": 20}
    assert project.members == {"researcher": "lead"}
    actions = audit_actions(world)
    tail = actions[actions.index("access_request.created") :]
    assert tail == [
        "access_request.created",
        "access_request.submitted",
        "access_request.review_started",
        "access_request.part_decided",
        "access_request.part_decided",
        "access_request.part_decided",
        "project.created",
        "budget.granted",
        "access_request.approved",
    ]
    assert world.audit.verify(OPERATOR).ok
    (entry,) = world.access.register()
    assert entry["title"] == project.title
    assert entry["datasets"] == ["demographics", "lab_results", "prescriptions"]
    assert entry["status"] == "active"


def test_one_rejection_rejects_and_nothing_more_can_be_decided(world: Services) -> None:
    """A single rejected part rejects the request; further decisions are refused."""
    rid = submitted(world)
    world.access.decide(actor(world, "carl"), rid, "demographics", Decision.APPROVED, "fine")
    request = world.access.decide(
        actor(world, "cora"), rid, "lab_results", Decision.REJECTED, "not justified"
    )
    assert request.state is RequestState.REJECTED
    with pytest.raises(InvalidState, match="nothing to decide"):
        world.access.decide(actor(world, "cora"), rid, "prescriptions", Decision.APPROVED, "late")
    assert world.access.projects(actor(world, "researcher")) == []


def test_changes_requested_edit_and_resubmit_resets_every_part(world: Services) -> None:
    """A request for changes sends the request back; the applicant edits and resubmits; every part is
    pending again; then approval goes through."""
    rid = submitted(world)
    world.access.decide(actor(world, "carl"), rid, "demographics", Decision.APPROVED, "fine")
    request = world.access.decide(
        actor(world, "cora"), rid, "lab_results", Decision.CHANGES_REQUESTED, "ask for fewer columns"
    )
    assert request.state is RequestState.CHANGES_REQUESTED
    researcher = actor(world, "researcher")
    smaller = example_form(
        datasets=[
            {"dataset": "demographics", "columns": ["sex", "region"], "justification": "x" * 25},
            {"dataset": "lab_results", "columns": ["test_code", "result_value"], "justification": "y" * 25},
            {"dataset": "prescriptions", "columns": ["drug_class"], "justification": "z" * 25},
        ]
    )
    world.access.edit(researcher, rid, smaller)
    request = world.access.submit(researcher, rid)
    assert request.state is RequestState.SUBMITTED
    assert {p.decision for p in request.parts} == {Decision.PENDING}
    approve_all(world, rid)
    assert world.access.get(researcher, rid).state is RequestState.APPROVED
    assert "access_request.resubmitted" in audit_actions(world)


@pytest.mark.parametrize("stage", ["draft", "submitted", "under_review", "changes_requested"])
def test_withdrawal_from_every_open_state(world: Services, stage: str) -> None:
    """The applicant may withdraw until a decision is final; after approval it is refused."""
    researcher = actor(world, "researcher")
    request = world.access.create(researcher, example_form(), submit=stage != "draft")
    if stage == "under_review":
        world.access.start_review(actor(world, "carl"), request.id)
    if stage == "changes_requested":
        world.access.decide(
            actor(world, "carl"), request.id, "demographics", Decision.CHANGES_REQUESTED, "why?"
        )
    assert world.access.withdraw(researcher, request.id, "no longer needed").state is RequestState.WITHDRAWN
    with pytest.raises(InvalidState, match="from withdrawn: nothing"):
        world.access.submit(researcher, request.id)


def test_withdrawal_after_approval_is_refused(world: Services) -> None:
    """An approved request is final; the project is closed instead."""
    rid = submitted(world)
    approve_all(world, rid)
    with pytest.raises(InvalidState, match="cannot change access request from approved to withdrawn"):
        world.access.withdraw(actor(world, "researcher"), rid)


def test_who_sees_and_who_decides(world: Services) -> None:
    """Researchers see their own requests; custodians those touching their datasets; deciding another
    custodian's part, deciding twice, deciding as a team member, and non-custodians are refused."""
    rid = submitted(world)
    make_account(world, "dora", Role.CUSTODIAN)
    assert [r.id for r in world.access.list_requests(actor(world, "carl"))] == [rid]
    assert world.access.list_requests(actor(world, "dora")) == []
    assert world.access.list_requests(actor(world, "rival")) == []
    with pytest.raises(NotFound):
        world.access.get(actor(world, "rival"), rid)
    with pytest.raises(PermissionDenied, match="only cora, the custodian of lab_results"):
        world.access.decide(actor(world, "carl"), rid, "lab_results", Decision.APPROVED, "mine?")
    with pytest.raises(NotFound):
        world.access.decide(actor(world, "rival"), rid, "lab_results", Decision.APPROVED, "x")
    world.access.decide(actor(world, "carl"), rid, "demographics", Decision.APPROVED, "fine")
    with pytest.raises(InvalidState, match="already decided"):
        world.access.decide(actor(world, "carl"), rid, "demographics", Decision.REJECTED, "changed my mind")
    with pytest.raises(InvalidInput, match="does not ask for 'deaths'"):
        world.access.decide(actor(world, "carl"), rid, "deaths", Decision.APPROVED, "x")
    with pytest.raises(InvalidInput, match="not asked: quantity"):
        world.access.decide(
            actor(world, "cora"), rid, "lab_results", Decision.APPROVED, "x", columns=["quantity"]
        )
    # A custodian who is on the team cannot decide.
    world.identity.grant_role(OPERATOR, "cora", Role.RESEARCHER)
    world.identity.set_accreditation(OPERATOR, "cora", date(2028, 1, 1))
    team = [{"username": "researcher", "role": "lead"}, {"username": "cora", "role": "analyst"}]
    rid2 = submitted(world, team=team)
    with pytest.raises(PermissionDenied, match="a member of"):
        world.access.decide(actor(world, "cora"), rid2, "lab_results", Decision.APPROVED, "self-approval")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"datasets": [{"dataset": "genomes", "columns": ["snp"], "justification": "x" * 25}]},
            "unknown dataset",
        ),
        (
            {"datasets": [{"dataset": "demographics", "columns": ["eye_colour"], "justification": "x" * 25}]},
            "no column(s) eye_colour",
        ),
        (
            {"team": [{"username": "researcher", "role": "lead"}, {"username": "ghost"}]},
            "'ghost' has no account",
        ),
        (
            {"team": [{"username": "researcher", "role": "lead"}, {"username": "rival"}]},
            "rival holds no valid accreditation",
        ),
        ({"budget": {"epsilon": 50}}, "above demographics's policy maximum of 10"),
    ],
)
def test_bad_submissions_are_refused_and_nothing_is_stored(
    world: Services, changes: dict, message: str
) -> None:
    """Each problem is a 4xx-class error naming it; the refused submission leaves no request."""
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        submitted(world, **changes)
    assert world.access.list_requests(OPERATOR) == []


def test_custodian_policy_caps_the_budget(world: Services) -> None:
    """A custodian lowers their dataset's maximum epsilon; requests above it are refused."""
    world.access.set_dataset_policy(actor(world, "carl"), "demographics", Decimal("2"))
    with pytest.raises(InvalidInput, match="maximum of 2"):
        submitted(world)
    with pytest.raises(PermissionDenied):
        world.access.set_dataset_policy(actor(world, "cora"), "demographics", Decimal("100"))


def test_approval_needs_every_member_accredited_and_changes_nothing_otherwise(
    world: Services, clock: FakeClock
) -> None:
    """If a member's accreditation has lapsed by approval time, the last approval is refused and the
    request, its parts and the audit log are as before."""
    rid = submitted(world)
    world.access.decide(actor(world, "carl"), rid, "demographics", Decision.APPROVED, "fine")
    world.access.decide(actor(world, "cora"), rid, "lab_results", Decision.APPROVED, "fine")
    world.identity.set_accreditation(OPERATOR, "researcher", clock.now.date() - timedelta(days=1))
    before = audit_actions(world)
    with pytest.raises(InvalidInput, match="no valid accreditation for researcher"):
        world.access.decide(actor(world, "cora"), rid, "prescriptions", Decision.APPROVED, "fine")
    assert audit_actions(world) == before
    request = world.access.get(OPERATOR, rid)
    assert request.state is RequestState.UNDER_REVIEW
    assert request.part("prescriptions").decision is Decision.PENDING


def test_project_lifecycle_takes_effect_at_once(world: Services, clock: FakeClock) -> None:
    """Suspension, reinstatement, revocation and expiry change what members may do immediately; a
    lapsed accreditation blocks a member until renewed."""
    rid = submitted(world)
    approve_all(world, rid)
    researcher = actor(world, "researcher")
    pid = world.access.get(researcher, rid).project_id
    assert pid is not None
    user = world.identity.get_user(OPERATOR, "researcher")
    check_member_access(world.access.project(researcher, pid), user, clock.now.date())
    world.access.set_project_state(actor(world, "carl"), pid, ProjectState.SUSPENDED, "audit pending")
    with pytest.raises(PermissionDenied, match="is suspended"):
        check_member_access(world.access.project(researcher, pid), user, clock.now.date())
    with pytest.raises(PermissionDenied, match="only the admin or custodian can reinstate"):
        world.access.set_project_state(researcher, pid, ProjectState.ACTIVE, "please")
    world.access.set_project_state(actor(world, "admin"), pid, ProjectState.ACTIVE, "audit done")
    world.identity.set_accreditation(OPERATOR, "researcher", clock.now.date() - timedelta(days=1))
    lapsed = world.identity.get_user(OPERATOR, "researcher")
    with pytest.raises(PermissionDenied, match="accreditation is not valid"):
        check_member_access(world.access.project(researcher, pid), lapsed, clock.now.date())
    project = world.access.project(researcher, pid)
    after_end = project.end_date + timedelta(days=1)
    assert project.effective_state(after_end) is ProjectState.EXPIRED
    clock.now = clock.now.replace(year=after_end.year, month=after_end.month, day=after_end.day)
    assert world.access.expire_due() == [pid]
    assert world.access.project(researcher, pid).state is ProjectState.EXPIRED
    with pytest.raises(InvalidState, match="from expired: nothing"):
        world.access.set_project_state(actor(world, "admin"), pid, ProjectState.ACTIVE, "oops")


def test_every_state_is_reached_through_the_real_services(world: Services) -> None:
    """Walking the real services through every path visits every state of both machines."""
    seen_requests: set[str] = set()
    seen_projects: set[str] = set()
    researcher = actor(world, "researcher")

    def note(rid: int) -> None:
        seen_requests.add(world.access.get(OPERATOR, rid).state.value)

    draft = world.access.create(researcher, example_form(), submit=False).id
    note(draft)
    world.access.withdraw(researcher, draft)
    note(draft)
    rid = submitted(world)
    note(rid)
    world.access.start_review(actor(world, "carl"), rid)
    note(rid)
    world.access.decide(actor(world, "carl"), rid, "demographics", Decision.CHANGES_REQUESTED, "why?")
    note(rid)
    world.access.submit(researcher, rid)
    world.access.decide(actor(world, "cora"), rid, "lab_results", Decision.REJECTED, "no")
    note(rid)
    for target in (ProjectState.SUSPENDED, ProjectState.ACTIVE, ProjectState.REVOKED):
        ok = submitted(world)
        approve_all(world, ok)
        note(ok)
        pid = world.access.get(OPERATOR, ok).project_id
        assert pid is not None
        seen_projects.add(world.access.project(OPERATOR, pid).state.value)
        world.access.set_project_state(actor(world, "admin"), pid, ProjectState.SUSPENDED, "test")
        seen_projects.add(ProjectState.SUSPENDED.value)
        if target is not ProjectState.SUSPENDED:
            world.access.set_project_state(actor(world, "admin"), pid, target, "test")
            seen_projects.add(world.access.project(OPERATOR, pid).state.value)
    closing = submitted(world)
    approve_all(world, closing)
    pid = world.access.get(OPERATOR, closing).project_id
    assert pid is not None
    world.access.set_project_state(researcher, pid, ProjectState.CLOSED, "finished")
    seen_projects.add(world.access.project(OPERATOR, pid).state.value)
    seen_projects.add(ProjectState.EXPIRED.value)  # walked in test_project_lifecycle_takes_effect_at_once
    assert seen_requests == set(REQUEST_MACHINE.states)
    assert seen_projects == set(PROJECT_MACHINE.states)


def test_amendments_go_through_the_same_custodians(world: Services) -> None:
    """The lead asks to add a member, extend the end date and top up the budget; each custodian
    decides; on approval the same project carries the new values, and the audit says what changed."""
    rid = submitted(world)
    approve_all(world, rid)
    researcher = actor(world, "researcher")
    pid = world.access.get(researcher, rid).project_id
    assert pid is not None
    make_account(world, "newbie", Role.RESEARCHER)
    world.identity.set_accreditation(OPERATOR, "newbie", date(2029, 1, 1))
    amended_form = example_form(
        team=[{"username": "researcher", "role": "lead"}, {"username": "newbie", "role": "analyst"}],
        end_date=date(2028, 3, 31),
        budget={"epsilon": "4.5"},
    )
    with pytest.raises(NotFound):
        world.access.amend(actor(world, "rival"), pid, amended_form)
    with pytest.raises(PermissionDenied, match="only the project's lead"):
        world.access.amend(actor(world, "carl"), pid, amended_form)
    with pytest.raises(InvalidInput, match="not reduce it below"):
        world.access.amend(researcher, pid, example_form(budget={"epsilon": "1"}))
    amendment = world.access.amend(researcher, pid, amended_form)
    assert amendment.state is RequestState.SUBMITTED
    assert amendment.amends_project_id == pid
    approve_all(world, amendment.id)
    project = world.access.project(researcher, pid)
    assert project.epsilon == Decimal("4.5")
    assert project.end_date == date(2028, 3, 31)
    assert project.members == {"researcher": "lead", "newbie": "analyst"}
    assert len(world.access.projects(OPERATOR)) == 1
    assert "project.amended" in audit_actions(world)
    with pytest.raises(InvalidInput, match="cannot remove members"):
        world.access.amend(researcher, pid, example_form(budget={"epsilon": "5"}, end_date=date(2028, 3, 31)))
    world.access.set_project_state(OPERATOR, pid, ProjectState.SUSPENDED, "pause")
    with pytest.raises(InvalidState, match="only an active project can be amended"):
        world.access.amend(researcher, pid, amended_form)


def test_paged_reads_show_each_user_exactly_what_the_rule_allows(world: Services) -> None:
    """The paged, indexed query (applicant, team member, custodian of a part) agrees with the policy
    function applied to every request, for every kind of actor, across edits of the team; pages are
    newest first, counted whatever the page, and filtered by state."""
    world.identity.grant_role(OPERATOR, "cora", Role.RESEARCHER)
    world.identity.set_accreditation(OPERATOR, "cora", date(2028, 1, 1))
    demographics = [{"dataset": "demographics", "columns": ["sex", "region"], "justification": "x" * 25}]
    alone = submitted(world, datasets=demographics)
    team = [{"username": "researcher", "role": "lead"}, {"username": "cora", "role": "analyst"}]
    with_cora = submitted(world, datasets=demographics, team=team)
    everything = submitted(world)
    world.access.decide(actor(world, "carl"), everything, "demographics", Decision.REJECTED, "no")
    # Cora leaves the team of the second request: a resubmission rewrites who stands to it.
    world.access.decide(actor(world, "carl"), with_cora, "demographics", Decision.CHANGES_REQUESTED, "who?")
    researcher = actor(world, "researcher")
    world.access.edit(researcher, with_cora, example_form(datasets=demographics))
    world.access.submit(researcher, with_cora)

    operator_sees = world.access.list_requests(OPERATOR)
    assert [r.id for r in operator_sees] == [alone, with_cora, everything]
    for name in ("carl", "cora", "researcher", "rival", "admin"):
        who = actor(world, name)
        expected = [r.id for r in operator_sees if can_view_request(who, r)]
        assert [r.id for r in world.access.list_requests(who)] == expected, name
        assert world.access.count_requests(who) == len(expected), name
    assert [r.id for r in world.access.list_requests(actor(world, "cora"))] == [everything]
    # The custodian's queue: only requests with a part on their datasets, even for an admin.
    assert world.access.list_requests(actor(world, "admin"), deciding=True) == []
    carl = actor(world, "carl")
    assert [r.id for r in world.access.list_requests(carl, deciding=True, newest_first=True)] == [
        everything,
        with_cora,
        alone,
    ]
    page = world.access.list_requests(carl, deciding=True, newest_first=True, offset=1, limit=1)
    assert [r.id for r in page] == [with_cora]
    assert world.access.count_requests(carl, deciding=True, state=RequestState.REJECTED) == 1
    assert [r.id for r in world.access.list_requests(carl, state=RequestState.SUBMITTED)] == [
        alone,
        with_cora,
    ]
    # A workspace token sees no request at all.
    assert researcher.user is not None
    now = world.identity.now()
    token = ApiToken(
        1, researcher.user.id, TokenKind.WORKSPACE, "nb", "enc_", now, now + timedelta(days=1), None, 1
    )
    assert world.access.list_requests(Actor.for_user(researcher.user, token)) == []
