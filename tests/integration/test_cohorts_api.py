"""Cohort definitions through the API and the client, on hand-made linked sources.

Five sources (a person registry, admissions, lab results, prescriptions and deaths) are ingested from
small CSVs
written here, so the right per-person frame is known exactly. The tests show the derived frame is
that frame (one row per person, keyed by the store's pseudonyms), that DP aggregates over it are
measured with a sensitivity of one person, that repeated aggregates reuse one cached derivation,
that refusals (scope, catalog, budget) spend nothing and derive nothing, and that dummy rows of a
definition hold no real pseudonym and no value outside the public domains.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from enclave.client import EnclaveClientError
from enclave.client.cohorts import (
    Cohort,
    V,
    age_band,
    attribute,
    code_in,
    codelist,
    count,
    date_between,
    exists,
    is_in,
    mean,
)
from enclave.domain.access.form import validate_form
from enclave.domain.access.requests import Decision
from enclave.domain.identity.accounts import Role, TokenKind
from enclave.domain.queries.cohorts import CODELISTS_DIR
from enclave.dp.dummy import is_dummy_person_id
from enclave.ingest.spec import parse_spec
from enclave.keys import Pseudonymiser
from enclave.store.layout import declared_bound
from enclave.synth import nhs_check_digit
from enclave.wiring import Services
from tests.conftest import OPERATOR, LiveServer
from tests.factories import SPECS, _user

SCOPE = {
    "demographics": ["sex", "region", "year_of_birth"],
    "admissions": ["admission_date", "icd10_code"],
    "lab_results": ["test_code", "result_value", "sample_date"],
    "deaths": ["date_of_death"],
}
NORTH_EAST, LONDON = "E12000001", "E12000007"


def _nhs_numbers(n: int) -> list[str]:
    out: list[str] = []
    body = 400_000_000
    while len(out) < n:
        body += 1
        digit = nhs_check_digit(str(body))
        if digit is not None:
            out.append(f"{body}{digit}")
    return out


NHS = _nhs_numbers(6)
# person: (sex, region, date of birth)
PERSONS = [
    ("F", NORTH_EAST, "1950-03-01"),  # 0: diabetic, two HbA1c, died
    ("M", NORTH_EAST, "1980-07-15"),  # 1: diabetic, no lab result
    ("F", LONDON, "2000-01-20"),  # 2: admitted for something else, eGFR only
    ("M", LONDON, "1934-11-11"),  # 3: no admission; HbA1c
    ("F", LONDON, "1975-05-05"),  # 4: diabetic (two admissions), one HbA1c, died
    ("M", NORTH_EAST, "1990-09-09"),  # 5: in no other source
]
ADMISSIONS = [  # person, date, ICD-10 code
    (0, "2023-03-01", "E11.9"),
    (0, "2021-06-01", "I21.9"),
    (1, "2022-02-02", "E11.2"),
    (2, "2023-10-10", "J18.9"),
    (4, "2023-05-05", "E11.5"),
    (4, "2019-05-05", "E11.9"),
]
LABS = [  # person, test, value, date
    (0, "HBA1C", 60.0, "2023-04-01"),
    (0, "HBA1C", 70.0, "2023-09-01"),
    (2, "EGFR", 95.0, "2023-01-01"),
    (3, "HBA1C", 40.0, "2022-12-12"),
    (4, "HBA1C", 52.0, "2023-06-06"),
]
DEATHS = [(0, "2023-12-01"), (4, "2023-08-08")]
PRESCRIPTIONS = [(0, "2023-06-01", "biguanide", "metformin"), (4, "2022-01-01", "sulfonylurea", "gliclazide")]


def _write_sources(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "demographics": pl.DataFrame(
            {
                "nhs_number": NHS,
                "given_name": ["Ann", "Bob", "Cat", "Dan", "Eve", "Fay"],
                "family_name": ["Smith"] * 6,
                "date_of_birth": [p[2] for p in PERSONS],
                "sex": [p[0] for p in PERSONS],
                "postcode": ["NE1 1AA", "NE2 2BB", "E1 1AA", "E2 2BB", "E3 3CC", "NE3 3CC"],
                "region": [p[1] for p in PERSONS],
                "deprivation_quintile": ["1", "2", "3", "4", "5", "1"],
            }
        ),
        "admissions": pl.DataFrame(
            {
                "nhs_number": [NHS[p] for p, _, _ in ADMISSIONS],
                "admission_id": [f"A{i}" for i in range(len(ADMISSIONS))],
                "admission_date": [d for _, d, _ in ADMISSIONS],
                "icd10_code": [c for _, _, c in ADMISSIONS],
                "icd10_chapter": ["IV" if c.startswith("E") else "IX" for _, _, c in ADMISSIONS],
                "length_of_stay_days": [2] * len(ADMISSIONS),
                "cost_gbp": [1000] * len(ADMISSIONS),
            }
        ),
        "lab_results": pl.DataFrame(
            {
                "nhs_number": [NHS[p] for p, _, _, _ in LABS],
                "test_code": [t for _, t, _, _ in LABS],
                "result_value": [v for _, _, v, _ in LABS],
                "unit": ["mmol/mol" if t == "HBA1C" else "mL/min/1.73m2" for _, t, _, _ in LABS],
                "sample_date": [d for _, _, _, d in LABS],
            }
        ),
        "prescriptions": pl.DataFrame(
            {
                "nhs_number": [NHS[p] for p, _, _, _ in PRESCRIPTIONS],
                "prescription_id": [f"R{i}" for i in range(len(PRESCRIPTIONS))],
                "prescribed_date": [d for _, d, _, _ in PRESCRIPTIONS],
                "drug_class": [c for _, _, c, _ in PRESCRIPTIONS],
                "drug_name": [n for _, _, _, n in PRESCRIPTIONS],
                "quantity": [56] * len(PRESCRIPTIONS),
            }
        ),
        "deaths": pl.DataFrame(
            {
                "nhs_number": [NHS[p] for p, _ in DEATHS],
                "date_of_death": [d for _, d in DEATHS],
                "underlying_cause_icd10": ["I21.9"] * len(DEATHS),
            }
        ),
    }
    paths = {}
    for name, frame in files.items():
        paths[name] = folder / f"{name}.csv"
        frame.write_csv(paths[name])
    return paths


def linked_project(
    services: Services, tmp_path: Path, *, epsilon: str = "10", scope: dict[str, list[str]] | None = None
) -> int:
    """An active project of "lead" over hand-made linked sources (all five are ingested; the project
    asks for ``scope``, by default four of them), every part approved."""
    scope = scope or SCOPE
    custodian = _user(services, "factory-custodian", Role.CUSTODIAN)
    researcher = _user(services, "lead", Role.RESEARCHER)
    today = services.access.today()
    services.identity.set_accreditation(OPERATOR, "lead", today + timedelta(days=365))
    sources = _write_sources(tmp_path / "sources")
    for name, source in sources.items():
        text = (
            (SPECS / f"{name}.yaml")
            .read_text()
            .replace("custodian: custodian", "custodian: factory-custodian")
        )
        report = services.catalog.ingest(custodian, parse_spec(text, base=SPECS), source)
        assert report.rows_written > 0, f"{name} ingested nothing: {report}"
    form = validate_form(
        {
            "title": "Diabetes and mortality across linked sources",
            "lay_summary": "How many people with type 2 diabetes per region, their HbA1c and deaths.",
            "organisation": "Test organisation",
            "purpose": "To exercise cohort definitions across linked sources in tests.",
            "public_benefit": "Better tested software for trusted research environments.",
            "legal_basis": "gdpr_6_1_e_and_9_2_j",
            "ethics_reference": "TEST-002",
            "datasets": [
                {"dataset": name, "columns": columns, "justification": "Needed for the cohort."}
                for name, columns in scope.items()
            ],
            "team": [{"username": "lead", "role": "lead"}],
            "start_date": today,
            "end_date": today + timedelta(days=200),
            "budget": {"epsilon": epsilon},
            "analysis_plan": "Counts and means over a per-person cohort, through the DP layer.",
            "output_plan": "No outputs leave; this project exists for tests only.",
        }
    )
    request = services.access.create(researcher, form, submit=True)
    for name in scope:
        request = services.access.decide(custodian, request.id, name, Decision.APPROVED, "ok for tests")
    assert request.project_id is not None
    return request.project_id


DIABETES = code_in("icd10_code", codelist("icd10_codes", prefixes=["E11"]))


def _cohort() -> Cohort:
    return (
        Cohort(index_date="2024-01-01")
        .var("region", attribute("region"))
        .var("sex", attribute("sex"))
        .var("age", age_band(10))
        .var("diabetes", exists("admissions", where=DIABETES))
        .var("admissions", count("admissions", at_most=5))
        .var("hba1c", mean("lab_results", "result_value", where=is_in("test_code", ["HBA1C"])))
        .var("died", exists("deaths", where=date_between("date_of_death", -365, 0)))
    )


def _expected_frame(services: Services) -> pl.DataFrame:
    """The per-person frame worked out by hand from the rows above."""
    pseudonym = Pseudonymiser(services.keys.linkage_key()).one
    rows = {
        0: (NORTH_EAST, "F", "70-79", 1, 2, 65.0, 1),
        1: (NORTH_EAST, "M", "40-49", 1, 1, None, 0),
        2: (LONDON, "F", "20-29", 0, 1, None, 0),
        3: (LONDON, "M", "90+", 0, 0, 40.0, 0),
        4: (LONDON, "F", "40-49", 1, 2, 52.0, 1),
        5: (NORTH_EAST, "M", "30-39", 0, 0, None, 0),
    }
    names = ["region", "sex", "age", "diabetes", "admissions", "hba1c", "died"]
    return pl.DataFrame(
        [
            {"person_id": pseudonym(NHS[p]), **dict(zip(names, values, strict=True))}
            for p, values in rows.items()
        ],
        schema={
            "person_id": pl.String,
            "region": pl.String,
            "sex": pl.String,
            "age": pl.String,
            "diabetes": pl.Int64,
            "admissions": pl.Int64,
            "hba1c": pl.Float64,
            "died": pl.Int64,
        },
    ).sort("person_id")


def _derived_frames(services: Services) -> list[Path]:
    return sorted(services.settings.derived_store.glob("*/data.parquet"))


def test_a_cohort_across_linked_sources_is_exactly_the_hand_made_frame_and_has_sensitivity_one(
    services: Services, tmp_path: Path
) -> None:
    project = linked_project(services, tmp_path)
    token = services.identity.issue_token(
        OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project
    ).secret
    with LiveServer(services) as api:
        ws = api.workspace(token, project)
        cohort = _cohort()

        schema = ws.schema(cohort)
        assert list(schema["name"]) == ["region", "sex", "age", "diabetes", "admissions", "hba1c", "died"]
        assert _derived_frames(services) == [], "describing a cohort must not read the data"

        release = ws.run(cohort, count=True, by=["region"], epsilon="4")
        # One row per person: the count's sensitivity is 1, so its discrete Laplace scale is 1/epsilon.
        assert release.noise_scales == {"count": pytest.approx(0.25, rel=1e-9)}
        frame = release.frame.set_index("region")
        truth = {NORTH_EAST: 3, LONDON: 3}
        for region, expected in truth.items():
            # P(|noise| >= 4) at scale 0.25 is about 2e-7.
            assert abs(frame.loc[region, "count"] - expected) <= 3
        regions = pl.read_csv(CODELISTS_DIR / "regions.csv")["code"].to_list()
        assert sorted(frame.index) == sorted(regions), "every public key is released, in the data or not"
        assert ws.budget()["spent"]["epsilon"] == "4"

        (derived,) = _derived_frames(services)
        # one row per person, declared so: the engine measures it row-level, without truncation
        assert declared_bound(derived) == (1, None)
        got = pl.read_parquet(derived).sort("person_id")
        assert got.equals(_expected_frame(services)), got

        # A population narrows the frame; an aggregate over it reuses nothing it should not.
        diabetics = cohort.where(V("diabetes") == 1)
        by_died = ws.run(diabetics, count=True, sum=["admissions"], by=["died"], epsilon="2")
        # Epsilon 2 is split between the two statistics: the count's scale is 1 / 1, and since the
        # admissions count is clamped to 5, a person changes the sum by at most 5: scale 5 / 1.
        assert by_died.noise_scales["count"] == pytest.approx(1.0, rel=1e-9)
        assert by_died.noise_scales["sum_admissions"] == pytest.approx(5.0, rel=1e-9)
        values = {row["died"]: row for row in by_died.values}
        assert abs(values[1]["count"] - 2) <= 15  # P(|noise| > 15) at scale 1 is about 2e-7
        assert abs(values[0]["count"] - 1) <= 15
        assert len(_derived_frames(services)) == 2

        # Quartiles of a per-person mean, over the cohort: OpenDP's quantile, one row per person.
        quartiles = ws.run(cohort, quantiles={"hba1c": [0.25, 0.75]}, epsilon="0.5")
        assert set(quartiles.values[0]) >= {"p25_hba1c", "p75_hba1c"}
        assert 0 <= quartiles.values[0]["p25_hba1c"] <= 1500
        assert quartiles.plan["aggregates"][0] == {"kind": "quantile", "column": "hba1c", "q": "0.25"}

        # The same definition again (another aggregate): the cached frame, not a second derivation.
        stamp = {p: p.stat().st_mtime_ns for p in _derived_frames(services)}
        ws.run(cohort, count=True, by=["sex"], epsilon="1")
        assert {p: p.stat().st_mtime_ns for p in _derived_frames(services)} == stamp

        # An identical plan is the recorded release, free.
        again = ws.run(cohort, count=True, by=["region"], epsilon="4")
        assert again.recorded
        assert again.id == release.id
        assert ws.budget()["spent"]["epsilon"] == "7.5"

        # The release records the definition it ran on.
        assert release.plan["cohort"]["variables"]["diabetes"]["kind"] == "exists"
        ws.close()


def test_cohort_refusals_spend_nothing_and_derive_nothing(services: Services, tmp_path: Path) -> None:
    project = linked_project(services, tmp_path, epsilon="1")
    token = services.identity.issue_token(
        OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project
    ).secret
    with LiveServer(services) as api:
        ws = api.workspace(token, project)
        cases = [
            # a table outside the scope
            (Cohort("2024-01-01").var("n", count("prescriptions", at_most=3)), {"count": True}, 403, "scope"),
            # a column of an approved table outside the scope
            (
                Cohort("2024-01-01").var("q", attribute("deprivation_quintile")),
                {"count": True, "by": ["q"]},
                403,
                "approved scope",
            ),
            # group keys need a public domain: a mean of lab values has none
            (_cohort(), {"count": True, "by": ["hba1c"]}, 400, "public domain"),
            # an unknown code list
            (
                Cohort("2024-01-01").var(
                    "x", exists("admissions", where=code_in("icd10_code", codelist("no_such_list")))
                ),
                {"count": True},
                400,
                "code list",
            ),
            # a variable the plan names but the definition lacks
            (_cohort(), {"count": True, "by": ["smoker"]}, 400, "no variable 'smoker'"),
            # more than the budget: refused before the frame is derived
            (_cohort(), {"count": True, "epsilon": "2"}, 409, "left"),
        ]
        for cohort, kwargs, status, message in cases:
            kwargs.setdefault("epsilon", "0.5")
            with pytest.raises(EnclaveClientError, match=message) as refused:
                ws.run(cohort, **kwargs)
            assert refused.value.status == status, refused.value
        assert ws.budget()["spent"]["epsilon"] == "0"
        assert _derived_frames(services) == []
        ws.close()


def test_dummy_rows_of_a_cohort_hold_no_real_pseudonym_and_stay_in_the_domains(
    services: Services, tmp_path: Path
) -> None:
    project = linked_project(services, tmp_path)
    token = services.identity.issue_token(
        OPERATOR, "lead", kind=TokenKind.WORKSPACE, project_id=project
    ).secret
    with LiveServer(services) as api:
        ws = api.workspace(token, project)
        frame = ws.dummy(_cohort(), n=300, seed=3)
        assert list(frame.columns) == [
            "person_id",
            "region",
            "sex",
            "age",
            "diabetes",
            "admissions",
            "hba1c",
            "died",
        ]
        assert len(frame) == 300
        assert frame["person_id"].is_unique, "one row per person"
        assert all(is_dummy_person_id(p) for p in frame["person_id"])
        real = {Pseudonymiser(services.keys.linkage_key()).one(n) for n in NHS}
        assert real.isdisjoint(set(frame["person_id"]))
        with services.db.unit_of_work(write=False) as uow:
            dataset = uow.catalog.get_dataset("demographics")
            assert dataset is not None
            assert dataset.current_version is not None
            version = uow.catalog.get_version(dataset.id, dataset.current_version)
        assert version is not None
        regions = next(set(c["domain"]) for c in version.columns if c["name"] == "region")
        assert set(frame["region"].dropna()) <= regions
        assert set(frame["diabetes"].dropna()) <= {0, 1}
        assert frame["admissions"].dropna().between(0, 5).all()
        assert frame["hba1c"].dropna().between(0, 1500).all()
        assert ws.budget()["spent"]["epsilon"] == "0"
        assert _derived_frames(services) == [], "dummy rows come from the catalog, not the data"
        ws.close()
    with services.db.unit_of_work(write=False) as uow:
        events = [
            json.loads(e.details_json) for e in uow.audit.iter_events() if e.action == "query.dummy_data"
        ]
    assert events[-1]["rows"] == 300
