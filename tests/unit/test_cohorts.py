"""Cohort definitions: the language, its refusals, the per-person frame, one person per row, the cache
and DP aggregates over the derived frame."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from enclave.client.cohorts import (
    Cohort,
    V,
    age_band,
    any_of,
    attribute,
    between,
    code_in,
    codelist,
    count,
    date_between,
    eq,
    exists,
    first_date,
    is_in,
    last_date,
    maximum,
    mean,
    minimum,
)
from enclave.domain.errors import InternalError, InvalidInput
from enclave.domain.queries.cohorts import (
    Definition,
    VariableMeta,
    fingerprint,
    load_codelist,
    parse_definition,
    validate,
    variable_meta,
)
from enclave.dp import cohorts as dp_cohorts
from enclave.dp.cohorts import derive, derive_cached, derived_table_meta
from enclave.dp.engine import Aggregate, DPEngine, Query
from enclave.ingest.spec import load_spec

SPECS = Path(__file__).resolve().parents[2] / "enclave" / "specs"
TABLES = ("demographics", "admissions", "lab_results", "prescriptions", "deaths")
INDEX = date(2024, 1, 1)

# --------------------------------------------------------------------------- hand-made data
# Index date 2024-01-01; the "recent" window is [2023-01-01, 2024-01-01].
DEMOGRAPHICS = {
    "person_id": ["p1", "p2", "p3", "p4", "p5"],
    "year_of_birth": [1950, 1980, 2000, 1934, 2025],  # ages 74, 44, 24, 90 (90+), born after index
    "sex": ["F", "M", "F", "M", "F"],
    "postcode_area": ["AB", "CD", None, "EF", "GH"],
    "region": ["E12000007", "E12000001", "E12000007", "E12000009", "E12000002"],
    "deprivation_quintile": ["1", "2", "3", "5", "4"],
}
ADMISSIONS = [  # person, date, icd10 code, chapter, length of stay, cost
    ("p1", date(2023, 6, 1), "E11.9", "IV", 3, 1000),
    ("p1", date(2023, 9, 1), "E11.2", "IV", 5, 2000),
    ("p1", date(2020, 1, 1), "I21.9", "IX", 10, 5000),
    ("p2", date(2023, 3, 1), "J18.9", "X", 2, 800),
    ("p2", date(2024, 2, 1), "E10.9", "IV", None, 900),  # after the index date
    ("p4", date(2022, 12, 1), "E11.9", "IV", 400, 100),  # before the window; stay above the bound 365
    ("p6", date(2023, 5, 5), "E11.9", "IV", 1, 100),  # p6 is not in the person registry
]
LABS = [  # person, test, value, unit, date
    ("p1", "HBA1C", 50.0, "mmol/mol", date(2023, 5, 1)),
    ("p1", "HBA1C", 61.0, "mmol/mol", date(2023, 11, 1)),
    ("p1", "EGFR", 80.0, "mL/min/1.73m2", date(2023, 5, 1)),
    ("p2", "HBA1C", 40.0, "mmol/mol", date(2022, 1, 1)),
    ("p2", "HBA1C", None, "mmol/mol", date(2023, 1, 1)),
    ("p3", "CHOL", 5.2, "mmol/L", date(2023, 2, 2)),
    ("p4", "HBA1C", 1600.0, "mmol/mol", date(2023, 7, 7)),  # above the bound 1500
]
PRESCRIPTIONS = [  # person, date, class, drug, quantity
    *[("p1", date(2023, m, 10), "biguanide", "metformin", 56) for m in (1, 2, 3)],
    ("p1", date(2023, 1, 10), "statin", "atorvastatin", 28),
    *[("p3", date(2023, 1, d), "biguanide", "metformin", 56) for d in range(1, 13)],  # 12 rows
    ("p5", date(2023, 4, 4), "ssri", "sertraline", 28),
]
DEATHS = [("p4", date(2024, 6, 1), "I21.9")]


def _frames() -> dict[str, pl.DataFrame]:
    return {
        "demographics": pl.DataFrame(
            DEMOGRAPHICS,
            schema={
                "person_id": pl.String,
                "year_of_birth": pl.Int64,
                "sex": pl.String,
                "postcode_area": pl.String,
                "region": pl.String,
                "deprivation_quintile": pl.String,
            },
        ),
        "admissions": pl.DataFrame(
            ADMISSIONS,
            schema={
                "person_id": pl.String,
                "admission_date": pl.Date,
                "icd10_code": pl.String,
                "icd10_chapter": pl.String,
                "length_of_stay_days": pl.Int64,
                "cost_gbp": pl.Int64,
            },
            orient="row",
        ),
        "lab_results": pl.DataFrame(
            LABS,
            schema={
                "person_id": pl.String,
                "test_code": pl.String,
                "result_value": pl.Float64,
                "unit": pl.String,
                "sample_date": pl.Date,
            },
            orient="row",
        ),
        "prescriptions": pl.DataFrame(
            PRESCRIPTIONS,
            schema={
                "person_id": pl.String,
                "prescribed_date": pl.Date,
                "drug_class": pl.String,
                "drug_name": pl.String,
                "quantity": pl.Int64,
            },
            orient="row",
        ),
        "deaths": pl.DataFrame(
            DEATHS,
            schema={"person_id": pl.String, "date_of_death": pl.Date, "underlying_cause_icd10": pl.String},
            orient="row",
        ),
    }


def _write(folder: Path, frames: Mapping[str, pl.DataFrame]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in frames.items():
        paths[name] = folder / f"{name}.parquet"
        frame.write_parquet(paths[name])
    return paths


@pytest.fixture(scope="module")
def catalog() -> dict[str, list[dict[str, Any]]]:
    """The catalog as ingest records it, from the real source specs."""
    return {
        name: [c.model_dump(mode="json") for c in load_spec(SPECS / f"{name}.yaml").columns]
        for name in TABLES
    }


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Path]:
    return _write(tmp_path / "store", _frames())


DIABETES = code_in("icd10_code", codelist("icd10_codes", prefixes=["E10", "E11"]))


def _cohort() -> Cohort:
    return (
        Cohort(index_date=INDEX)
        .var("diabetes", exists("admissions", where=DIABETES))
        .var(
            "recent_admissions", count("admissions", at_most=5, where=date_between("admission_date", -365, 0))
        )
        .var("first_diabetes", first_date("admissions", "admission_date", where=DIABETES))
        .var("last_admission", last_date("admissions", "admission_date"))
        .var("longest_stay", maximum("admissions", "length_of_stay_days"))
        .var("hba1c", mean("lab_results", "result_value", where=is_in("test_code", ["HBA1C"])))
        .var(
            "hba1c_recent_max",
            maximum(
                "lab_results",
                "result_value",
                where=[eq("test_code", "HBA1C"), date_between("sample_date", "2023-01-01")],
            ),
        )
        .var("lowest_lab", minimum("lab_results", "result_value"))
        .var("good_egfr", exists("lab_results", where=[eq("test_code", "EGFR"), between("result_value", 60)]))
        .var(
            "metformin",
            count(
                "prescriptions",
                at_most=10,
                where=code_in("drug_name", codelist("drugs", where={"drug_class": "biguanide"})),
            ),
        )
        .var(
            "statin",
            exists(
                "prescriptions", where=code_in("drug_class", codelist("drug_classes", prefixes=["statin"]))
            ),
        )
        .var("died", exists("deaths"))
        .var("age", age_band(10))
        .var("sex", attribute("sex"))
        .var("region", attribute("region"))
    )


EXPECTED = {
    # person: diabetes, recent_admissions, first_diabetes, last_admission, longest_stay, hba1c,
    #         hba1c_recent_max, lowest_lab, good_egfr, metformin, statin, died, age, sex, region
    "p1": (
        1,
        2,
        date(2023, 6, 1),
        date(2023, 9, 1),
        10,
        55.5,
        61.0,
        50.0,
        1,
        3,
        1,
        0,
        "70-79",
        "F",
        "E12000007",
    ),
    "p2": (
        1,
        1,
        date(2024, 2, 1),
        date(2024, 2, 1),
        2,
        40.0,
        None,
        40.0,
        0,
        0,
        0,
        0,
        "40-49",
        "M",
        "E12000001",
    ),
    "p3": (0, 0, None, None, None, None, None, 5.2, 0, 10, 0, 0, "20-29", "F", "E12000007"),
    "p4": (
        1,
        0,
        date(2022, 12, 1),
        date(2022, 12, 1),
        365,
        1500.0,
        1500.0,
        1500.0,
        0,
        0,
        0,
        1,
        "90+",
        "M",
        "E12000009",
    ),
    "p5": (0, 0, None, None, None, None, None, None, 0, 0, 0, 0, None, "F", "E12000002"),
}
VARIABLES = (
    "diabetes", "recent_admissions", "first_diabetes", "last_admission", "longest_stay", "hba1c",
    "hba1c_recent_max", "lowest_lab", "good_egfr", "metformin", "statin", "died", "age", "sex", "region",
)  # fmt: skip


def _definition(cohort: Cohort | None = None) -> Definition:
    return parse_definition((cohort or _cohort()).to_dict())


def _rows(frame: pl.LazyFrame | pl.DataFrame) -> dict[str, tuple[object, ...]]:
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    return {row[0]: tuple(row[1:]) for row in df.sort("person_id").iter_rows()}


# ------------------------------------------------------------------------------- the frame
def test_derive_gives_exactly_the_per_person_frame_over_five_linked_sources(
    tables: dict[str, Path], catalog: dict[str, list[dict[str, Any]]]
) -> None:
    """Every value of every person, from demographics, admissions, lab results, prescriptions and deaths:
    absent persons get 0 / missing, counts are clamped, values clipped to the catalog bounds, p6 (not
    in the registry) is not a row, p5 (born after the index year) has no age band."""
    frame = derive(_definition(), tables, catalog).collect()
    assert frame.columns == ["person_id", *VARIABLES]
    assert frame.height == 5
    assert _rows(frame) == EXPECTED
    assert frame.schema["diabetes"] == pl.Int64
    assert frame.schema["first_diabetes"] == pl.Date
    assert frame.schema["longest_stay"] == pl.Int64
    assert frame.schema["hba1c"] == pl.Float64
    assert frame.schema["age"] == pl.String


@pytest.mark.parametrize(
    ("condition", "persons"),
    [
        # a comparison with a missing value is false, so its negation keeps p3 (no HbA1c)
        (((V("diabetes") == True) | (V("metformin") >= 1)) & ~(V("hba1c") > 100), {"p1", "p2", "p3"}),  # noqa: E712
        (V("age").isin(["70-79", "20-29"]), {"p1", "p3"}),
        (V("first_diabetes") >= date(2023, 1, 1), {"p1", "p2"}),
        (V("age").missing(), {"p5"}),
        ((V("sex") == "F") & (V("region") != "E12000007"), {"p5"}),
        (V("hba1c").isin([40, 55.5]), {"p1", "p2"}),
    ],
)
def test_population_keeps_the_persons_meeting_the_condition(
    tables: dict[str, Path], catalog: dict[str, list[dict[str, Any]]], condition: Any, persons: set[str]
) -> None:
    """The population filter is applied last; kept persons' rows are unchanged."""
    frame = derive(_definition(_cohort().where(condition)), tables, catalog)
    assert _rows(frame) == {p: EXPECTED[p] for p in persons}


