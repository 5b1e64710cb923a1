"""Source specs: the roles, their required fields, and errors that name the column and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.domain.errors import InvalidInput
from enclave.ingest.spec import Role, load_spec, parse_spec

BASE = """
dataset: labs
title: Labs
custodian: carl
contribution_bound: 5
columns:
  - {name: nhs_number, role: person_id, normalise: nhs_number}
"""


def spec(extra: str) -> str:
    return BASE + extra


def test_roles_resolve_to_catalog_columns(tmp_path: Path) -> None:
    """Direct identifiers vanish, the identifier becomes person_id, quasi-identifiers are renamed to
    their generalisation, code lists next to the spec are read."""
    (tmp_path / "tests.csv").write_text("code,label\nHBA1C,x\nEGFR,y\nHBA1C,dup\n")
    text = spec(
        """  - {name: name, role: direct_identifier}
  - {name: dob, role: quasi_identifier, generalise: age_band_10, reference_date: 2025-12-31}
  - {name: test, role: category, domain: {codelist: tests.csv, column: code}}
  - {name: value, role: numeric, type: decimal, bounds: [0, 200], unit: mmol/mol}
  - {name: taken, role: date, range: [2020-01-01, 2024-12-31]}
"""
    )
    loaded = parse_spec(text, base=tmp_path)
    cols = {c.name: c for c in loaded.columns}
    assert list(cols) == ["person_id", "age_band_10", "test", "value", "taken"]
    assert cols["test"].domain == ["EGFR", "HBA1C"]
    assert cols["age_band_10"].role is Role.CATEGORY
    assert cols["age_band_10"].domain is not None
    assert cols["age_band_10"].domain[-1] == "90+"
    assert (cols["value"].lower, cols["value"].upper, cols["value"].unit) == (0, 200, "mmol/mol")
    assert len(loaded.sha256) == 64


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  - {name: sex, role: category}\n", "columns[sex]: a category needs a public domain"),
        ("  - {name: v, role: numeric, type: integer}\n", "columns[v]: a numeric column needs bounds"),
        ("  - {name: v, role: numeric, type: integer, bounds: [5, 1]}\n", "lower < upper"),
        ("  - {name: v, role: numeric, bounds: [0, 1]}\n", "type integer or decimal"),
        ("  - {name: d, role: date}\n", "a date column needs a range"),
        ("  - {name: dob, role: quasi_identifier}\n", "needs a generalisation"),
        ("  - {name: dob, role: quasi_identifier, generalise: age_band_5}\n", "needs a reference_date"),
        ("  - {name: notes, role: free_text}\n", "role"),
        ("  - {name: x, role: category, domain: [a], colour: red}\n", "colour"),
        ("  - {name: nhs_number, role: category, domain: [a]}\n", "declared twice: nhs_number"),
        ("  - {name: other_id, role: person_id}\n", "exactly one column must have role person_id"),
        ("  - {name: x, role: category, domain: {codelist: nope.csv, column: code}}\n", "not found"),
    ],
)
def test_invalid_specs_name_the_problem(tmp_path: Path, extra: str, message: str) -> None:
    """Each mistake a custodian can make is reported with the column and what to write instead."""
    with pytest.raises(InvalidInput) as info:
        parse_spec(spec(extra), base=tmp_path, source="labs.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("labs.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [("dataset: [unclosed", "not valid YAML"), ("- a\n- b\n", "must be a YAML mapping"), ("{}", "dataset")],
)
def test_unreadable_specs(tmp_path: Path, text: str, message: str) -> None:
    """Broken YAML and the wrong shape are refused with a sentence."""
    with pytest.raises(InvalidInput, match=message):
        parse_spec(text, base=tmp_path)


def test_missing_spec_file(tmp_path: Path) -> None:
    """A spec path that does not exist is named."""
    with pytest.raises(InvalidInput, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
