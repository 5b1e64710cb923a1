"""The applicant's pages: their access requests with the custodians' decisions, and the Five Safes
form asked a page at a time (the design system's task list and question pages), saved after every
page, checked on a "check your answers" page and submitted.

The pages call the access use cases the API calls (``AccessService.start_draft``, ``save_section``,
``submit_draft``, ``discard_draft``, ``list_requests``, ``get``, ``withdraw``): which fields a section
holds and what is acceptable are the domain's (:mod:`enclave.domain.access.drafts`); this module only
turns form fields into answers and answers back into fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from starlette.responses import RedirectResponse, Response

from enclave.api.deps import ServicesDep
from enclave.api.schemas import MAX_INT
from enclave.domain.access.drafts import SECTION, SECTIONS, Draft, InvalidAnswers, Progress, Section
from enclave.domain.access.form import ProjectRole
from enclave.domain.access.requests import AccessRequest
from enclave.domain.access.states import REQUEST_MACHINE, Party, RequestState
from enclave.domain.catalog.datasets import PERSON_COLUMN
from enclave.domain.errors import EnclaveError, NotFound
from enclave.domain.identity.accounts import Actor, Role
from enclave.portal.forms import DateFields, FormErrors, refusal_sentence, text_field
from enclave.portal.requests import DECISION_TAGS, LEGAL_BASES, REQUEST_TAGS, history
from enclave.portal.sessions import CheckedForm, signed_in
from enclave.portal.web import PREFIX, Renderer
from enclave.wiring import Services

router = APIRouter(prefix=PREFIX, include_in_schema=False)

ApplicantPage = Annotated[Actor, Depends(signed_in(Role.RESEARCHER))]
Id = Annotated[int, PathParam(ge=1, le=MAX_INT)]

PROGRESS_TAGS = {
    Progress.NOT_STARTED: ("blue", "Not yet started"),
    Progress.IN_PROGRESS: ("light-blue", "In progress"),
    Progress.COMPLETED: ("", "Completed"),
}

#: Blank rows the team page offers, to add people without JavaScript.
SPARE_ROWS = 3
MAX_ROWS = 40

DONE = {
    "saved": "Your answers were saved. You can come back to this application at any time.",
    "submitted": "Your access request was submitted. The custodians of its datasets have been told.",
    "discarded": "The application was deleted.",
    "withdrawn": "You withdrew this access request.",
}

#: Requests per page of "your access requests".
REQUESTS_PAGE = 50


_render = Renderer(
    DONE,
    request_tags=REQUEST_TAGS,
    decision_tags=DECISION_TAGS,
    progress_tags=PROGRESS_TAGS,
    sections=SECTIONS,
    legal_bases=LEGAL_BASES,
)


def _draft_url(draft: Draft, page: str = "") -> str:
    return f"{PREFIX}/applications/drafts/{draft.id}" + (f"/{page}" if page else "")


# --- your access requests -------------------------------------------------------------------------


@router.get("/applications", response_class=HTMLResponse, name="researcher_applications")
def applications(
    request: Request,
    services: ServicesDep,
    actor: ApplicantPage,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    total = services.access.count_requests(actor)
    pages = max(1, -(-total // REQUESTS_PAGE))
    page = min(page, pages)
    found = services.access.list_requests(
        actor, newest_first=True, offset=(page - 1) * REQUESTS_PAGE, limit=REQUESTS_PAGE
    )
    return _render(
        request,
        "applications/list.html",
        title="Your access requests",
        drafts=services.access.drafts(actor),
        requests=found,
        total=total,
        page=page,
        pages=pages,
        my_id=actor.user.id if actor.user is not None else None,
    )


@router.post("/applications/new", response_class=HTMLResponse)
def start(request: Request, services: ServicesDep, actor: ApplicantPage, form: CheckedForm) -> Response:
    draft = services.access.start_draft(actor)
    return RedirectResponse(_draft_url(draft), status_code=303)


# --- the task list --------------------------------------------------------------------------------


@router.get("/applications/drafts/{draft_id}", response_class=HTMLResponse)
def task_list(request: Request, draft_id: Id, services: ServicesDep, actor: ApplicantPage) -> HTMLResponse:
    draft = services.access.draft(actor, draft_id)
    return _render(request, "applications/tasks.html", title=draft.title or "New access request", draft=draft)


# --- the question pages ---------------------------------------------------------------------------


@dataclass
class Typed:
    """A section's fields as the page shows them (strings as typed), and the answers they make."""

    fields: dict[str, Any]
    answers: dict[str, Any]
    #: Where each answer's problem is shown: the path of a problem -> the id of its field.
    where: dict[str, str]
    errors: FormErrors