def test_any_of_and_absolute_windows(
    tables: dict[str, Path], catalog: dict[str, list[dict[str, Any]]]
) -> None:
    """Row conditions: any of several, an absolute date window, a category in a set."""
    cohort = (
        Cohort(index_date="2024-01-01")
        .var(
            "n",
            count(
                "admissions",
                at_most=3,
                where=[
                    any_of(
                        eq("icd10_chapter", "IX"),
                        code_in("icd10_code", codelist("icd10_codes", prefixes=["J"])),
                    ),
                    date_between("admission_date", "2019-06-01", date(2023, 12, 31)),
                ],
            ),
        )
        .var("sex", attribute("sex"))
    )
    assert _rows(derive(_definition(cohort), tables, catalog)) == {
        "p1": (1, "F"),
        "p2": (1, "M"),
        "p3": (0, "F"),
        "p4": (0, "M"),
        "p5": (0, "F"),
    }


def test_only_the_person_table_defines_the_population(
    tables: dict[str, Path], catalog: dict[str, list[dict[str, Any]]]
) -> None:
    """A definition with only event variables still has one row per registered person."""
    cohort = Cohort(index_date=INDEX).var("any_admission", exists("admissions"))
    assert _rows(derive(_definition(cohort), tables, catalog)) == {
        "p1": (1,),
        "p2": (1,),
        "p3": (0,),
        "p4": (1,),
        "p5": (0,),
    }


