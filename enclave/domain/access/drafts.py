"""An application in progress: the access-request form answered a section at a time.

The portal asks the form's questions a page at a time (the design system's "question pages" with a
task list), and an applicant may stop after any page and come back. What they have answered is a
:class:`Draft`: a mapping of the form's fields to answers, each section checked when it is saved by
the same field rules as the whole form (:class:`enclave.domain.access.form.AccessRequestForm`, whose
fields each section borrows) and the same rules between fields (``team_problem``, ``dates_problem``,
``datasets_problem``). A draft becomes an access request only when every section is answered and the
whole form, then the catalog and the accounts, accept it (``AccessService.submit_draft``).

A draft may start empty, from a request of the applicant's that is a draft or was sent back for
changes (submitting it edits and resubmits that request), or from an active project the applicant
leads (submitting it asks for an amendment of the project).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from enclave.domain.access.form import (
    AccessRequestForm,
    DatasetRequest,
    Member,
    datasets_problem,
    dates_problem,
    team_problem,
)
from enclave.domain.access.requests import AccessRequest, Project
from enclave.domain.errors import InvalidInput

#: How many applications in progress one person may keep.
MAX_DRAFTS = 50


@dataclass(frozen=True)
class Question:
    """One field of the form as a question page asks it: its label, a hint, and the noun its error
    messages use ("Enter a title")."""

    name: str
    label: str
    noun: str
    hint: str = ""


@dataclass(frozen=True)
class Section:
    """A task of the task list: the questions of one page, under one of the Five Safes."""

    key: str
    title: str
    safe: str
    questions: tuple[Question, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.questions)


SECTIONS: tuple[Section, ...] = (
    Section(
        "project",
        "Describe your project",
        "Safe projects",
        (
            Question("title", "Project title", "a project title", "Between 5 and 200 characters."),
            Question(
                "lay_summary",
                "Lay summary",
                "a lay summary",
                "For the public register: what you will study and why, in plain words.",
            ),
            Question("organisation", "Organisation", "the organisation responsible for the project"),
            Question("purpose", "Purpose", "the project's purpose", "The research question."),
            Question(
                "public_benefit",
                "Public benefit",
                "the public benefit",
                "Who will benefit from the results, and how.",
            ),
        ),
    ),
    Section(
        "basis",
        "Legal basis and ethics",
        "Safe projects",
        (
            Question("legal_basis", "Legal basis", "a legal basis"),
            Question(
                "ethics_reference",
                "Ethics approval reference",
                "the ethics approval reference",
                "The reference of the research ethics committee's approval.",
            ),
        ),
    ),
    Section(
        "team",
        "Your team",
        "Safe people",
        (Question("team", "Team members", "the team", "Everyone who will work with the data."),),
    ),
    Section(
        "data",
        "Datasets and columns",
        "Safe data",
        (Question("datasets", "Datasets", "the datasets", "Ask only for the columns you need."),),
    ),
    Section(
        "dates",
        "Dates and privacy budget",
        "Safe settings",
        (
            Question("start_date", "Start date", "the start date"),
            Question("end_date", "End date", "the end date"),
            Question("budget", "Privacy budget", "the privacy budget"),
        ),
    ),
    Section(
        "outputs",
        "Analysis and outputs",
        "Safe outputs",
        (
            Question("analysis_plan", "Analysis plan", "the analysis plan", "The analyses you will run."),
            Question(
                "output_plan",
                "Output plan",
                "the output plan",
                "The aggregate outputs you will ask the airlock to release.",
            ),
        ),
    ),
)
SECTION = {s.key: s for s in SECTIONS}

#: The nested fields of team members, datasets and the budget, for error messages.
NESTED = {
    "username": "the username",
    "role": "a role",
    "columns": "at least one column",
    "justification": "why these columns are needed",
    "epsilon": "epsilon",
    "delta": "delta",
    "dataset": "a dataset",
}


class Progress(StrEnum):
    NOT_STARTED = "not started"
    IN_PROGRESS = "in progress"
    COMPLETED = "completed"


class InvalidAnswers(InvalidInput):
    """A section's answers refused: each problem is the field's path (``team.0.username``) and a
    sentence for the applicant."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{path}: {message}" for path, message in self.problems))


@dataclass(frozen=True)
class Draft:
    id: int
    owner_id: int
    owner: str
    answers: Mapping[str, Any]
    request_id: int | None
    amends_project_id: int | None
    created_at: datetime
    updated_at: datetime

    def progress(self, section: Section) -> Progress:
        answered = [name for name in section.fields if name in self.answers]
        if not answered:
            return Progress.NOT_STARTED
        return Progress.COMPLETED if len(answered) == len(section.fields) else Progress.IN_PROGRESS

    @property
    def sections_done(self) -> int:
        return sum(self.progress(s) is Progress.COMPLETED for s in SECTIONS)

    @property
    def complete(self) -> bool:
        return self.sections_done == len(SECTIONS)

    @property
    def title(self) -> str:
        value = self.answers.get("title")
        return value if isinstance(value, str) else ""

    def form(self) -> AccessRequestForm:
        """The whole form, checked as a submission is: ``InvalidAnswers`` naming what is missing."""
        missing = [s.title for s in SECTIONS if self.progress(s) is not Progress.COMPLETED]
        if missing:
            raise InvalidInput("the application is not complete: finish " + ", ".join(missing))
        try:
            return AccessRequestForm.model_validate(dict(self.answers))
        except ValidationError as exc:
            raise InvalidAnswers(_problems(exc)) from None