def _catalogue(services: Services, draft: Draft) -> list[dict[str, Any]]:
    """The datasets one may ask for, with their columns (the person pseudonym is implied), and any
    dataset the draft names that the catalog no longer has, so it can be taken out."""
    datasets = [
        {
            "name": d["name"],
            "title": d["title"],
            "description": d["description"],
            "columns": [c["name"] for c in d["columns"] if c["name"] != PERSON_COLUMN],
        }
        for d in services.catalog.public_catalogue()
    ]
    known = {d["name"] for d in datasets}
    for wanted in draft.answers.get("datasets", []):
        if isinstance(wanted, dict) and wanted.get("dataset") not in known:
            name = str(wanted.get("dataset"))
            datasets.append(
                {"name": name, "title": name, "description": "Not in the catalog any more.", "columns": []}
            )
    return datasets


def _fields_of(section: Section, answers: dict[str, Any]) -> dict[str, Any]:
    """The page's fields from saved answers."""
    fields: dict[str, Any] = {}
    if section.key == "team":
        rows = [
            {"username": str(m.get("username", "")), "role": str(m.get("role", ""))}
            for m in answers.get("team", [])
            if isinstance(m, dict)
        ]
        fields["team"] = rows + [{"username": "", "role": "analyst"} for _ in range(SPARE_ROWS)]
    elif section.key == "data":
        fields["datasets"] = {
            str(d.get("dataset")): {
                "columns": [str(c) for c in d.get("columns", [])],
                "justification": str(d.get("justification", "")),
            }
            for d in answers.get("datasets", [])
            if isinstance(d, dict)
        }
    elif section.key == "dates":
        for name in ("start_date", "end_date"):
            value = answers.get(name)
            fields[name] = DateFields.of(date.fromisoformat(value) if isinstance(value, str) else None)
        budget = answers.get("budget") or {}
        fields["epsilon"] = str(budget.get("epsilon") or "")
        fields["delta"] = str(budget.get("delta") or "")
    else:
        for name in section.fields:
            value = answers.get(name)
            fields[name] = str(value) if value is not None else ""
    return fields


def _read(section: Section, form: Any, catalogue: list[dict[str, Any]]) -> Typed:
    """The page's fields as typed, and the answers they make for the domain to check."""
    errors = FormErrors()
    fields: dict[str, Any] = {}
    answers: dict[str, Any] = {}
    where: dict[str, str] = {}
    if section.key == "team":
        rows = []
        for index in range(MAX_ROWS):
            if f"team-{index}-username" not in form:
                break
            rows.append(
                {
                    "username": text_field(form, f"team-{index}-username", 64).lower(),
                    "role": text_field(form, f"team-{index}-role", 20),
                }
            )
        fields["team"] = rows
        members: list[dict[str, str]] = []
        for index, row in enumerate(rows):
            if row["username"]:
                where[f"team.{len(members)}.username"] = f"team-{index}-username"
                where[f"team.{len(members)}.role"] = f"team-{index}-role"
                members.append(row)
        where["team"] = "team-0-username"
        answers["team"] = members
    elif section.key == "data":
        chosen = [v for v in form.getlist("datasets") if isinstance(v, str)]
        offered = {d["name"] for d in catalogue}
        picked = [name for name in dict.fromkeys(chosen) if name in offered]
        fields["datasets"] = {
            name: {
                "columns": [v for v in form.getlist(f"columns-{name}") if isinstance(v, str)],
                "justification": text_field(form, f"justification-{name}", 6000),
            }
            for name in offered
            if name in picked or form.getlist(f"columns-{name}") or text_field(form, f"justification-{name}")
        }
        answers["datasets"] = [
            {"dataset": name, **fields["datasets"].get(name, {"columns": [], "justification": ""})}
            for name in picked
        ]
        where["datasets"] = f"dataset-{catalogue[0]['name']}" if catalogue else "datasets"
        for index, name in enumerate(picked):
            where[f"datasets.{index}.columns"] = f"columns-{name}"
            where[f"datasets.{index}.justification"] = f"justification-{name}"
            where[f"datasets.{index}"] = f"columns-{name}"
    elif section.key == "dates":
        for name, label in (("start_date", "The start date"), ("end_date", "The end date")):
            typed = DateFields.read(form, name)
            fields[name] = typed
            where[name] = name
            try:
                value = typed.value()
            except ValueError:
                errors.add(name, f"{label} must be a real date, like 31 12 2027")
                continue
            if value is not None:
                answers[name] = value.isoformat()
        fields["epsilon"] = text_field(form, "epsilon", 40)
        fields["delta"] = text_field(form, "delta", 40)
        answers["budget"] = {"epsilon": fields["epsilon"], "delta": fields["delta"] or None}
        where.update({"budget": "epsilon", "budget.epsilon": "epsilon", "budget.delta": "delta"})
    else:
        for name in section.fields:
            fields[name] = text_field(form, name, 6000)
            where[name] = name
            if fields[name]:
                answers[name] = fields[name]
    return Typed(fields, answers, where, errors)