# --------------------------------------------------------------------- one person, one row
@pytest.mark.parametrize("person", ["p1", "p2", "p3", "p4", "p5", "p6"])
def test_one_person_changes_at_most_their_own_row(
    tmp_path: Path, catalog: dict[str, list[dict[str, Any]]], person: str
) -> None:
    """Removing every row of one person from every table (or, read backwards, adding them) leaves every
    other person's derived row identical, with and without a population condition."""
    full = _frames()
    without = {name: frame.filter(pl.col("person_id") != person) for name, frame in full.items()}
    a = _write(tmp_path / "with", full)
    b = _write(tmp_path / "without", without)
    for cohort in (_cohort(), _cohort().where((V("diabetes") == 1) | (V("metformin") > 0))):
        rows_a = _rows(derive(_definition(cohort), a, catalog))
        rows_b = _rows(derive(_definition(cohort), b, catalog))
        assert person not in rows_b
        assert {p: r for p, r in rows_a.items() if p != person} == rows_b
        assert len(set(rows_a) ^ set(rows_b)) <= 1


def test_one_person_with_other_rows_changed_only_changes_that_row(
    tmp_path: Path, catalog: dict[str, list[dict[str, Any]]]
) -> None:
    """Changing the values of p2's rows (not adding or removing) changes p2's row only."""
    full = _frames()
    changed = {
        name: frame.with_columns(
            pl.when(pl.col("person_id") == "p2").then(pl.col(c).reverse()).otherwise(pl.col(c)).alias(c)
            for c in frame.columns
            if c != "person_id"
        )
        for name, frame in full.items()
    }
    changed["lab_results"] = changed["lab_results"].with_columns(
        pl.when(pl.col("person_id") == "p2")
        .then(pl.lit(140.0))
        .otherwise(pl.col("result_value"))
        .alias("result_value")
    )
    rows_a = _rows(derive(_definition(), _write(tmp_path / "a", full), catalog))
    rows_b = _rows(derive(_definition(), _write(tmp_path / "b", changed), catalog))
    assert rows_a["p2"] != rows_b["p2"]
    assert {p: r for p, r in rows_a.items() if p != "p2"} == {p: r for p, r in rows_b.items() if p != "p2"}


