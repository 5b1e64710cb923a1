"""The researcher's pages: my projects (with the way into each one's workspace) and a project's page
(its scope, its privacy budget as a gauge, spending over time by member, and the history of its
releases as metadata).

Released values are never shown here. The portal is reachable from outside the enclave, and nothing
leaves it but through the airlock: a researcher reads their answers in the workspace, where the
notebook client fetches them. A release is described by its plan in words, its cost, its author and
its time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response

from enclave.api.deps import ServicesDep
from enclave.api.routes.outputs import file_response
from enclave.api.schemas import MAX_INT
from enclave.domain.access.requests import Project
from enclave.domain.errors import NotFound
from enclave.domain.identity.accounts import Actor, Role
from enclave.domain.outputs.review import worst_check
from enclave.domain.outputs.service import OutputView
from enclave.domain.policy import is_member
from enclave.domain.queries.budget import Account
from enclave.domain.queries.plans import Release
from enclave.portal.requests import PROJECT_TAGS
from enclave.portal.reviewer import CHECK_TAGS, DECISION_TAGS, STATE_TAGS
from enclave.portal.sessions import signed_in
from enclave.portal.web import PREFIX, pages_of

router = APIRouter(prefix=PREFIX, include_in_schema=False)

ResearcherPage = Annotated[Actor, Depends(signed_in(Role.RESEARCHER))]
Id = Annotated[int, PathParam(ge=1, le=MAX_INT)]


def workspace_address(hub_url: str, username: str, project_id: int) -> str:
    """The hub's address that starts (or opens) the member's workspace of a project: its named
    server ``p<id>`` (docs/workspaces.md)."""
    return f"{hub_url}/hub/spawn/{username}/p{project_id}"


def _my_projects(services: ServicesDep, actor: Actor) -> list[Project]:
    """The projects the actor is a member of, the newest first (custodians and admins see more
    projects through the API; this page is the researcher's own)."""
    return sorted((p for p in services.access.projects(actor) if is_member(actor, p)), key=lambda p: -p.id)


@router.get("/projects", response_class=HTMLResponse, name="researcher_projects")
def projects(request: Request, services: ServicesDep, actor: ResearcherPage) -> HTMLResponse:
    today = services.access.today()
    username = actor.user.username if actor.user is not None else ""
    return pages_of(request).render(
        request,
        "researcher/projects.html",
        title="My projects",
        projects=[
            (p, p.effective_state(today), workspace_address(services.settings.hub_url, username, p.id))
            for p in _my_projects(services, actor)
        ],
        project_tags=PROJECT_TAGS,
    )


# --- the budget, drawn ------------------------------------------------------------------------


@dataclass(frozen=True)
class Gauge:
    """The budget as shares of what was granted, in percent, for a bar drawn in SVG."""

    spent: float
    reserved: float
    remaining: float


def gauge(account: Account) -> Gauge:
    granted = account.granted.epsilon
    if granted <= 0:
        return Gauge(0.0, 0.0, 0.0)

    def share(part: Decimal) -> float:
        return round(float(part / granted * 100), 2)

    return Gauge(
        share(account.spent.epsilon), share(account.reserved.epsilon), share(account.remaining.epsilon)
    )


#: The lines of the spending chart: a colour and a dash pattern each, so no line is told from another
#: by colour alone.
STYLES = (
    ("#1d70b8", ""),
    ("#d4351c", "6 3"),
    ("#00703c", "2 2"),
    ("#4c2c92", "8 3 2 3"),
    ("#f47738", "1 3"),
    ("#0b0c0c", "10 4"),
)


@dataclass(frozen=True)
class Series:
    member: str
    total: Decimal
    releases: int
    points: str  # SVG polyline points, in the chart's 0-100 box
    colour: str
    dash: str


@dataclass(frozen=True)
class Chart:
    series: list[Series]
    start: date
    end: date
    top: Decimal  # epsilon at the top of the chart


def spending_chart(releases: list[Release], granted: Decimal, start: date, now: datetime) -> Chart:
    """Each member's epsilon spent so far, as a step line from the project's start to now (a little
    past the last release), with the granted budget (or all that was spent, if more) at the top."""
    begin = datetime.combine(start, time.min, tzinfo=UTC)
    last = max([now, *(r.created_at for r in releases)])
    # A twentieth of room after the last moment, so a step taken just now is still seen as a step.
    span = max((last - begin).total_seconds() * 1.05, 1.0)
    top = max(granted, sum((r.epsilon for r in releases), Decimal(0)), Decimal("0.000001"))

    def x(moment: datetime) -> float:
        return round(min(max((moment - begin).total_seconds() / span, 0.0), 1.0) * 100, 2)

    def y(spent: Decimal) -> float:
        return round(100 - float(spent / top) * 100, 2)

    members = sorted({r.author for r in releases})
    series = []
    for index, member in enumerate(members):
        own = sorted((r for r in releases if r.author == member), key=lambda r: r.created_at)
        spent = Decimal(0)
        points = [(0.0, 100.0)]
        for release in own:
            points.append((x(release.created_at), y(spent)))
            spent += release.epsilon
            points.append((x(release.created_at), y(spent)))
        points.append((100.0, y(spent)))
        colour, dash = STYLES[index % len(STYLES)]
        series.append(Series(member, spent, len(own), " ".join(f"{a},{b}" for a, b in points), colour, dash))
    return Chart(series, start, last.date(), top)


@router.get("/projects/{project_id}", response_class=HTMLResponse, name="researcher_project")
def project(request: Request, project_id: Id, services: ServicesDep, actor: ResearcherPage) -> HTMLResponse:
    found = services.access.project(actor, project_id)
    if not is_member(actor, found):
        raise NotFound(f"no project {project_id} that you are a member of")
    account = services.budgets.account(actor, project_id)
    releases = sorted(
        services.queries.releases(actor, project_id), key=lambda r: (r.created_at, r.id), reverse=True
    )
    outputs = sorted(services.outputs.list_requests(actor, project_id=project_id), key=lambda r: -r.id)
    username = actor.user.username if actor.user is not None else ""
    return pages_of(request).render(
        request,
        "researcher/project.html",
        title=found.title,
        project=found,
        state=found.effective_state(services.access.today()),
        project_tags=PROJECT_TAGS,
        account=account,
        gauge=gauge(account),
        chart=spending_chart(releases, account.granted.epsilon, found.start_date, services.identity.now()),
        releases=releases,
        workspace=workspace_address(services.settings.hub_url, username, found.id),
        outputs=outputs,
        output_tags=STATE_TAGS,
        lead=found.members.get(username) == "lead",
    )


# --- outputs ----------------------------------------------------------------------------------


def _my_output(services: ServicesDep, actor: Actor, output_id: int) -> tuple[OutputView, Project]:
    """An output request of one of the actor's projects (others' are for the reviewers' pages)."""
    view = services.outputs.show(actor, output_id)
    project = services.access.project(actor, view.request.project_id)
    if not is_member(actor, project):
        raise NotFound(f"no output request {output_id} of a project you are a member of")
    return view, project


@router.get("/outputs/{output_id}", response_class=HTMLResponse, name="researcher_output")
def output(request: Request, output_id: Id, services: ServicesDep, actor: ResearcherPage) -> HTMLResponse:
    """Where a request of mine stands: each file's checks (their sentences, never a cell's value),
    the reviewers' decisions and comments once review is over, and the released files."""
    view, project = _my_output(services, actor, output_id)
    released = {r.file_id: r for r in view.released}
    return pages_of(request).render(
        request,
        "researcher/output.html",
        title=f"Output request {output_id}",
        view=view,
        item=view.request,
        project=project,
        files=view.current_files,
        worst=worst_check(view.current_files),
        released=released,
        output_tags=STATE_TAGS,
        check_tags=CHECK_TAGS,
        decision_tags=DECISION_TAGS,
    )


@router.get("/outputs/{output_id}/files/{file_id}/download", name="researcher_download")
def download(output_id: Id, file_id: Id, services: ServicesDep, actor: ResearcherPage) -> Response:
    """A released file, as ``GET /outputs/{id}/files/{file}/download`` serves it: members only, with a
    personal sign-in (never a workspace token), audited by the service."""
    _my_output(services, actor, output_id)
    return file_response(services.outputs.download(actor, output_id, file_id))