def _question_page(
    request: Request,
    services: Services,
    draft: Draft,
    section: Section,
    fields: dict[str, Any],
    *,
    errors: FormErrors | None = None,
    status: int = 200,
) -> HTMLResponse:
    return _render(
        request,
        f"applications/{section.key}.html",
        title=section.title,
        status=status,
        draft=draft,
        section=section,
        fields=fields,
        errors=errors or FormErrors(),
        catalogue=_catalogue(services, draft) if section.key == "data" else [],
        roles=list(ProjectRole),
    )


@router.get("/applications/drafts/{draft_id}/check", response_class=HTMLResponse)
def check(request: Request, draft_id: Id, services: ServicesDep, actor: ApplicantPage) -> HTMLResponse:
    return _check_page(request, services.access.draft(actor, draft_id))


@router.post("/applications/drafts/{draft_id}/check", response_class=HTMLResponse)
def submit(
    request: Request, draft_id: Id, services: ServicesDep, actor: ApplicantPage, form: CheckedForm
) -> Response:
    return _submit(request, services, actor, draft_id)


@router.get("/applications/drafts/{draft_id}/delete", response_class=HTMLResponse)
def delete_form(request: Request, draft_id: Id, services: ServicesDep, actor: ApplicantPage) -> HTMLResponse:
    draft = services.access.draft(actor, draft_id)
    return _render(request, "applications/delete.html", title="Delete this application", draft=draft)


@router.post("/applications/drafts/{draft_id}/delete", response_class=HTMLResponse)
def delete(
    request: Request, draft_id: Id, services: ServicesDep, actor: ApplicantPage, form: CheckedForm
) -> Response:
    services.access.discard_draft(actor, draft_id)
    return RedirectResponse(f"{PREFIX}/applications?done=discarded", status_code=303)


def _section(name: str) -> Section:
    found = SECTION.get(name)
    if found is None:
        raise NotFound(f"the application has no section {name!r}")
    return found


@router.get("/applications/drafts/{draft_id}/{name}", response_class=HTMLResponse)
def question(
    request: Request, draft_id: Id, name: str, services: ServicesDep, actor: ApplicantPage
) -> HTMLResponse:
    section = _section(name)
    draft = services.access.draft(actor, draft_id)
    return _question_page(request, services, draft, section, _fields_of(section, dict(draft.answers)))


def _next_page(draft: Draft, section: Section) -> str:
    """After a section: the next one not yet completed, else the check-your-answers page."""
    order = [s.key for s in SECTIONS]
    following = order[order.index(section.key) + 1 :] + order[: order.index(section.key)]
    for key in following:
        if draft.progress(SECTION[key]) is not Progress.COMPLETED:
            return _draft_url(draft, key)
    return _draft_url(draft, "check")


@router.post("/applications/drafts/{draft_id}/{name}", response_class=HTMLResponse)
def answer(
    request: Request,
    draft_id: Id,
    name: str,
    services: ServicesDep,
    actor: ApplicantPage,
    form: CheckedForm,
) -> Response:
    section = _section(name)
    draft = services.access.draft(actor, draft_id)
    typed = _read(section, form, _catalogue(services, draft) if section.key == "data" else [])
    if section.key == "team":
        rows = typed.fields["team"]
        blank = next((i for i, row in enumerate(reversed(rows)) if row["username"]), len(rows))
        rows += [{"username": "", "role": "analyst"}] * max(0, min(SPARE_ROWS - blank, MAX_ROWS - len(rows)))
    if not typed.errors:
        try:
            draft = services.access.save_section(actor, draft_id, section.key, typed.answers)
        except InvalidAnswers as exc:
            for path, message in exc.problems:
                typed.errors.add(_where(typed.where, path), message)
        except NotFound:
            raise
        except EnclaveError as exc:
            typed.errors.add(next(iter(typed.where.values()), section.fields[0]), refusal_sentence(exc))
    if typed.errors:
        return _question_page(
            request, services, draft, section, typed.fields, errors=typed.errors, status=400
        )
    if form.get("then") == "later":
        return RedirectResponse(_draft_url(draft) + "?done=saved", status_code=303)
    return RedirectResponse(_next_page(draft, section), status_code=303)