# ------------------------------------------------------------------------------- metadata
def test_public_metadata_comes_from_the_definition_and_catalog(
    catalog: dict[str, list[dict[str, Any]]],
) -> None:
    metas = variable_meta(_definition(), catalog)
    assert list(metas) == list(VARIABLES)
    assert metas["diabetes"] == VariableMeta("diabetes", "exists", "integer", False, ("0", "1"), 0, 1)
    assert metas["recent_admissions"].domain == ("0", "1", "2", "3", "4", "5")
    assert (metas["recent_admissions"].lower, metas["recent_admissions"].upper) == (0, 5)
    assert metas["first_diabetes"].first == date(2019, 1, 1)
    assert metas["first_diabetes"].lower == (date(2019, 1, 1) - date(1970, 1, 1)).days
    assert (metas["hba1c"].type, metas["hba1c"].lower, metas["hba1c"].upper) == ("decimal", 0, 1500)
    assert (metas["longest_stay"].type, metas["longest_stay"].upper) == ("integer", 365)
    assert metas["age"].domain is not None
    assert metas["age"].domain[-2:] == ("80-89", "90+")
    assert metas["sex"].domain == ("F", "M")
    assert metas["region"].domain is not None
    assert len(metas["region"].domain) == 10
    columns = derived_table_meta(_definition(), catalog)
    assert columns["first_diabetes"].lower is None  # dates have no clamp bounds in the engine
    assert columns["hba1c"].upper == 1500


