"""The access-request form: examples validate, the exported JSON Schema is current, mistakes are named."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from enclave.domain.access.form import CatalogView, PersonView, check_against, json_schema, parse_form
from enclave.domain.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2] / "access_requests"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
SYNTHETIC_COLUMNS = {
    "demographics": frozenset({"year_of_birth", "sex", "postcode_area", "region", "deprivation_quintile"}),
    "admissions": frozenset(
        {"admission_date", "icd10_code", "icd10_chapter", "length_of_stay_days", "cost_gbp"}
    ),
    "lab_results": frozenset({"test_code", "result_value", "unit", "sample_date"}),
    "prescriptions": frozenset({"prescribed_date", "drug_class", "drug_name", "quantity"}),
    "deaths": frozenset({"date_of_death", "underlying_cause_icd10"}),
}
CATALOG = CatalogView(columns=SYNTHETIC_COLUMNS, max_epsilon={"admissions": Decimal(5)})
PEOPLE = {"researcher": PersonView(exists=True, accredited_until=date(2030, 1, 1))}


def test_there_are_at_least_two_complete_examples() -> None:
    """The demo and the docs rely on at least two example requests."""
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid_and_fit_the_synthetic_catalog(path: Path) -> None:
    """Each example parses, and asks only for datasets and columns the synthetic catalog has."""
    form = parse_form(path.read_text(), source=path.name)
    assert check_against(form, CATALOG, PEOPLE, on=date(2026, 1, 1)) == []


def test_exported_schema_is_current() -> None:
    """access_requests/schema.json is exactly the model's JSON Schema (run `make docs` after a change)."""
    assert json.loads((ROOT / "schema.json").read_text()) == json_schema()


def _example(**changes: object) -> str:
    raw = yaml.safe_load(EXAMPLES[0].read_text())
    raw.update(changes)
    return yaml.safe_dump(raw)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"end_date": "2025-01-01"}, "end_date must be after start_date"),
        ({"team": [{"username": "researcher", "role": "analyst"}]}, "exactly one lead"),
        ({"budget": {"epsilon": 0}}, "budget.epsilon"),
        ({"budget": {"epsilon": 1, "delta": 0.5}}, "budget.delta"),
        ({"legal_basis": "because"}, "legal_basis"),
        ({"lay_summary": "short"}, "lay_summary"),
        ({"colour": "red"}, "colour"),
        ({"datasets": []}, "datasets"),
    ],
)
def test_form_mistakes_name_the_field(changes: dict[str, object], message: str) -> None:
    """Each mistake in the form is refused with the field and the rule."""
    with pytest.raises(InvalidInput, match=message):
        parse_form(_example(**changes), source="request.yaml")


def test_catalog_and_people_checks() -> None:
    """Unknown datasets and columns, members without accounts or accreditation, and budgets above a
    dataset's policy are each reported in a sentence."""
    form = parse_form(
        _example(
            datasets=[
                {"dataset": "admissions", "columns": ["cost_gbp", "ward"], "justification": "x" * 25},
                {"dataset": "genomes", "columns": ["snp"], "justification": "y" * 25},
            ],
            team=[{"username": "researcher", "role": "lead"}, {"username": "ghost"}, {"username": "lapsed"}],
            budget={"epsilon": 6},
        )
    )
    people = {**PEOPLE, "lapsed": PersonView(exists=True, accredited_until=date(2025, 6, 30))}
    problems = check_against(form, CATALOG, people, on=date(2026, 1, 1))
    assert problems == [
        "admissions has no column(s) ward",
        "epsilon 6 is above admissions's policy maximum of 5",
        "unknown dataset 'genomes'; the catalog has: admissions, deaths, demographics, lab_results,"
        " prescriptions",
        "team member 'ghost' has no account",
        "team member lapsed holds no valid accreditation on 2026-01-01",
    ]