def _where(where: dict[str, str], path: str) -> str:
    """The field a problem is shown at: the path itself, or its nearest parent the page knows."""
    parts = path.split(".")
    while parts:
        found = where.get(".".join(parts))
        if found is not None:
            return found
        parts.pop()
    return next(iter(where.values()), path)


# --- check your answers, and submit ---------------------------------------------------------------


def _check_page(
    request: Request, draft: Draft, *, errors: FormErrors | None = None, status: int = 200
) -> HTMLResponse:
    return _render(
        request,
        "applications/check.html",
        title="Check your answers before you submit",
        status=status,
        draft=draft,
        answers=draft.answers,
        errors=errors or FormErrors(),
    )


def _submit(request: Request, services: Services, actor: Actor, draft_id: int) -> Response:
    draft = services.access.draft(actor, draft_id)
    try:
        submitted = services.access.submit_draft(actor, draft_id)
    except NotFound:
        raise
    except EnclaveError as exc:
        errors = FormErrors()
        if isinstance(exc, InvalidAnswers):
            for path, message in exc.problems:
                errors.add("submit", f"{path.split('.')[0].replace('_', ' ').capitalize()}: {message}")
        else:
            errors.add("submit", refusal_sentence(exc))
        return _check_page(request, draft, errors=errors, status=400)
    return RedirectResponse(f"{PREFIX}/applications/{submitted.id}?done=submitted", status_code=303)


# --- a request, as its applicant and team see it --------------------------------------------------


def _applicant(actor: Actor, found: AccessRequest) -> bool:
    return actor.user is not None and actor.user.id == found.applicant_id


@router.get("/applications/{request_id}", response_class=HTMLResponse)
def application(
    request: Request, request_id: Id, services: ServicesDep, actor: ApplicantPage
) -> HTMLResponse:
    found = services.access.get(actor, request_id)
    applicant = _applicant(actor, found)
    return _render(
        request,
        "applications/request.html",
        title=found.form.title,
        item=found,
        form=found.form,
        history=history(found),
        editable=applicant and found.state in (RequestState.DRAFT, RequestState.CHANGES_REQUESTED),
        withdrawable=applicant
        and REQUEST_MACHINE.can(found.state.value, RequestState.WITHDRAWN.value, Party.APPLICANT),
    )


@router.post("/applications/{request_id}/change", response_class=HTMLResponse)
def change(
    request: Request, request_id: Id, services: ServicesDep, actor: ApplicantPage, form: CheckedForm
) -> Response:
    draft = services.access.start_draft(actor, request_id=request_id)
    return RedirectResponse(_draft_url(draft), status_code=303)


@router.get("/applications/{request_id}/withdraw", response_class=HTMLResponse)
def withdraw_form(
    request: Request, request_id: Id, services: ServicesDep, actor: ApplicantPage
) -> HTMLResponse:
    found = services.access.get(actor, request_id)
    return _render(
        request, "applications/withdraw.html", title="Withdraw this request", item=found, errors=FormErrors()
    )


@router.post("/applications/{request_id}/withdraw", response_class=HTMLResponse)
def withdraw(
    request: Request, request_id: Id, services: ServicesDep, actor: ApplicantPage, form: CheckedForm
) -> Response:
    found = services.access.get(actor, request_id)
    try:
        services.access.withdraw(actor, request_id, text_field(form, "reason", 2000))
    except NotFound:
        raise
    except EnclaveError as exc:
        errors = FormErrors()
        errors.add("reason", refusal_sentence(exc))
        return _render(
            request,
            "applications/withdraw.html",
            title="Withdraw this request",
            status=400,
            item=found,
            errors=errors,
        )
    return RedirectResponse(f"{PREFIX}/applications/{request_id}?done=withdrawn", status_code=303)


@router.post("/projects/{project_id}/amend", response_class=HTMLResponse)
def amend(
    request: Request, project_id: Id, services: ServicesDep, actor: ApplicantPage, form: CheckedForm
) -> Response:
    draft = services.access.start_draft(actor, amends_project_id=project_id)
    return RedirectResponse(_draft_url(draft), status_code=303)