def _section_model(section: Section) -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (AccessRequestForm.model_fields[name].annotation, AccessRequestForm.model_fields[name])
        for name in section.fields
    }
    return create_model(f"{section.key.title()}Answers", __config__=ConfigDict(extra="forbid"), **fields)


_MODELS = {s.key: _section_model(s) for s in SECTIONS}
_NOUN = {q.name: q.noun for s in SECTIONS for q in s.questions} | NESTED
_LABEL = {q.name: q.label for s in SECTIONS for q in s.questions}


#: How the design system words each kind of pydantic error, given the field's label and the error's
#: context (its limits).
_WORDING = {
    "string_too_short": "{label} must be {min_length} characters or more",
    "string_too_long": "{label} must be {max_length} characters or fewer",
    "string_pattern_mismatch": (
        "{label} must start with a lower-case letter and use only lower-case letters, digits and _"
    ),
    "decimal_parsing": "{label} must be a number",
    "decimal_type": "{label} must be a number",
    "float_parsing": "{label} must be a number",
    "greater_than": "{label} must be more than {gt}",
    "greater_than_equal": "{label} must be {ge} or more",
    "less_than": "{label} must be less than {lt}",
    "less_than_equal": "{label} must be {le} or less",
    "decimal_max_places": "{label} has too many digits",
    "decimal_max_digits": "{label} has too many digits",
    "date_parsing": "{label} must be a real date",
    "date_from_datetime_parsing": "{label} must be a real date",
    "date_type": "{label} must be a real date",
}


def _sentence(error: Mapping[str, Any]) -> str:
    """A pydantic error as the design system words it ("Enter a title", "Title must be ...")."""
    loc = [p for p in error["loc"] if isinstance(p, str)]
    name = loc[-1] if loc else ""
    noun = _NOUN.get(name, name.replace("_", " "))
    label = _LABEL.get(name, noun[:1].upper() + noun[1:] if noun else "This answer")
    if noun.startswith(("a ", "an ", "the ")) and name not in _LABEL:
        label = noun.split(" ", 1)[1].capitalize()
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "missing" or (kind in ("string_too_short", "too_short") and error.get("input") in ("", [])):
        verb = "Select" if name in ("legal_basis", "role", "columns", "datasets", "dataset") else "Enter"
        return f"{verb} {noun}"
    if kind == "enum":
        return f"Select {noun}"
    wording = _WORDING.get(kind)
    if wording is not None:
        return wording.format(label=label, **ctx)
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[:1].upper() + message[1:]


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    return [(".".join(str(p) for p in err["loc"]), _sentence(err)) for err in exc.errors()]


def check_section(section: Section, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The section's answers as stored (JSON values), or ``InvalidAnswers``: every field's problem,
    then the rules between the section's fields."""
    try:
        model = _MODELS[section.key].model_validate(dict(raw))
    except ValidationError as exc:
        raise InvalidAnswers(_problems(exc)) from None
    answers: dict[str, Any] = model.model_dump(mode="json")
    problem: tuple[str, str | None] | None = None
    if section.key == "team":
        problem = ("team", team_problem(list(model.team)))  # type: ignore[attr-defined]
    elif section.key == "data":
        problem = ("datasets", datasets_problem(list(model.datasets)))  # type: ignore[attr-defined]
    elif section.key == "dates":
        found = dates_problem(model.start_date, model.end_date)  # type: ignore[attr-defined]
        problem = ("end_date", "The end date must be after the start date" if found else None)
    if problem is not None and problem[1]:
        message = problem[1]
        raise InvalidAnswers([(problem[0], message[:1].upper() + message[1:])])
    return answers


def answers_of(form: AccessRequestForm) -> dict[str, Any]:
    """A whole form's answers, to start a draft from a request."""
    answers: dict[str, Any] = form.model_dump(mode="json")
    return answers


def amendment_answers(project: Project, original: AccessRequest | None) -> dict[str, Any]:
    """The answers an amendment starts from: the project as approved now (its scope, members, end
    date and budget), and the rest of the form from the request that created it."""
    answers = answers_of(original.form) if original is not None else {}
    justification = {
        d["dataset"]: d["justification"] for d in answers.get("datasets", []) if isinstance(d, dict)
    }
    answers.update(
        title=project.title,
        lay_summary=project.lay_summary,
        organisation=project.organisation,
        start_date=project.start_date.isoformat(),
        end_date=project.end_date.isoformat(),
        budget={
            "epsilon": str(project.epsilon),
            "delta": str(project.delta) if project.delta is not None else None,
        },
        team=[
            Member.model_validate({"username": u, "role": r}).model_dump(mode="json")
            for u, r in sorted(project.members.items(), key=lambda m: (m[1] != "lead", m[0]))
        ],
        datasets=[
            DatasetRequest.model_validate(
                {
                    "dataset": name,
                    "columns": columns,
                    "justification": justification.get(name, "As approved for this project."),
                }
            ).model_dump(mode="json")
            for name, columns in sorted(project.scope.items())
        ],
    )
    return answers