def test_derived_values_stay_within_their_public_metadata(
    tables: dict[str, Path], catalog: dict[str, list[dict[str, Any]]]
) -> None:
    frame = derive(_definition(), tables, catalog).collect()
    for name, meta in variable_meta(_definition(), catalog).items():
        values = [v for v in frame[name].to_list() if v is not None]
        if meta.domain is not None:
            assert {str(v) for v in values} <= set(meta.domain), name
        if meta.type in ("integer", "decimal"):
            assert all(meta.lower is not None and meta.upper is not None for _ in values)
            assert all(meta.lower <= v <= meta.upper for v in values), name  # type: ignore[operator]
        if meta.type == "date":
            assert all(meta.first <= v <= meta.last for v in values), name  # type: ignore[operator]


# ------------------------------------------------------------------------- language & wire
def test_builder_json_round_trips_through_the_domain_model() -> None:
    """The stdlib builder's JSON is the domain model's JSON; a model dumped and parsed is equal."""
    cohort = _cohort().where((V("diabetes") == 1) & ~V("hba1c").missing())
    definition = parse_definition(cohort.to_json())
    assert definition == parse_definition(cohort.to_dict())
    assert parse_definition(definition.model_dump_json()) == definition
    assert definition.tables() == [TABLES[0], *sorted(TABLES[1:])]
    assert definition.columns()["admissions"] == {"icd10_code", "admission_date", "length_of_stay_days"}
    assert definition.columns()["demographics"] == {"year_of_birth", "sex", "region"}
    assert definition.variables["recent_admissions"].model_dump(mode="json") == {
        "kind": "count",
        "table": "admissions",
        "where": [{"op": "date_between", "column": "admission_date", "start": {"days_from_index": -365},
                   "end": {"days_from_index": 0}}],
        "max": 5,
    }  # fmt: skip


def test_code_lists_are_files_referenced_by_name() -> None:
    codes = load_codelist(parse_definition(_cohort().to_dict()).variables["diabetes"].where[0].codelist)  # type: ignore[union-attr]
    assert "E11.9" in codes
    assert "E10.9" in codes
    assert all(c.startswith(("E10", "E11")) for c in codes)
    biguanides = load_codelist(parse_definition(_cohort().to_dict()).variables["metformin"].where[0].codelist)  # type: ignore[union-attr]
    assert biguanides == ("metformin",)


def test_fingerprint_depends_on_definition_order_and_versions() -> None:
    versions = dict.fromkeys(TABLES, 1)
    base = fingerprint(_definition(), versions)
    assert fingerprint(_definition(), versions) == base
    assert fingerprint(_definition(), {**versions, "lab_results": 2}) != base
    other = _definition(_cohort().where(V("diabetes") == 1))
    assert fingerprint(other, versions) != base
    with pytest.raises(InvalidInput, match="no dataset version given for deaths"):
        fingerprint(_definition(), {t: 1 for t in TABLES if t != "deaths"})


def _refusal(cohort: Cohort, catalog: Mapping[str, list[dict[str, Any]]]) -> str:
    with pytest.raises(InvalidInput) as info:
        validate(parse_definition(cohort.to_dict()), catalog)
    return info.value.detail


BASE = Cohort(index_date=INDEX)


