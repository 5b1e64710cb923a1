"""Applications in progress through the real services: a section at a time, submitted only whole,
seen only by their owner, and submitted as a new request, a resubmission or an amendment."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import yaml

from enclave.domain.access.drafts import SECTIONS, InvalidAnswers, Progress
from enclave.domain.access.requests import Decision
from enclave.domain.access.states import RequestState
from enclave.domain.errors import InvalidInput, InvalidState, NotFound, PermissionDenied
from enclave.domain.identity.accounts import Actor, ApiToken, TokenKind
from enclave.wiring import Services
from tests.conftest import OPERATOR
from tests.integration.test_access import (
    EXAMPLE,
    actor,
    approve_all,
    audit_actions,
    population,
    submitted,
    world,
)

__all__ = ["population", "world"]


def answers() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    raw["start_date"] = str(raw["start_date"])
    raw["end_date"] = str(raw["end_date"])
    return raw


def fill(services: Services, who: Actor, draft_id: int, raw: dict[str, Any]) -> None:
    for section in SECTIONS:
        services.access.save_section(who, draft_id, section.key, {f: raw[f] for f in section.fields})


def test_an_application_answered_a_section_at_a_time_is_submitted_once_whole(world: Services) -> None:
    researcher = actor(world, "researcher")
    draft = world.access.start_draft(researcher)
    assert draft.answers == {"team": [{"username": "researcher", "role": "lead"}]}
    assert [draft.progress(s) for s in SECTIONS][2] is Progress.COMPLETED  # the team: the applicant leads
    assert not draft.complete
    raw = answers()
    saved = world.access.save_section(
        researcher, draft.id, "project", {f: raw[f] for f in SECTIONS[0].fields}
    )
    assert saved.progress(SECTIONS[0]) is Progress.COMPLETED
    assert saved.title == raw["title"]
    # Submitting an unfinished application is refused, saying what is left, and changes nothing.
    with pytest.raises(InvalidInput, match="not complete: finish Legal basis and ethics"):
        world.access.submit_draft(researcher, draft.id)
    assert world.access.list_requests(researcher) == []
    fill(world, researcher, draft.id, raw)
    request = world.access.submit_draft(researcher, draft.id)
    assert request.state is RequestState.SUBMITTED
    assert request.form.title == raw["title"]
    assert [p.dataset for p in request.parts] == ["demographics", "lab_results", "prescriptions"]
    # The draft went with the submission: it cannot be submitted twice.
    assert world.access.drafts(researcher) == []
    with pytest.raises(NotFound):
        world.access.submit_draft(researcher, draft.id)
    actions = audit_actions(world)
    assert actions.count("access_request.submitted") == 1
    assert actions.count("access_draft.saved") == len(SECTIONS) + 1  # the project section twice
    assert actions.count("access_draft.submitted") == 1


def test_each_section_is_checked_by_the_forms_own_rules(world: Services) -> None:
    researcher = actor(world, "researcher")
    draft = world.access.start_draft(researcher)
    with pytest.raises(InvalidAnswers) as refused:
        world.access.save_section(
            researcher,
            draft.id,
            "project",
            {"title": "abc", "lay_summary": "", "organisation": "Uni", "purpose": "p" * 30},
        )
    problems = dict(refused.value.problems)
    assert problems["title"] == "Project title must be 5 characters or more"
    assert problems["lay_summary"] == "Enter a lay summary"
    assert problems["public_benefit"] == "Enter the public benefit"
    assert "organisation" not in problems
    with pytest.raises(InvalidAnswers) as refused:
        world.access.save_section(
            researcher, draft.id, "team", {"team": [{"username": "researcher", "role": "analyst"}]}
        )
    assert refused.value.problems == (("team", "The team needs exactly one lead"),)
    with pytest.raises(InvalidAnswers) as refused:
        world.access.save_section(
            researcher,
            draft.id,
            "dates",
            {"start_date": "2026-02-01", "end_date": "2026-01-01", "budget": {"epsilon": "0"}},
        )
    problems = dict(refused.value.problems)
    assert problems == {"budget.epsilon": "Epsilon must be more than 0"}
    with pytest.raises(InvalidAnswers) as refused:
        world.access.save_section(
            researcher,
            draft.id,
            "dates",
            {"start_date": "2026-02-01", "end_date": "2026-01-01", "budget": {"epsilon": "1"}},
        )
    assert refused.value.problems == (("end_date", "The end date must be after the start date"),)
    with pytest.raises(InvalidAnswers):
        world.access.save_section(researcher, draft.id, "outputs", {"analysis_plan": "x" * 30, "extra": 1})
    with pytest.raises(NotFound, match="no section"):
        world.access.save_section(researcher, draft.id, "secrets", {})
    # Nothing refused was kept.
    assert world.access.draft(researcher, draft.id).answers == draft.answers


def test_a_draft_is_its_owners_alone(world: Services) -> None:
    researcher = actor(world, "researcher")
    draft = world.access.start_draft(researcher)
    for other in (actor(world, "rival"), actor(world, "carl"), actor(world, "admin"), OPERATOR):
        with pytest.raises(NotFound):
            world.access.draft(other, draft.id)
        with pytest.raises(NotFound):
            world.access.save_section(other, draft.id, "basis", {"legal_basis": "statutory_gateway"})
        with pytest.raises(NotFound):
            world.access.discard_draft(other, draft.id)
        assert draft.id not in [d.id for d in world.access.drafts(other)]
    # Not through a workspace token either, and a custodian without the researcher role cannot apply.
    assert researcher.user is not None
    now = world.identity.now()
    token = ApiToken(
        1, researcher.user.id, TokenKind.WORKSPACE, "nb", "enc_", now, now + timedelta(days=1), None, 1
    )
    in_workspace = Actor.for_user(researcher.user, token)
    with pytest.raises(NotFound):
        world.access.draft(in_workspace, draft.id)
    with pytest.raises(PermissionDenied):
        world.access.start_draft(in_workspace)
    with pytest.raises(PermissionDenied, match="researcher role"):
        world.access.start_draft(actor(world, "carl"))
    world.access.discard_draft(researcher, draft.id)
    assert world.access.drafts(researcher) == []
    assert "access_draft.discarded" in audit_actions(world)


def test_a_refused_submission_keeps_the_draft(world: Services) -> None:
    """The catalog and the accounts refuse a team member without accreditation: nothing is created,
    and the answers are still there to correct."""
    researcher = actor(world, "researcher")
    draft = world.access.start_draft(researcher)
    raw = answers()
    raw["team"] = [{"username": "researcher", "role": "lead"}, {"username": "rival", "role": "analyst"}]
    fill(world, researcher, draft.id, raw)
    with pytest.raises(InvalidInput, match="rival holds no valid accreditation"):
        world.access.submit_draft(researcher, draft.id)
    assert world.access.list_requests(researcher) == []
    assert world.access.draft(researcher, draft.id).answers["team"][1]["username"] == "rival"
    assert "access_request.created" not in audit_actions(world)


def test_changes_asked_for_are_made_and_resubmitted_through_a_draft(world: Services) -> None:
    rid = submitted(world)
    world.access.decide(
        actor(world, "carl"), rid, "demographics", Decision.CHANGES_REQUESTED, "fewer columns"
    )
    researcher = actor(world, "researcher")
    draft = world.access.start_draft(researcher, request_id=rid)
    assert draft.complete
    assert draft.request_id == rid
    # Opening it again returns the same draft.
    assert world.access.start_draft(researcher, request_id=rid).id == draft.id
    datasets = draft.answers["datasets"]
    datasets[0]["columns"] = ["sex", "region"]
    world.access.save_section(researcher, draft.id, "data", {"datasets": datasets})
    request = world.access.submit_draft(researcher, draft.id)
    assert request.id == rid
    assert request.state is RequestState.SUBMITTED
    assert request.form.datasets[0].columns == ["sex", "region"]
    assert {p.decision for p in request.parts} == {Decision.PENDING}
    # A submitted request is not editable: no draft can be opened for it, nor for someone else's.
    with pytest.raises(InvalidState, match="only drafts and requests sent back"):
        world.access.start_draft(researcher, request_id=rid)
    with pytest.raises(NotFound):
        world.access.start_draft(actor(world, "rival"), request_id=rid)


def test_an_amendment_starts_from_the_project_as_approved(world: Services) -> None:
    rid = submitted(world)
    world.access.decide(
        actor(world, "carl"), rid, "demographics", Decision.APPROVED, "ok", columns=["sex", "region"]
    )
    for dataset in ("lab_results", "prescriptions"):
        world.access.decide(actor(world, "cora"), rid, dataset, Decision.APPROVED, "ok")
    researcher = actor(world, "researcher")
    pid = world.access.get(researcher, rid).project_id
    assert pid is not None
    with pytest.raises(NotFound):
        world.access.start_draft(actor(world, "rival"), amends_project_id=pid)
    draft = world.access.start_draft(researcher, amends_project_id=pid)
    assert draft.complete
    by_name = {d["dataset"]: d for d in draft.answers["datasets"]}
    assert sorted(by_name["demographics"]["columns"]) == ["region", "sex"]  # as narrowed
    assert by_name["lab_results"]["justification"].startswith("HbA1c results")
    world.access.save_section(
        researcher,
        draft.id,
        "dates",
        {"start_date": "2026-01-01", "end_date": "2028-03-31", "budget": {"epsilon": "4"}},
    )
    amendment = world.access.submit_draft(researcher, draft.id)
    assert amendment.amends_project_id == pid
    assert amendment.state is RequestState.SUBMITTED
    approve_all(world, amendment.id)
    project = world.access.project(researcher, pid)
    assert project.end_date == date(2028, 3, 31)
    assert str(project.epsilon) == "4"
