"""The access-request form, in Five Safes terms.

The pydantic model is the single source of the form: ``access_requests/schema.json`` is exported
from it (``make docs``; a test fails when stale) and the example requests in
``access_requests/examples/`` are validated against it. Checks that need the catalog or the accounts
(datasets and columns exist, members are accredited, the budget is within the datasets' policy)
are in :func:`check_against`, which the access service calls before a submission is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from enclave.domain.errors import InvalidInput

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Username = Annotated[str, Field(pattern=r"^[a-z][a-z0-9._-]{1,63}$")]
Sentence = Annotated[str, Field(min_length=20, max_length=5000)]


class LegalBasis(StrEnum):
    PUBLIC_TASK_RESEARCH = "gdpr_6_1_e_and_9_2_j"  # public task + scientific research with safeguards
    LEGITIMATE_INTEREST_RESEARCH = "gdpr_6_1_f_and_9_2_j"
    CONSENT = "gdpr_6_1_a_and_9_2_a"
    STATUTORY = "statutory_gateway"


class ProjectRole(StrEnum):
    LEAD = "lead"
    ANALYST = "analyst"


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetRequest(Form):
    dataset: Name = Field(description="a dataset of the catalog")
    columns: list[Name] = Field(min_length=1, description="the columns wanted; person_id is implied")
    justification: Sentence = Field(description="why these columns are needed")


class Member(Form):
    username: Username
    role: ProjectRole = ProjectRole.ANALYST


class Budget(Form):
    epsilon: Decimal = Field(gt=0, le=100, max_digits=12, decimal_places=6, description="total epsilon")
    delta: Decimal | None = Field(
        None,
        ge=0,
        lt=Decimal("0.001"),
        max_digits=20,
        decimal_places=18,
        description="total delta, if needed",
    )


class AccessRequestForm(Form):
    """Five Safes: safe projects (purpose, benefit, legal basis, ethics), safe people (team), safe data
    (datasets and columns), safe settings (dates), safe outputs (analysis and output plan), and the
    privacy budget the project asks for."""

    title: Annotated[str, Field(min_length=5, max_length=200)]
    lay_summary: Sentence = Field(description="for the public register: what and why, in plain words")
    organisation: Annotated[str, Field(min_length=2, max_length=200)]
    purpose: Sentence
    public_benefit: Sentence
    legal_basis: LegalBasis
    ethics_reference: Annotated[str, Field(min_length=3, max_length=100)]
    datasets: list[DatasetRequest] = Field(min_length=1)
    team: list[Member] = Field(min_length=1)
    start_date: date
    end_date: date
    budget: Budget
    analysis_plan: Sentence
    output_plan: Sentence = Field(description="which aggregate outputs will be requested from the airlock")

    @field_validator("datasets")
    @classmethod
    def _unique_datasets(cls, value: list[DatasetRequest]) -> list[DatasetRequest]:
        problem = datasets_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _dates_and_team(self) -> AccessRequestForm:
        problem = dates_problem(self.start_date, self.end_date) or team_problem(self.team)
        if problem:
            raise ValueError(problem)
        return self


# The rules between fields, shared with the question pages' sections (enclave.domain.access.drafts).


def datasets_problem(datasets: list[DatasetRequest]) -> str | None:
    names = [d.dataset for d in datasets]
    return "each dataset may be listed once" if len(set(names)) != len(names) else None


def dates_problem(start: date, end: date) -> str | None:
    return "end_date must be after start_date" if end <= start else None


def team_problem(team: list[Member]) -> str | None:
    if len([m for m in team if m.role is ProjectRole.LEAD]) != 1:
        return "the team needs exactly one lead"
    names = [m.username for m in team]
    return "each team member may be listed once" if len(set(names)) != len(names) else None


def json_schema() -> dict[str, Any]:
    schema = AccessRequestForm.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://enclave.invalid/schemas/access-request.json"
    return schema


def parse_form(text: str, *, source: str = "request") -> AccessRequestForm:
    """Parse a YAML (or JSON) access request; every problem is one InvalidInput naming the field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"{source} must be a mapping of the access-request form's fields")
    return validate_form(raw, source=source)


def validate_form(raw: Mapping[str, Any], *, source: str = "request") -> AccessRequestForm:
    try:
        return AccessRequestForm.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:6]:
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}" if loc else msg)
        raise InvalidInput(f"{source} is invalid: " + "; ".join(problems)) from None


class CatalogView(BaseModel):
    """What the check needs from the catalog: each dataset's columns and its budget policy."""

    columns: dict[str, frozenset[str]]
    max_epsilon: dict[str, Decimal]


class PersonView(BaseModel):
    exists: bool
    accredited_until: date | None


def check_against(
    form: AccessRequestForm,
    catalog: CatalogView,
    people: Mapping[str, PersonView],
    *,
    on: date,
) -> list[str]:
    """Problems that need the catalog and the accounts, each a sentence; empty when acceptable."""
    problems: list[str] = []
    for wanted in form.datasets:
        known = catalog.columns.get(wanted.dataset)
        if known is None:
            have = ", ".join(sorted(catalog.columns)) or "no dataset yet"
            problems.append(f"unknown dataset {wanted.dataset!r}; the catalog has: {have}")
            continue
        unknown = sorted(set(wanted.columns) - known)
        if unknown:
            problems.append(f"{wanted.dataset} has no column(s) {', '.join(unknown)}")
        limit = catalog.max_epsilon.get(wanted.dataset)
        if limit is not None and form.budget.epsilon > limit:
            problems.append(
                f"epsilon {form.budget.epsilon} is above {wanted.dataset}'s policy maximum of {limit}"
            )
    for member in form.team:
        person = people.get(member.username)
        if person is None or not person.exists:
            problems.append(f"team member {member.username!r} has no account")
        elif person.accredited_until is None or person.accredited_until < on:
            problems.append(f"team member {member.username} holds no valid accreditation on {on}")
    if form.end_date < on:
        problems.append(f"end_date {form.end_date} is already past")
    return problems