@pytest.mark.parametrize(
    ("cohort", "message"),
    [
        (
            BASE.var("x", exists("gp_visits")),
            "variable 'x' (exists) reads table 'gp_visits', which is not in the",
        ),
        (BASE.var("x", mean("admissions", "cost")), "table 'admissions' has no column 'cost' (its columns:"),
        (BASE.var("x", mean("admissions", "icd10_code")), "is not a bounded numeric column in the catalog"),
        (BASE.var("x", first_date("admissions", "cost_gbp")), "is not a date column with a range"),
        (
            BASE.var("x", exists("admissions", where=code_in("icd10_code", "snomed"))),
            "there is no code list 'snomed'",
        ),
        (
            BASE.var(
                "x",
                exists("admissions", where=code_in("icd10_code", codelist("icd10_codes", prefixes=["Z99"]))),
            ),
            "selects no codes",
        ),
        (
            BASE.var("x", exists("admissions", where=code_in("icd10_code", "drugs"))),
            "none of the 54 codes of code list 'drugs' is a value of admissions.icd10_code",
        ),
        (
            BASE.var(
                "x", exists("admissions", where=code_in("icd10_code", codelist("icd10_codes", column="kode")))
            ),
            "code list 'icd10_codes' has no column 'kode'",
        ),
        (
            BASE.var("x", exists("admissions", where=eq("icd10_code", "E11"))),
            "'E11' not in the public domain",
        ),
        (BASE.var("x", exists("admissions", where=between("admission_date", 1))), "not a bounded numeric"),
        (BASE.var("x", exists("admissions", where=date_between("cost_gbp", -30))), "not a date column"),
        (
            BASE.var("x", exists("admissions", where=eq("cost_gbp", "1"))),
            "a numeric column; in needs a category",
        ),
        (
            BASE.var("x", attribute("postcode_area")),
            "has no public domain, so its values could not be released",
        ),
        (
            BASE.var("x", age_band(10, column="sex")),
            "column 'sex' of demographics is not an integer year of birth",
        ),
        (
            BASE.var("x", attribute("sex")).where(V("y") == 1),
            "the population refers to 'y', which is not a variable",
        ),
        (BASE.var("x", attribute("sex")).where(V("x") == 1), "use one of its public values (F, M)"),
        (BASE.var("x", attribute("sex")).where(V("x") == "X"), "compares 'x' (attribute, string) with 'X'"),
        (BASE.var("x", attribute("sex")).where(V("x") > "F"), "orders 'x' with >, but it is a category"),
        (BASE.var("x", count("admissions", at_most=3)).where(V("x") == True), "use an integer"),  # noqa: E712
        (BASE.var("x", first_date("admissions", "admission_date")).where(V("x") > 3), "a date as YYYY-MM-DD"),
        (
            Cohort(index_date=INDEX, persons="nowhere").var("x", exists("admissions")),
            "the population reads table",
        ),
    ],
)
def test_invalid_definitions_are_refused_with_a_sentence(
    catalog: dict[str, list[dict[str, Any]]], cohort: Cohort, message: str
) -> None:
    assert message in _refusal(cohort, catalog)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"index_date": "2024-01-01", "variables": {}}, "variables: Dictionary should have at least 1 item"),
        (
            {"index_date": "2024-01-01", "variables": {"person_id": {"kind": "attribute", "column": "sex"}}},
            "person_id is the person column of the derived frame",
        ),
        (
            {
                "index_date": "2024-01-01",
                "variables": {"x": {"kind": "attribute", "column": "sex", "sql": "1"}},
            },
            "Extra inputs are not permitted",
        ),
        (
            {
                "index_date": "2024-01-01",
                "variables": {"x": {"kind": "count", "table": "admissions", "max": 0}},
            },
            "greater than or equal to 1",
        ),
        (
            {"index_date": "2024-01-01", "variables": {"x": {"kind": "median", "table": "t"}}},
            "does not match any",
        ),
        (
            {"index_date": "2024-01-01", "variables": {"X Y": {"kind": "attribute", "column": "sex"}}},
            "pattern",
        ),
        ("{not json", "the cohort definition is invalid"),
    ],
)
def test_malformed_definitions_are_refused(raw: object, message: str) -> None:
    with pytest.raises(InvalidInput, match="the cohort definition is invalid") as info:
        parse_definition(raw if isinstance(raw, str) else json.dumps(raw))
    assert message in info.value.detail


def test_builder_refuses_python_boolean_operators() -> None:
    with pytest.raises(TypeError, match="combine population conditions with &"):
        bool(V("a") == 1)


