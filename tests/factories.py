"""Factories that drive the real services to reach a state (no fixture writes a state directly)."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from functools import cache
from pathlib import Path

from enclave.domain.access.form import AccessRequestForm, validate_form
from enclave.domain.access.requests import Decision
from enclave.domain.identity.accounts import Actor, Role
from enclave.ingest.spec import parse_spec
from enclave.synth import generate
from enclave.wiring import Services
from tests.conftest import OPERATOR, make_account

SPECS = Path(__file__).resolve().parents[1] / "enclave" / "specs"


@cache
def tiny_population() -> Path:
    out = Path(tempfile.mkdtemp(prefix="enclave-tiny-population-"))
    generate(150, 3, out)
    return out


def _user(services: Services, username: str, *roles: Role) -> Actor:
    with services.db.unit_of_work(write=False) as uow:
        exists = uow.users.get_by_username(username) is not None
    if not exists:
        make_account(services, username, *roles)
    return Actor.for_user(services.identity.get_user(OPERATOR, username))


def demographics_form(
    services: Services,
    lead: str,
    *,
    title: str = "A test project on demographics",
    columns: list[str] | None = None,
    budget: dict[str, str] | None = None,
) -> AccessRequestForm:
    """A complete access request for ``columns`` of demographics (sex and region by default), led by
    ``lead``, from today for 200 days."""
    today = services.access.today()
    return validate_form(
        {
            "title": title,
            "lay_summary": "A project created by the test factories to reach an active state.",
            "organisation": "Test organisation",
            "purpose": "To exercise the services that need an active project in tests.",
            "public_benefit": "Better tested software for trusted research environments.",
            "legal_basis": "gdpr_6_1_e_and_9_2_j",
            "ethics_reference": "TEST-001",
            "datasets": [
                {
                    "dataset": "demographics",
                    "columns": columns or ["sex", "region"],
                    "justification": "Needed for the tests.",
                }
            ],
            "team": [{"username": lead, "role": "lead"}],
            "start_date": today,
            "end_date": today + timedelta(days=200),
            "budget": budget or {"epsilon": "1.0"},
            "analysis_plan": "Counts by region, computed through the DP layer in tests.",
            "output_plan": "No outputs leave; this project exists for tests only.",
        }
    )


def make_project(
    services: Services,
    lead: str,
    *,
    title: str = "A test project on demographics",
    columns: list[str] | None = None,
    budget: dict[str, str] | None = None,
) -> int:
    """An active project whose lead is ``lead`` (created as an accredited researcher if needed), on
    the demographics dataset, approved by its custodian through the real access service."""
    custodian = _user(services, "factory-custodian", Role.CUSTODIAN)
    researcher = _user(services, lead, Role.RESEARCHER)
    today = services.access.today()
    services.identity.set_accreditation(OPERATOR, lead, today + timedelta(days=365))
    with services.db.unit_of_work(write=False) as uow:
        have_data = uow.catalog.get_dataset("demographics") is not None
    if not have_data:
        text = (
            (SPECS / "demographics.yaml")
            .read_text()
            .replace("custodian: custodian", "custodian: factory-custodian")
        )
        services.catalog.ingest(
            custodian, parse_spec(text, base=SPECS), tiny_population() / "demographics.csv"
        )
    form = demographics_form(services, lead, title=title, columns=columns, budget=budget)
    request = services.access.create(researcher, form, submit=True)
    request = services.access.decide(custodian, request.id, "demographics", Decision.APPROVED, "ok for tests")
    assert request.project_id is not None
    return request.project_id
