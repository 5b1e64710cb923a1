"""The typed catalog column: what a spec declares, what the catalog records, what the engine reads."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from enclave.domain.catalog.datasets import COLUMN_FIELDS, CatalogColumn
from enclave.ingest.spec import load_spec

SPECS = Path(__file__).resolve().parents[2] / "enclave" / "specs"


@pytest.mark.parametrize("name", ["demographics", "admissions", "prescriptions", "lab_results", "deaths"])
def test_a_specs_columns_are_recorded_exactly_as_the_catalog_recorded_them_before(name: str) -> None:
    """The JSON of every column is the spec's own dump, key for key and in order, so versions
    recorded before the column was typed read back the same and new ones are stored the same."""
    loaded = load_spec(SPECS / f"{name}.yaml")
    for column, declared in zip(loaded.catalog_columns(), loaded.columns, strict=True):
        recorded = declared.model_dump(mode="json")
        assert column.as_json() == recorded
        assert json.dumps(column.as_json(), default=str) == json.dumps(recorded, default=str)
        assert CatalogColumn.from_json(json.loads(json.dumps(recorded))) == column
        assert dict(column) == recorded  # the mapping view, for readers of the stored record
        assert list(column) == list(COLUMN_FIELDS)


def test_typed_fields_the_engine_reads() -> None:
    """Role, type, public domain and bounds are typed values, and the column cannot be changed."""
    columns = {c.name: c for c in load_spec(SPECS / "admissions.yaml").catalog_columns()}
    cost = columns["cost_gbp"]
    assert (cost.role, cost.type, cost.lower, cost.upper) == ("numeric", "integer", 0.0, 100000.0)
    assert cost.is_bounded_numeric
    chapter = columns["icd10_chapter"]
    assert isinstance(chapter.domain, tuple)
    assert "IX" in chapter.domain
    assert chapter["domain"] == list(chapter.domain)
    assert not chapter.is_bounded_numeric
    with pytest.raises(dataclasses.FrozenInstanceError):
        cost.lower = 1.0  # type: ignore[misc]
    with pytest.raises(KeyError):
        cost["cost"]
    assert cost.get("cost") is None


def test_an_older_record_without_every_key_still_reads() -> None:
    """A column recorded with fewer keys (an older catalog) reads with the missing ones empty."""
    column = CatalogColumn.from_json(
        {"name": "region", "role": "category", "type": "string", "domain": ["A"]}
    )
    assert (column.source, column.description, column.nullable, column.domain) == ("region", "", True, ("A",))