# ------------------------------------------------------------------------------- the cache
def test_cache_reuses_the_derived_frame_for_the_same_definition_and_versions(
    tmp_path: Path,
    tables: dict[str, Path],
    catalog: dict[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    definition = _definition()
    versions = dict.fromkeys(TABLES, 1)
    cache = tmp_path / "cache"
    first = derive_cached(definition, tables, catalog, versions, cache)
    assert not first.from_cache
    assert first.path == cache / first.fingerprint / "data.parquet"
    assert _rows(pl.read_parquet(first.path)) == EXPECTED
    assert [p.name for p in first.path.parent.iterdir()] == ["data.parquet"]  # no partial file left

    def no_derive(*args: object, **kwargs: object) -> pl.LazyFrame:
        raise AssertionError("the cached frame should have been reused")

    monkeypatch.setattr(dp_cohorts, "derive", no_derive)
    again = derive_cached(definition, tables, catalog, versions, cache)
    assert again.from_cache
    assert again.path == first.path
    assert again.table.contribution_bound == 1

    monkeypatch.undo()
    newer = derive_cached(definition, tables, catalog, {**versions, "deaths": 2}, cache)
    assert not newer.from_cache
    assert newer.fingerprint != first.fingerprint


def test_cache_write_is_atomic(
    tmp_path: Path,
    tables: dict[str, Path],
    catalog: dict[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A derivation that fails half-way leaves no data.parquet (and no partial file) behind."""
    versions = dict.fromkeys(TABLES, 1)

    def broken_sink(self: pl.LazyFrame, path: Path, **kwargs: object) -> None:
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", broken_sink)
    with pytest.raises(OSError, match="disk full"):
        derive_cached(_definition(), tables, catalog, versions, tmp_path / "cache")
    folders = list((tmp_path / "cache").iterdir())
    assert len(folders) == 1
    assert list(folders[0].iterdir()) == []


def test_a_frame_with_two_rows_for_a_person_is_never_published(
    tmp_path: Path,
    tables: dict[str, Path],
    catalog: dict[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The footer's one-row-per-person bound is checked on the written file: a derivation that
    broke it (a bug) is refused, and nothing is left for the engine to measure with bound 1."""
    real = dp_cohorts.derive

    def duplicating(*args: Any, **kwargs: Any) -> pl.LazyFrame:
        frame = real(*args, **kwargs)
        return pl.concat([frame, frame.head(1)])

    monkeypatch.setattr(dp_cohorts, "derive", duplicating)
    with pytest.raises(InternalError, match="rows for"):
        derive_cached(_definition(), tables, catalog, dict.fromkeys(TABLES, 1), tmp_path / "cache")
    assert list((tmp_path / "cache").glob("*/*")) == []


# ---------------------------------------------------------------------------- DP over it
@pytest.fixture(scope="module")
def engine() -> DPEngine:
    return DPEngine()


def test_dp_count_by_a_public_key_over_the_derived_frame_has_person_sensitivity(
    tmp_path: Path, tables: dict[str, Path], catalog: dict[str, list[dict[str, Any]]], engine: DPEngine
) -> None:
    """The DP engine runs on the cached frame with contribution bound 1: a count's Laplace scale is
    1/ε (one person changes one row), and every public region is released."""
    definition = _definition(_cohort().where(V("diabetes") == 1))
    derived = derive_cached(definition, tables, catalog, dict.fromkeys(TABLES, 1), tmp_path / "cache")
    plan = engine.plan(
        Query(derived.table, (Aggregate("count_rows"),), group_by=("region",), epsilon=Decimal("1"))
    )
    assert plan.aggregates[0].noise_scale == pytest.approx(1.0, rel=1e-9)
    assert plan.epsilon <= Decimal("1")
    assert Decimal(repr(plan._measurement.map(1))) == plan.epsilon  # d_in = 1 person
    release = engine.release(plan)
    region_domain = variable_meta(definition, catalog)["region"].domain
    assert region_domain is not None
    assert release.data["region"].to_list() == list(region_domain)
    assert release.data["count"].dtype.is_integer()


def test_dp_mean_by_an_indicator_over_the_derived_frame(
    tmp_path: Path, tables: dict[str, Path], catalog: dict[str, list[dict[str, Any]]], engine: DPEngine
) -> None:
    """Indicators are public integer keys; a mean of a derived numeric uses its catalog bounds."""
    derived = derive_cached(_definition(), tables, catalog, dict.fromkeys(TABLES, 1), tmp_path / "cache")
    plan = engine.plan(
        Query(
            derived.table,
            (Aggregate("count_rows"), Aggregate("mean", "hba1c")),
            group_by=("diabetes",),
            epsilon=Decimal("2"),
        )
    )
    release = engine.release(plan)
    assert release.data["diabetes"].to_list() == [0, 1]
    assert all(0 <= v <= 1500 for v in release.data["mean_hba1c"].to_list())
    assert plan.epsilon <= Decimal("2")
